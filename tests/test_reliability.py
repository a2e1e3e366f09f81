"""Reliability: crashes inside a save, corrupt or hostile files, non-finite steps, OOM,
determinism, odd data and odd classify input. docs/RELIABILITY.md maps each case here.

Training tests use a 240-text synthetic dataset and a one-layer 8-unit model: seconds.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import SMS, TINY, tiny_config

from textlstm import TextlstmError, checkpoint, guards
from textlstm import training as train_module
from textlstm.cli import main
from textlstm.config import DataConfig
from textlstm.data import load_raw
from textlstm.datachecks import check_utf8
from textlstm.learner import Learner
from textlstm.predict import Predictor

SMALL = (
    "model.num_layers=1",
    "model.emb_dim=8",
    "model.hidden_dim=8",
    "train.batch_size=16",
    "data.min_frequency=1",
    "train.log_every=5",
    "train.lr=5e-2",
)


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def error_line(result):
    assert result.exit_code == 1, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in result.output
    return line


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """240 train / 40 validation texts whose label is carried by one cue word."""
    folder = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    filler = ["the", "a", "film", "show", "was", "is", "very", "quite", "plot", "cast"]

    def rows(n):
        out = []
        for _ in range(n):
            label = int(rng.integers(2))
            words = list(rng.choice(filler, 5)) + [["awful", "great"][label]]
            out.append((" ".join(rng.permutation(words)), ["neg", "pos"][label]))
        return out

    pd.DataFrame(rows(240), columns=["text", "label"]).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(rows(40), columns=["text", "label"]).to_csv(folder / "validation.csv", index=False)
    return folder


def small_config(data, *extra):
    return tiny_config(*SMALL, *extra, source=data)


@pytest.fixture(scope="module")
def small_run(small_data, tmp_path_factory):
    """A trained model on `small_data` (cheaper than conftest's tiny_run on SMS)."""
    run_dir = tmp_path_factory.mktemp("checkpoints") / "small"
    return train_module.fit(small_config(small_data, "train.epochs=2"), run_dir)


# -- kill -9 inside a checkpoint write ---------------------------------------------------

CRASH_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from textlstm import files
    from textlstm.cli import main

    TARGET, NTH = sys.argv[1], int(sys.argv[2])
    real_write, real_fdopen = files.atomic_write, os.fdopen
    state = {"target": None, "count": 0}

    def tracking_write(path, data):  # the real atomic_write, remembering its target
        state["target"] = os.path.basename(path)
        state["count"] += state["target"] == TARGET
        try:
            return real_write(path, data)
        finally:
            state["target"] = None

    class DiesMidWrite:  # writes half the bytes, makes them durable, then SIGKILLs itself
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.f.__exit__(*exc)
        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            os.fsync(self.f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        crash = state["target"] == TARGET and state["count"] == NTH
        return DiesMidWrite(f) if crash else f

    files.atomic_write, os.fdopen = tracking_write, fdopen
    sys.argv = ["textlstm", "train", *sys.argv[3:]]
    main()
    """
)


def crash_during_save(tmp_path, data, target, nth):
    run_dir = tmp_path / "run"
    args = ["--data", data, "--out", run_dir, "--set", "train.metric=loss"]
    for item in (*TINY, *SMALL, "train.epochs=2", "model.hidden_dim=16", "train.lr=1e-2"):
        args += ["--set", item]
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT)
    done = subprocess.run(
        [sys.executable, script, target, str(nth), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == -9, done.stderr  # killed by SIGKILL, as `kill -9` would
    assert list(run_dir.glob(f".{target}.*.tmp")), "the crash left its half-written temp file"
    return run_dir


def test_kill_9_while_writing_weights_keeps_the_last_good_bundle(tmp_path, small_data):
    # Epoch 1 writes model.safetensors; the crash hits epoch 2's write of it (with
    # train.metric=loss and this data, epoch 2 improves: seeded, so always).
    run_dir = crash_during_save(tmp_path, small_data, "model.safetensors", 2)
    epoch1 = checkpoint.load_train_state(run_dir)  # written after epoch 1's best weights
    assert epoch1["epoch"] == 1
    weights = checkpoint.load_tensors(run_dir)
    for name, value in epoch1["model"].items():
        assert torch.equal(weights[name], value), name
    probs = Predictor(run_dir).probabilities(["a great film", "awful plot"])
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert json.loads((run_dir / "metrics.json").read_text())["epoch"] == 1


def test_kill_9_while_writing_train_state_then_resume(tmp_path, small_data):
    run_dir = crash_during_save(tmp_path, small_data, "train_state.pt", 2)
    assert checkpoint.load_train_state(run_dir)["epoch"] == 1  # the previous state, whole
    Predictor(run_dir).probabilities(["great"])  # the bundle classifies too
    cfg = small_config(
        small_data, "train.epochs=2", "model.hidden_dim=16", "train.lr=1e-2", "train.metric=loss"
    )
    train_module.fit(cfg, run_dir, resume=True)
    assert checkpoint.load_train_state(run_dir)["epoch"] == 2
    assert not list(run_dir.glob(".*.tmp"))  # the next run removed the stale temp file


# -- corrupt and hostile checkpoint files --------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 3],  # truncated
        lambda b: b"\xff" * 8 + b[8:],  # header length field destroyed
        lambda b: b[:8] + b"{not json" + b[17:],  # header JSON destroyed
        lambda b: b"",  # empty file
    ],
    ids=["truncated", "bad-length", "bad-header", "empty"],
)
def test_corrupt_weights_are_refused_with_one_line(small_run, tmp_path, damage):
    broken = tmp_path / "broken"
    shutil.copytree(small_run.run_dir, broken)
    path = broken / "model.safetensors"
    path.write_bytes(damage(path.read_bytes()))
    line = error_line(run("classify", "--checkpoint", broken, "x"))
    assert "model.safetensors" in line and "unreadable or truncated" in line
    line = error_line(run("classify", "--checkpoint", broken, "--engine", "torch", "x"))
    assert "model.safetensors" in line


class Payload:
    """Unpickling this would create `marker`: loading must refuse it without running it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_train_state_with_a_pickled_object_is_refused_and_never_run(small_run, tmp_path):
    hostile = tmp_path / "hostile"
    shutil.copytree(small_run.run_dir, hostile)
    marker = tmp_path / "code-ran"
    torch.save({"model": {}, "extra": Payload(marker)}, hostile / "train_state.pt")
    line = error_line(run("train", "--resume", hostile))
    assert "train_state.pt cannot be loaded safely" in line
    assert not marker.exists()


def test_truncated_train_state_is_refused(small_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(small_run.run_dir, broken)
    data = (broken / "train_state.pt").read_bytes()
    (broken / "train_state.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(TextlstmError, match="cannot be loaded safely"):
        checkpoint.load_train_state(broken)


# -- disk full and unwritable places --------------------------------------------------------


def test_disk_full_while_saving_keeps_the_previous_checkpoint(small_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(small_run.run_dir, run_dir)
    before = (run_dir / "model.safetensors").read_bytes()
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, data):
            self.f.write(data[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    with pytest.raises(TextlstmError, match="No space left on device") as err:
        checkpoint.save_best(run_dir, small_run.model, {"epoch": 9})
    assert "model.safetensors" in str(err.value) and "unchanged" in str(err.value)
    monkeypatch.undo()
    assert (run_dir / "model.safetensors").read_bytes() == before
    assert json.loads((run_dir / "metrics.json").read_text())["epoch"] != 9
    assert not list(run_dir.glob(".*.tmp"))


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = error_line(run("train", "--data", SMS, "--out", blocker / "run"))
    assert "cannot write to" in line


def test_classify_output_into_a_missing_folder(small_run, tmp_path):
    result = run("classify", "--checkpoint", small_run.run_dir, "hi", "-o", tmp_path / "no/x.txt")
    assert "x.txt" in error_line(result)


# -- non-finite steps ---------------------------------------------------------------------


def test_fused_adamw_skips_a_flagged_step_entirely():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    guard = guards.NonFiniteGuard(torch.device("cpu"), limit=3)
    for poison in (False, True):
        loss = model(torch.randn(4, 3)).sum() * (float("nan") if poison else 1.0)
        optimizer.zero_grad()
        loss.backward()
        before = [p.detach().clone() for p in model.parameters()]
        moments = [
            optimizer.state[p].get("exp_avg", torch.zeros(())).clone() for p in model.parameters()
        ]
        keep = guard.check(optimizer, loss.detach(), guards.grad_norm(model.parameters(), 1.0), 4)
        optimizer.step()
        assert keep.item() == (0.0 if poison else 1.0)
    after = list(model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    state = optimizer.state[after[0]]
    assert state["step"].item() == 1 and torch.equal(state["exp_avg"], moments[0])
    assert guard.read(torch.zeros(()), 2, "run") == (0.0, 1)


def poison_loss(monkeypatch, bad_call):
    """Make the training loss NaN on the steps for which `bad_call(i)` is true (one
    Learner.loss per step: these runs have no adversarial pass)."""
    real, calls = Learner.loss, {"n": 0}

    def loss(self, *args, **kwargs):
        calls["n"] += 1
        value = real(self, *args, **kwargs)
        return value * float("nan") if bad_call(calls["n"]) else value

    monkeypatch.setattr(Learner, "loss", loss)
    return calls


def test_nonfinite_steps_are_skipped_and_counted(tmp_path, small_data, monkeypatch):
    calls = poison_loss(monkeypatch, lambda i: i % 4 == 0)
    result = train_module.fit(small_config(small_data, "train.epochs=3"), tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["nonfinite_steps"] == calls["n"] // 4 > 0
    assert all(np.isfinite(r["train_loss"]) for r in rows)  # skipped steps are not averaged
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert result.best["val_accuracy"] > 0.8  # the kept steps still learned the cue words


def test_consecutive_nonfinite_steps_stop_and_keep_the_best(tmp_path, small_data, monkeypatch):
    steps_per_epoch = 15  # 240 texts / 16
    poison_loss(monkeypatch, lambda i: i > steps_per_epoch)  # all of epoch 2 onwards
    run_dir = tmp_path / "run"
    cfg = small_config(small_data, "train.epochs=3", "train.max_nonfinite=4")
    with pytest.raises(TextlstmError, match="train.max_nonfinite=4") as err:
        train_module.fit(cfg, run_dir)
    assert "consecutive" in str(err.value) and "intact" in str(err.value)
    assert json.loads((run_dir / "metrics.json").read_text())["epoch"] == 1
    state = checkpoint.load_train_state(run_dir)  # end of epoch 1, saved with the best
    weights = checkpoint.load_tensors(run_dir)
    assert all(torch.equal(weights[k], v) for k, v in state["model"].items())


# -- out of memory --------------------------------------------------------------------------


def raise_oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_oom_in_a_training_step_names_the_batch_settings(tmp_path, small_data, monkeypatch):
    from textlstm.model import TextLSTM

    monkeypatch.setattr(TextLSTM, "forward", raise_oom)
    with pytest.raises(TextlstmError) as err:
        train_module.fit(small_config(small_data, "train.max_tokens=2048"), tmp_path / "run")
    message = str(err.value)
    assert "out of GPU memory during training" in message
    assert "train.max_tokens (now 2048)" in message and "train.batch_size (now 16)" in message


def test_oom_in_evaluation_names_eval_batch_size(small_run, monkeypatch):
    from textlstm.evaluate import evaluate_split

    monkeypatch.setattr(small_run.model, "forward", raise_oom)
    split = small_run.prepared.splits["validation"].select(range(8))
    with pytest.raises(TextlstmError, match=r"train.eval_batch_size \(now 64\)"):
        evaluate_split(
            small_run.model,
            split,
            small_run.prepared.label_names,
            torch.device("cpu"),
            small_run.prepared.task,
            batch_size=64,
        )


# -- determinism ----------------------------------------------------------------------------


def test_deterministic_runs_write_identical_metrics(tmp_path, small_data):
    args = ["train", "--deterministic", "--data", small_data, "--out", tmp_path / "a"]
    for item in (*TINY, *SMALL, "train.epochs=2"):
        args += ["--set", item]
    try:
        assert run(*args).exit_code == 0
        config = json.loads((tmp_path / "a" / "config.json").read_text())
        assert config["train"]["deterministic"] is True
        assert torch.are_deterministic_algorithms_enabled()
        cfg = small_config(small_data, "train.epochs=2", "train.deterministic=true")
        train_module.fit(cfg, tmp_path / "b")
    finally:
        guards.set_deterministic(False, torch.device("cpu"))
    timing = ("tokens_per_s", "epoch_s")

    def rows(name):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines]

    assert rows("a") == rows("b") and len(rows("a")) == 2


# -- odd data ---------------------------------------------------------------------------------


def write_csv(folder, split, rows):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(folder / f"{split}.csv", index=False)


def test_texts_shared_between_train_and_test_warn_with_counts(tmp_path):
    train = [(f"text number {i}", "ab"[i % 2]) for i in range(40)]
    write_csv(tmp_path, "train", train)
    write_csv(tmp_path, "validation", train[:3] + [("fresh one", "a"), ("fresh two", "b")])
    write_csv(tmp_path, "test", train[5:6] + [(f"new {i}", "ab"[i % 2]) for i in range(9)])
    raw = load_raw(DataConfig(source=str(tmp_path)))
    [warning] = [n for n in raw.notes if "also occur in train" in n]
    assert warning.startswith("warning:")
    assert "3 of 5 validation texts (60.0%)" in warning and "1 of 10 test texts" in warning


def test_no_leakage_warning_for_disjoint_splits(tmp_path):
    write_csv(tmp_path, "train", [(f"text {i}", "xy"[i % 2]) for i in range(20)])
    write_csv(tmp_path, "test", [("e f", "x"), ("g h", "y")])
    raw = load_raw(DataConfig(source=str(tmp_path)))  # validation carved from train
    assert not [n for n in raw.notes if "also occur in train" in n]


def test_heavily_imbalanced_classes_warn(tmp_path):
    rows = [(f"common {i}", "common") for i in range(60)] + [("rare 1", "rare"), ("rare 2", "rare")]
    write_csv(tmp_path, "train", rows)
    write_csv(tmp_path, "validation", [("common x", "common"), ("rare x", "rare")])
    raw = load_raw(DataConfig(source=str(tmp_path)))
    [warning] = [n for n in raw.notes if "imbalanced" in n]
    assert "'common': 60" in warning and "'rare': 2" in warning
    assert "class_weights=balanced" in warning


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_non_utf8_bytes_name_the_file_and_line(tmp_path, suffix):
    if suffix == "csv":
        body = b'text,label\n"fine",a\n"caf\xe9 latin-1",b\n'
    else:
        body = b'{"text": "fine", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n'
    (tmp_path / f"train.{suffix}").write_bytes(body)
    with pytest.raises(TextlstmError) as err:
        load_raw(DataConfig(source=str(tmp_path)))
    message = str(err.value)
    assert f"train.{suffix} is not UTF-8" in message and "0xe9" in message
    assert ("line 3" if suffix == "csv" else "line 2") in message


def test_utf8_check_across_chunk_boundaries(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(("text,label\n" + "héllo wörld 😀,a\n" * 5).encode())
    check_utf8(path, chunk_size=3)  # every multi-byte character gets split somewhere
    path.write_bytes(("text,label\n" + "😀,a\n" * 3).encode() + b"\xff,b\n")
    with pytest.raises(TextlstmError, match=r"0xff at offset 32 \(line 5\)"):
        check_utf8(path, chunk_size=5)


def test_non_string_values_in_the_text_column_are_counted(tmp_path):
    rows = [{"text": "ok", "label": "a"}, {"text": 5, "label": "b"}, {"text": "z", "label": "b"}]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(TextlstmError, match=r"1 of 3 rows hold other values \(first: row 2, 5\)"):
        load_raw(DataConfig(source=str(tmp_path)))


# -- odd classify input ---------------------------------------------------------------------

ODD_TEXTS = {
    "empty": "",
    "whitespace": " \t  ",
    "emoji": "😀🔥👍🏽 great 🎉",
    "right-to-left": "هذا فيلم رائع שלום עולם",
    "control": "great\x00\x07\x1b[31m\u200b\ufeff film\r",
    "long": "great film " * 100_000,  # 1.1 million characters
}


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_classify_odd_inputs(small_run, engine):
    predictor = Predictor(small_run.run_dir, engine=engine)
    probs = predictor.probabilities(list(ODD_TEXTS.values()))
    assert probs.shape == (len(ODD_TEXTS), 2) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    max_len = predictor.config["data"]["max_len"]
    assert len(predictor.token_ids([ODD_TEXTS["long"]])[0]) == max_len  # truncated


def test_classify_odd_inputs_through_the_cli(small_run):
    texts = [t for k, t in ODD_TEXTS.items() if k != "long"]
    result = run(
        "classify", "--checkpoint", small_run.run_dir, "--format", "jsonl", "-k", 9, *texts
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == texts
    assert all(len(r["labels"]) == 2 for r in records)  # --top-k 9 capped at 2 classes
    assert [bool(r.get("empty")) for r in records] == [True, True, False, False, False]


def test_resume_drops_metrics_rows_of_epochs_it_will_train_again(tmp_path):
    """A crash after an epoch's metrics row but before its train_state: on resume that
    epoch runs again, so its first row must go (else metrics.jsonl lists it twice)."""
    from textlstm.runs import keep_metrics_rows

    rows = [{"epoch": e, "val_loss": 1.0 / e} for e in (1, 2, 3)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    keep_metrics_rows(tmp_path, 2)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2]
    keep_metrics_rows(tmp_path, 2)  # nothing to drop: unchanged
    assert len(path.read_text().splitlines()) == 2
