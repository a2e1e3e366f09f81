"""Training end to end on real text, the bundle it writes, and exact resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import SMS, TINY, tiny_config

from textlstm import checkpoint
from textlstm.evaluate import evaluate_split, predict_logits
from textlstm.predict import Predictor
from textlstm.training import fit


def test_tiny_model_beats_the_majority_class_on_sms_test(tiny_run):
    test = tiny_run.prepared.splits["test"]
    labels = np.asarray(test["label"])
    majority = np.bincount(labels).max() / len(labels)  # 86.6%: always "ham"
    report = evaluate_split(
        tiny_run.model,
        test,
        tiny_run.prepared.label_names,
        torch.device("cpu"),
        tiny_run.prepared.task,
    )
    assert report["accuracy"] > majority + 0.03
    assert report["per_class"]["spam"]["recall"] > 0.5


def test_bundle_is_complete_and_nothing_is_written_beside_it(tiny_run):
    run = tiny_run.run_dir
    for name in checkpoint.BUNDLE_FILES + ("metrics.json", "train_state.pt", "metrics.jsonl"):
        assert (run / name).is_file(), name
    # a run in a folder the user named leaves that folder's parent alone: no `latest` there
    assert sorted(p.name for p in run.parent.iterdir()) == [run.name]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["hidden_dim"] == 16 and config["train"]["epochs"] == 2
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_reloaded_checkpoint_gives_identical_logits(tiny_run):
    test = tiny_run.prepared.splits["test"].select(range(64))
    before = predict_logits(tiny_run.model, test, torch.device("cpu"))
    model, _, _ = checkpoint.load_model(tiny_run.run_dir)
    after = predict_logits(model, test, torch.device("cpu"))
    np.testing.assert_array_equal(before, after)
    cell, _, _ = checkpoint.load_model(tiny_run.run_dir, rnn="cell")
    np.testing.assert_allclose(predict_logits(cell, test, torch.device("cpu")), before, atol=1e-5)


def test_numpy_engine_equals_torch(tiny_run):
    texts = tiny_run.prepared.splits["test"]["text"][:40] + ["", "WINNER!! call now"]
    fast = Predictor(tiny_run.run_dir, engine="numpy").probabilities(texts, batch_size=7)
    slow = Predictor(tiny_run.run_dir, engine="torch").probabilities(texts, batch_size=7)
    np.testing.assert_allclose(fast, slow, atol=1e-5)


def test_sigint_mid_epoch_then_resume_ends_with_the_same_weights(tmp_path):
    """Kill a real training process with SIGINT mid-epoch; the resumed run must end with
    the same weights as an uninterrupted one."""
    extra = ["model.num_layers=1", "train.epochs=3", "train.batch_size=16", "train.ema=0.9"]
    overrides = [*TINY, *extra]  # with a weight average: it too must continue exactly
    straight = fit(tiny_config(*extra), tmp_path / "straight")
    run_dir = tmp_path / "interrupted"
    args = [sys.executable, "-m", "textlstm", "train", "--data", str(SMS), "--out", str(run_dir)]
    for item in overrides:
        args += ["--set", item]
    # The same intra-op thread count as the straight run in this process: oneDNN's LSTM
    # sums in a thread-dependent order, and the weights are compared to 1e-6.
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.time() + 600  # a loaded shared CI machine can take minutes per epoch
    while not (run_dir / "metrics.jsonl").is_file() and time.time() < deadline:
        time.sleep(0.02)
    assert (run_dir / "metrics.jsonl").is_file(), "epoch 1 did not finish in time"
    time.sleep(0.3)  # epoch 1 has ended (an epoch takes >1 s): now inside epoch 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"--resume {run_dir}" in err
    state = checkpoint.load_train_state(run_dir)
    assert state["epoch"] == 1 and 0 < state["batches_done"] < 279  # inside epoch 2

    resumed = fit(tiny_config(*extra), run_dir, resume=True)
    state_a = checkpoint.load_train_state(straight.run_dir)
    state_b = checkpoint.load_train_state(run_dir)
    pairs = [
        (state_a["model"], state_b["model"]),
        (state_a["average"]["model"], state_b["average"]["model"]),
    ]
    for final_a, final_b in pairs:
        for name, value in final_a.items():
            torch.testing.assert_close(final_b[name], value, atol=1e-6, rtol=0)
    assert resumed.best == straight.best | {
        "epoch_s": resumed.best["epoch_s"],
        "tokens_per_s": resumed.best["tokens_per_s"],
        "train_loss": resumed.best["train_loss"],
    }


def test_weight_average_follows_the_ema_recurrence():
    from textlstm.averaging import WeightAverage

    live = torch.nn.Linear(3, 2)
    average = WeightAverage(live, decay=0.5)
    expected = [p.detach().clone() for p in live.parameters()]
    for step in range(20):
        with torch.no_grad():
            for p in live.parameters():
                p.add_(float(step))  # the live weights move every step
        rate = 1 - min(0.5, (1 + step) / (10 + step))  # warm-up, then the decay itself
        pairs = zip(expected, live.parameters(), strict=True)
        expected = [e + rate * (p.detach() - e) for e, p in pairs]
        average.update(live)
    for got, want in zip(average.model.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want)
        assert not got.requires_grad


def test_ema_run_validates_and_ships_the_average(tmp_path):
    """With train.ema the bundle holds the averaged weights, and the validation numbers in
    metrics.json are those of exactly that bundle, not of the live weights."""
    result = fit(tiny_config("train.ema=0.95", "model.num_layers=1"), tmp_path / "ema")
    state = checkpoint.load_train_state(result.run_dir)
    bundle, _, _ = checkpoint.load_model(result.run_dir)
    val = result.prepared.splits["validation"]
    report = evaluate_split(
        bundle, val, result.prepared.label_names, torch.device("cpu"), result.prepared.task
    )
    assert report["loss"] == pytest.approx(result.best["val_loss"], abs=1e-6)
    if result.best["epoch"] == 2:  # the last epoch's average is the one training ended with
        for name, value in bundle.state_dict().items():
            torch.testing.assert_close(value, state["average"]["model"][name])
    live = state["model"]["classifier.weight"]
    assert not torch.allclose(state["average"]["model"]["classifier.weight"], live)


def test_existing_run_is_never_clobbered(tiny_run):
    from textlstm import TextlstmError

    with pytest.raises(TextlstmError, match="--overwrite"):
        fit(tiny_config(), tiny_run.run_dir)
