"""Language-model pretraining (`textlstm pretrain`) and `train --init-from`: no leak, the
classifier starts from exactly the pretrained stacks, exact resume, clear refusals, and
the fine-tuning aids (discriminative rates, gradual unfreezing)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SMS

from textlstm import checkpoint
from textlstm.cli import main
from textlstm.config import ModelConfig, TrainConfig, build
from textlstm.learner import group_factor, layer_depth, make_optimizer
from textlstm.lm import LanguageModel, prediction_rows
from textlstm.model import TextLSTM
from textlstm.pretraining import pretrain, read_unlabeled

TINY_LM = [
    "model.emb_dim=12",
    "model.hidden_dim=12",
    "model.num_layers=2",
    "data.vocab_size=2000",
    "train.batch_size=32",
    "train.lr=5e-3",
    "pretrain.max_texts=1200",
]


def tiny_lm(vocab=40, layers=2, bidirectional=True):
    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=8, hidden_dim=8, num_layers=layers, bidirectional=bidirectional)
    cfg.dropout = cfg.embedding_dropout = 0.0
    return LanguageModel(cfg, vocab, torch.arange(vocab)).eval()


def predictions(lm, ids, lengths):
    """Log-probabilities each direction gives every position's token, (D, B, T, V):
    forward from the state before it, backward from the state after it (-inf: none)."""
    states = lm.stacks(ids, lengths)
    batch, steps = ids.shape
    out = torch.full((len(states), batch, steps, lm.lm_head.n_classes), float("-inf"))
    for d, s in enumerate(states):
        for b in range(batch):
            for t in range(lengths[b]):
                source = t - 1 if d == 0 else t + 1
                if 0 <= source < lengths[b]:
                    out[d, b, t] = lm.lm_head.log_prob(s[b, source][None])[0]
    return out


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_changing_token_t_never_moves_either_prediction_of_token_t(layers):
    lm = tiny_lm(layers=layers)
    with torch.no_grad():  # the cross blocks are 0 by construction; make them loud instead:
        for name, p in lm.rnn.named_parameters():  # the stacks must not read them at all
            if "weight_ih_l" in name and not name.endswith("_l0") and "_l0_" not in name:
                p.add_(torch.randn_like(p))
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([9, 6, 1])
    ids = torch.randint(2, 40, (3, 9), generator=gen)
    ids[1, 6:] = ids[2, 1:] = 0  # padding
    with torch.no_grad():
        before = predictions(lm, ids, lengths)
        for b, t in [(0, 0), (0, 4), (0, 8), (1, 2), (1, 5), (2, 0)]:
            changed = ids.clone()
            changed[b, t] = 2 + (int(ids[b, t]) - 1) % 38  # another real token
            after = predictions(lm, changed, lengths)
            torch.testing.assert_close(after[:, b, t], before[:, b, t], rtol=0, atol=0)
            if lengths[b] > 2:  # the test can fail: a neighbour's prediction does move
                moved = t + 1 if t + 1 < lengths[b] else t - 1
                direction = 0 if moved == t + 1 else 1
                assert not torch.equal(after[direction, b, moved], before[direction, b, moved])


def test_a_stacked_bilstm_would_leak_which_is_why_the_stacks_are_kept_apart():
    """The control: the classifier's own arrangement (second layer reads both directions)
    lets the forward state before token t see token t through the backward half."""
    cfg = ModelConfig(emb_dim=8, hidden_dim=8, num_layers=2, dropout=0.0, embedding_dropout=0.0)
    torch.manual_seed(0)
    model = TextLSTM(cfg, 40, 2).eval()
    ids, lengths = torch.randint(2, 40, (1, 7)), torch.tensor([7])
    changed = ids.clone()
    changed[0, 4] = 2 + (int(ids[0, 4]) - 1) % 38
    with torch.no_grad():
        a, _ = model.rnn.encode(model.embedding(ids), lengths)
        b, _ = model.rnn.encode(model.embedding(changed), lengths)
    assert not torch.equal(a[0, 3, :8], b[0, 3, :8])  # forward half at t-1 moved: a leak


def test_prediction_rows_pair_each_state_with_its_neighbour():
    rows, count = prediction_rows(torch.tensor([3, 1, 2]), 3, "cpu")
    (fwd_read, fwd_target), (bwd_read, bwd_target) = rows
    assert count == 2 + 0 + 1
    assert fwd_read.tolist() == [0, 1, 6] and fwd_target.tolist() == [1, 2, 7]
    assert bwd_read.tolist() == [1, 2, 7] and bwd_target.tolist() == [0, 1, 6]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny pretraining through the Python API: (its metrics.json, its folder)."""
    import textlstm

    out = tmp_path_factory.mktemp("pre") / "lm"
    folder = textlstm.pretrain(SMS, out, overrides=[*TINY_LM, "pretrain.epochs=2"])
    return json.loads((folder / "metrics.json").read_text()), folder


def test_pretraining_writes_a_bundle_and_keeps_the_cross_blocks_zero(pretrained):
    result, out = pretrained
    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json"):
        assert (out / name).is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["heldout_ppl"] < rows[0]["heldout_ppl"] < 2000  # it learned something
    assert result["texts"] == 1200 - round(0.02 * 1200)
    tensors = checkpoint.load_tensors(out)
    assert not tensors["rnn.weight_ih_l1"][:, 12:].any()  # forward layer 1: backward half
    assert not tensors["rnn.weight_ih_l1_reverse"][:, :12].any()
    assert tensors["rnn.weight_ih_l1"][:, :12].abs().sum() > 0


def test_the_classifier_starts_from_exactly_the_pretrained_stacks(pretrained):
    _, out = pretrained
    saved, encoder, tokenizer = checkpoint.load_pretrained(out)
    model_cfg = build(None, tuple(TINY_LM)).model
    model_cfg.dropout = model_cfg.embedding_dropout = 0.0
    model = TextLSTM(model_cfg, saved["vocab_size"], 2).eval()
    model.load_encoder(encoder)
    lm = LanguageModel(model_cfg, saved["vocab_size"], torch.zeros(saved["vocab_size"]).long())
    lm.load_state_dict(checkpoint.load_tensors(out))
    lm.eval()
    texts = ["free entry to win a prize now", "ok see you", "hi"]
    ids = [e.ids for e in tokenizer.encode_batch(texts)]
    lengths = torch.tensor([len(i) for i in ids])
    batch = torch.zeros(3, int(lengths.max()), dtype=torch.long)
    for row, seq in enumerate(ids):
        batch[row, : len(seq)] = torch.tensor(seq)
    with torch.no_grad():
        out_states, _ = model.rnn.encode(model.embedding(batch), lengths)
        forward, backward = lm.stacks(batch, lengths)
    for row, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out_states[row, :n, :12], forward[row, :n], atol=1e-6, rtol=0)
        torch.testing.assert_close(out_states[row, :n, 12:], backward[row, :n], atol=1e-6, rtol=0)


def test_the_python_api_fine_tunes_from_a_pretraining(pretrained, tmp_path):
    import textlstm

    _, lm = pretrained
    run = textlstm.train(SMS, out=tmp_path / "clf", init_from=lm, overrides={"train.epochs": 1})
    assert json.loads((run / "config.json").read_text())["model"]["init_from"] == str(lm)
    assert textlstm.load(run).predict_proba(["free prize"]).shape == (1, 2)


def test_a_refit_starts_from_the_pretrained_encoder_even_in_a_resumed_run(pretrained, tmp_path):
    """A resumed run takes its weights from train_state.pt, not the encoder; its refit
    must read the encoder again, or it would start from random weights."""
    from textlstm.training import fit

    _, lm = pretrained

    def cfg(refit: bool):
        sets = (*TINY_LM, f"model.init_from={lm}", "train.epochs=1", "train.adversarial=0")
        made = build(None, (*sets, f"train.refit={refit}"))
        made.data.source = str(SMS)
        return made

    straight = fit(cfg(True), tmp_path / "straight")
    fit(cfg(False), tmp_path / "resumed")
    fit(cfg(True), tmp_path / "resumed", resume=True)  # epoch 1 was the last: refit only
    assert straight.best["refit_epochs"] == 1
    want = checkpoint.load_tensors(straight.run_dir)
    for name, value in checkpoint.load_tensors(tmp_path / "resumed").items():
        torch.testing.assert_close(value, want[name], atol=1e-6, rtol=0)


def test_pretrain_then_init_from_then_classify(tmp_path):
    runner = CliRunner()
    lm, clf = tmp_path / "lm", tmp_path / "clf"
    sets = [x for item in TINY_LM for x in ("--set", item)] + ["--set", "pretrain.epochs=1"]
    done = runner.invoke(main, ["pretrain", "--data", str(SMS), "--out", str(lm), *sets])
    assert done.exit_code == 0, done.output
    assert f"--init-from {lm}" in done.output
    finetune = [
        "train", "--data", str(SMS), "--out", str(clf), "--init-from", str(lm),
        "--set", "train.epochs=1", "--set", "train.layer_lr_decay=2", "--set", "train.unfreeze=0.5",
    ]  # fmt: skip
    done = runner.invoke(main, finetune)
    assert done.exit_code == 0, done.output
    assert "model.hidden_dim=12 from the pretrained encoder" in done.output
    config = json.loads((clf / "config.json").read_text())
    assert config["model"]["init_from"] == str(lm) and config["model"]["hidden_dim"] == 12
    assert (clf / "tokenizer.json").read_text() == (lm / "tokenizer.json").read_text()
    done = runner.invoke(main, ["classify", "--checkpoint", str(clf), "WINNER!! call now"])
    assert done.exit_code == 0 and done.output.split("\t")[0] in ("ham", "spam"), done.output


def error_line(args) -> str:
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 1, done.output
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "Traceback" not in done.output, done.output
    return lines[-1]


def test_mismatched_or_wrong_folders_are_refused_with_one_line(pretrained, tiny_run, tmp_path):
    _, lm = pretrained
    train = ["train", "--data", str(SMS), "--out", str(tmp_path / "x")]
    assert "hidden_dim 12" in error_line(
        [*train, "--init-from", str(lm), "--set", "model.hidden_dim=32"]
    )
    assert "vocab_size 2000" in error_line(
        [*train, "--init-from", str(lm), "--set", "data.vocab_size=50"]
    )
    assert "not a textlstm pretrain folder" in error_line(
        [*train, "--init-from", str(tiny_run.run_dir)]
    )
    assert "no such folder" in error_line([*train, "--init-from", str(tmp_path / "none")])
    assert "choose one" in error_line(
        [*train, "--init-from", str(lm), "--set", f"model.vectors={tmp_path / 'v.txt'}"]
    )
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        (edited / name).write_bytes((lm / name).read_bytes())
    config = json.loads((edited / "config.json").read_text())
    config["model"]["hidden_dim"] = 24
    (edited / "config.json").write_text(json.dumps(config))
    assert "does not fit its config.json" in error_line([*train, "--init-from", str(edited)])
    assert "not a classifier" in error_line(["classify", "--checkpoint", str(lm), "hi"])
    assert "pretrain --resume" in error_line(["train", "--resume", str(lm)])
    assert "nothing to resume" in error_line(["pretrain", "--resume", str(tiny_run.run_dir)])
    assert "needs --out" in error_line(["pretrain", "--data", str(SMS)])
    fine_tuning = ["--set", "train.unfreeze=1", "--out", str(tmp_path / "y")]
    assert "for fine-tuning" in error_line(["pretrain", "--data", str(SMS), *fine_tuning])
    held = error_line(["pretrain", "--resume", str(lm), "--set", "train.seed=3"])
    assert "needs a new pretraining" in held
    own = ["train", "--data", str(SMS), "--out", str(lm), "--init-from", str(lm), "--overwrite"]
    assert "would be lost" in error_line(own)
    assert (lm / "model.safetensors").is_file()  # the pretraining is untouched
    assert not (tmp_path / "x").exists()  # nothing was started


def test_unlabeled_files_of_every_kind_and_folders(tmp_path):
    import pandas as pd

    (tmp_path / "a.txt").write_text("one\n\n  \ntwo\n")
    (tmp_path / "b.jsonl").write_text('{"text": "three"}\n{"text": "four"}\n')
    pd.DataFrame({"text": ["five", None]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"text": ["six"]}).to_parquet(tmp_path / "d.parquet")
    texts = read_unlabeled([tmp_path], "text")
    assert texts == ["one", "two", "three", "four", "five", "six"]
    assert read_unlabeled([tmp_path / "a.txt"], "text") == ["one", "two"]
    with pytest.raises(Exception, match="no column 'body'"):
        read_unlabeled([tmp_path / "c.csv"], "body")
    with pytest.raises(Exception, match="no such file"):
        read_unlabeled([tmp_path / "nope.txt"], "text")
    (tmp_path / "e.json").write_text("[]")
    with pytest.raises(Exception, match="use .txt"):
        read_unlabeled([tmp_path / "e.json"], "text")
    (tmp_path / "f.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(Exception, match="--unlabeled .*no 'text' field"):
        read_unlabeled([tmp_path / "f.jsonl"], "text")


def test_a_run_that_carves_validation_otherwise_is_warned(tmp_path):
    """No validation split: pretraining and classifier must carve alike, or the encoder has
    read texts that validation scores."""
    import pandas as pd

    data = tmp_path / "data"
    data.mkdir()
    pd.read_parquet(SMS / "train.parquet").head(600).to_parquet(data / "train.parquet")
    runner = CliRunner()
    sets = ["--set", "pretrain.epochs=1", *[x for i in TINY_LM for x in ("--set", i)]]
    done = runner.invoke(
        main, ["pretrain", "--data", str(data), "--out", str(tmp_path / "lm"), *sets]
    )
    assert done.exit_code == 0, done.output
    train = [
        "train",
        "--data",
        str(data),
        "--init-from",
        str(tmp_path / "lm"),
        "--set",
        "train.epochs=1",
    ]
    same = runner.invoke(main, [*train, "--out", str(tmp_path / "a")])
    assert same.exit_code == 0 and "encoder was pretrained" not in same.output, same.output
    other = runner.invoke(main, [*train, "--out", str(tmp_path / "b"), "--seed", "1"])
    assert other.exit_code == 0, other.output
    assert "warning: the encoder was pretrained" in other.output


def test_sigint_mid_pretraining_then_resume_ends_with_the_same_weights(tmp_path):
    extra = ["pretrain.epochs=3", "pretrain.max_texts=3000"]
    cfg = build(None, (*TINY_LM, *extra))
    cfg.data.source = str(SMS)
    pretrain(cfg, tmp_path / "straight")
    run_dir = tmp_path / "interrupted"
    args = [sys.executable, "-m", "textlstm", "pretrain", "--data", str(SMS), "--out", str(run_dir)]
    for item in (*TINY_LM, *extra):
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.time() + 600
    while not (run_dir / "metrics.jsonl").is_file() and time.time() < deadline:
        time.sleep(0.02)
    assert (run_dir / "metrics.jsonl").is_file(), "epoch 1 did not finish in time"
    time.sleep(0.3)  # inside epoch 2
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"pretrain --resume {run_dir}" in err
    state = checkpoint.load_train_state(run_dir)
    assert state["epoch"] == 1 and state["batches_done"] > 0

    done = CliRunner().invoke(main, ["pretrain", "--resume", str(run_dir)])
    assert done.exit_code == 0, done.output
    a = checkpoint.load_train_state(tmp_path / "straight")
    b = checkpoint.load_train_state(run_dir)
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, atol=1e-6, rtol=0)
    rows = [
        [json.loads(line)["heldout_loss"] for line in (d / "metrics.jsonl").open()]
        for d in (tmp_path / "straight", run_dir)
    ]
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-6)


def test_layer_depths_and_rates():
    model = TextLSTM(ModelConfig(num_layers=2, ngrams=2, ngram_buckets=10), 50, 2)
    depths = {n: layer_depth(n, 2) for n, _ in model.named_parameters()}
    assert depths["embedding.weight"] == 3 and depths["classifier.weight"] == 0
    assert depths["rnn.weight_ih_l0_reverse"] == 2 and depths["rnn.bias_hh_l1"] == 1
    assert depths["ngram_embedding.weight"] == 0
    tc = TrainConfig(epochs=4, layer_lr_decay=2.0, unfreeze=1.0, warmup_ratio=0.0)
    factors = [group_factor(d, 400, tc) for d in range(4)]  # 100 steps per epoch
    assert [f(50) for f in factors] == [pytest.approx(f_top) for f_top in (factors[0](50), 0, 0, 0)]
    assert factors[1](100) == pytest.approx(factors[0](100) / 2)
    assert factors[3](299) == 0 and factors[3](300) == pytest.approx(factors[0](300) / 8)
    from textlstm.learner import frozen_throughout

    never = frozen_throughout(ModelConfig(num_layers=2), TrainConfig(epochs=3, unfreeze=1))
    assert never == ["the word embedding"]  # fit prints a warning for it
    plain = make_optimizer(model, TrainConfig(ngram_lr_scale=1.0))
    assert len(plain.param_groups) == 2  # a plain run's groups (and train states) as before


def test_frozen_layers_do_not_move_until_their_epoch():
    from textlstm.learner import Learner
    from textlstm.task import SingleLabel

    torch.manual_seed(0)
    model = TextLSTM(ModelConfig(emb_dim=8, hidden_dim=8, num_layers=1, ngrams=0), 30, 2)
    tc = TrainConfig(epochs=2, unfreeze=1.0, warmup_ratio=0.0, lr=1e-2)
    learner = Learner(model, SingleLabel(), None, tc, torch.device("cpu"), total_steps=8)
    learner.restore({})
    gen = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(2, 30, (4, 5), generator=gen),
        "lengths": torch.tensor([5, 4, 3, 2]),
        "labels": torch.tensor([0, 1, 0, 1]),
    }
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    moved = lambda name: not torch.equal(start[name], dict(model.named_parameters())[name])  # noqa: E731
    for _ in range(4):  # epoch 1: the classifier alone
        learner.step(batch, 4)
    assert moved("classifier.weight")
    assert not moved("rnn.weight_hh_l0") and not moved("embedding.weight")
    learner.step(batch, 4)  # epoch 2: the LSTM layer (depth 1) thaws, the embedding (2) not yet
    assert moved("rnn.weight_hh_l0") and not moved("embedding.weight")


def test_the_activation_penalty_adds_alpha_times_the_mean_square_of_the_states():
    from textlstm.lm import lm_loss

    lm = tiny_lm()
    batch = {"input_ids": torch.randint(2, 40, (2, 6)), "lengths": torch.tensor([6, 4])}
    plain, nll, count = lm_loss(lm, batch, torch.device("cpu"), "fp32")
    regular, nll_again, _ = lm_loss(lm, batch, torch.device("cpu"), "fp32", activation_reg=2.0)
    assert count == 2 * (5 + 3) and torch.equal(plain, nll) and torch.equal(nll, nll_again)
    forward, backward = lm.stacks(batch["input_ids"], batch["lengths"])
    rows, _ = prediction_rows(batch["lengths"], 6, "cpu")
    states = torch.cat(
        [s.reshape(-1, 8)[r] for s, (r, _) in zip((forward, backward), rows, strict=True)]
    )
    torch.testing.assert_close(regular, nll + 2.0 * states.pow(2).mean())
