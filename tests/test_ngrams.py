"""The n-gram branch (`model.ngrams`): hashing, padding, the whole text, every engine."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config

from textlstm import TextlstmError
from textlstm.cli import main
from textlstm.config import DataConfig, ModelConfig
from textlstm.model import TextLSTM
from textlstm.ngrams import bag_matrix, hashed
from textlstm.predict import Predictor, onnx_available
from textlstm.tokenizer import encode_with_bag, train_tokenizer

OTHER_ENGINES = ["numpy"] + (["onnx"] if onnx_available() else [])  # each must equal torch


def test_hashing_is_fixed_in_range_and_order_aware():
    ids = [5, 9, 5, 9]
    got = hashed(ids, 2, 1000)
    assert len(got) == 4 + 3 and got.min() >= 1 and got.max() <= 1000
    assert got[0] == got[2] and got[4] == got[6] and got[4] != got[5]  # "5 9" twice, "9 5"
    assert hashed([7], 3, 1000).tolist() == hashed([7], 1, 1000).tolist()  # no 2-grams of 1
    assert hashed([7, 7], 2, 10**9)[0] != hashed([7, 7], 2, 10**9)[2]  # "7" vs "7 7"
    # the ids are fastText's multiply-add in 64-bit unsigned arithmetic, written out again
    # with Python integers: the numpy engine, batches and exported graphs depend on them
    rng = np.random.default_rng(0)
    for _ in range(20):
        row = rng.integers(0, 2**31, rng.integers(1, 9)).tolist()
        assert hashed(row, 3, 100_003).tolist() == reference(row, 3, 100_003)


def reference(ids, n, buckets):
    out = []
    for k in range(1, n + 1):
        for start in range(len(ids) - k + 1):
            h = k
            for t in ids[start : start + k]:
                h = (h * 116049371 + t) % 2**64
            out.append(h % buckets + 1)
    return out


def test_bag_matrix_pads_with_zero():
    bag = bag_matrix([[3, 4, 5], [6]], 2, 50)
    assert bag.shape == (2, 5) and (bag[1, 1:] == 0).all() and (bag[0] > 0).all()


def test_padding_never_changes_logits_with_a_bag():
    torch.manual_seed(0)
    model = TextLSTM(ModelConfig(emb_dim=8, hidden_dim=8, ngrams=2, ngram_buckets=40), 50, 3).eval()
    text = torch.tensor([[5, 9, 13]])
    alone = model(text, torch.tensor([3]), torch.from_numpy(bag_matrix([[5, 9, 13]], 2, 40)))
    batch = torch.zeros(3, 11, dtype=torch.long)
    batch[0, :3] = text
    batch[1:] = torch.randint(2, 50, (2, 11))
    rows = [[5, 9, 13], batch[1].tolist() * 3, batch[2].tolist()]
    in_batch = model(batch, torch.tensor([3, 11, 11]), torch.from_numpy(bag_matrix(rows, 2, 40)))
    torch.testing.assert_close(in_batch[0:1], alone, atol=1e-6, rtol=0)


def test_the_bag_reads_past_max_len():
    from datasets import Dataset

    tok = train_tokenizer(Dataset.from_dict({"text": ["a b c d e f g h"] * 3}), DataConfig())
    ids, whole = encode_with_bag(tok, ["a b c d e f g h"], max_len=3)
    assert len(ids[0]) == 3 and len(whole[0]) == 8 and whole[0][:3] == ids[0]


@pytest.fixture(scope="module", params=["mean", "sqrt"])
def ngram_run(request, tmp_path_factory):
    from textlstm.training import fit

    cfg = tiny_config(
        "model.ngrams=2",
        "model.ngram_buckets=5000",
        "model.ngram_dim=16",
        "data.max_len=12",
        f"model.ngram_pooling={request.param}",
    )
    return fit(cfg, tmp_path_factory.mktemp("checkpoints") / f"ngrams-{request.param}")


def test_a_tiny_ngram_model_learns_and_every_engine_agrees(ngram_run, tmp_path):
    run = ngram_run.run_dir
    assert ngram_run.best["val_macro_f1"] > 0.8  # SMS spam; chance is about 0.46
    texts = ["WINNER!! You have won a free prize, call now " * 5, "see you at lunch", ""]
    torch_probs = Predictor(run, engine="torch").probabilities(texts)
    for engine in OTHER_ENGINES:
        probs = Predictor(run, engine=engine).probabilities(texts)
        np.testing.assert_allclose(probs, torch_probs, atol=1e-5, err_msg=engine)
    assert json.loads((run / "config.json").read_text())["model"]["ngrams"] == 2


def test_sqrt_pooling_divides_the_bag_by_the_root_of_its_count():
    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=8, hidden_dim=8, ngrams=2, ngram_buckets=40, ngram_pooling="sqrt")
    model = TextLSTM(cfg, 50, 3)
    bags = torch.tensor([[3, 7, 7, 9], [5, 0, 0, 0]])
    table = model.ngram_embedding.weight
    want = torch.stack([(table[3] + 2 * table[7] + table[9]) / 2, table[5]])
    torch.testing.assert_close(model.ngram_bag(bags), want)
    with pytest.raises(TextlstmError, match="ngram_pooling"):
        ModelConfig(ngram_pooling="max").check()


def test_an_ngram_model_exports_with_parity(ngram_run, tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--checkpoint",
            str(ngram_run.run_dir),
            "--format",
            "onnx",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "matches torch" in result.output


@pytest.mark.parametrize("truncation", ["head", "head+tail"])
def test_the_bag_never_changes_what_the_lstm_reads(truncation):
    from datasets import Dataset

    from textlstm.tokenizer import encode

    tok = train_tokenizer(Dataset.from_dict({"text": ["alpha beta gamma delta"] * 3}), DataConfig())
    texts = ["alpha beta " * 30000 + "gamma", "delta " * 40, "", "gamma"]  # 330k characters
    ids, whole = encode_with_bag(tok, texts, max_len=16, truncation=truncation)
    assert ids == encode(tok, texts, max_len=16, truncation=truncation)
    assert len(whole[0]) == 18_182  # the first 100,000 characters: 2 words per 11


def test_evaluate_runs_an_ngram_model(ngram_run, tmp_path):
    from conftest import SMS

    result = CliRunner().invoke(
        main,
        [
            "evaluate",
            "--checkpoint",
            str(ngram_run.run_dir),
            "--data",
            str(SMS),
            "--report-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "report.json").read_text())["accuracy"] > 0.9


def test_the_bag_learns_at_its_own_rate_when_asked():
    from textlstm.config import TrainConfig
    from textlstm.learner import Learner, make_optimizer
    from textlstm.task import SingleLabel

    model = TextLSTM(ModelConfig(emb_dim=8, hidden_dim=8, num_layers=1, ngrams=2), 30, 2)
    plain = make_optimizer(model, TrainConfig(ngram_lr_scale=1.0))
    assert len(plain.param_groups) == 2  # scale 1: the groups (and train states) as before
    tc = TrainConfig(ngram_lr_scale=10, lr=1e-3, warmup_ratio=0.0, schedule="constant")
    scaled = make_optimizer(model, tc)
    bag = model.ngram_embedding.weight
    homes = [g for g in scaled.param_groups if any(p is bag for p in g["params"])]
    assert len(homes) == 1 and homes[0]["params"] == [bag] and homes[0]["lr"] == 1e-2
    everything = [p for g in scaled.param_groups for p in g["params"]]
    assert len(everything) == len(list(model.parameters()))  # each parameter exactly once
    # and the schedule keeps the ratio: one step moves the bag's rows 10x the LSTM's rate
    learner = Learner(model, SingleLabel(), None, tc, torch.device("cpu"), total_steps=4)
    learner.restore({})
    rates = {id(p): g["lr"] for g in learner.optimizer.param_groups for p in g["params"]}
    assert rates[id(bag)] == pytest.approx(10 * rates[id(model.classifier.weight)])


def test_bag_dropout_hides_whole_bags_in_training_only():
    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=8, hidden_dim=8, num_layers=1, ngrams=2, ngram_dropout=0.5)
    model = TextLSTM(cfg, 30, 2)
    torch.nn.init.normal_(model.ngram_embedding.weight)  # bags far from zero
    ids, lengths = torch.randint(2, 30, (64, 6)), torch.full((64,), 6)
    bags = torch.randint(1, cfg.ngram_buckets, (64, 11))
    width = model.ngram_embedding.weight.shape[1]
    model.train()
    part = model.features(ids, lengths, bags)[:, -width:]
    hidden = (part.abs().sum(dim=1) == 0).float().mean().item()
    assert 0.25 < hidden < 0.75  # about half the texts see no bag, the rest all of it
    model.eval()
    full = model.features(ids, lengths, bags)[:, -width:]
    assert (full.abs().sum(dim=1) > 0).all()  # never at prediction time
    shown = part.abs().sum(dim=1) > 0
    torch.testing.assert_close(part[shown], full[shown] * 2)  # kept bags scaled by 1/(1-p)


def test_the_lstm_alone_loss_scores_the_same_features_with_and_without_the_bag():
    from textlstm.config import TrainConfig
    from textlstm.learner import Learner
    from textlstm.task import SingleLabel

    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=8, hidden_dim=8, num_layers=1, ngrams=2, ngram_buckets=50)
    model = TextLSTM(cfg, 30, 3).eval()  # eval: no dropout, so the halves can be compared
    torch.nn.init.normal_(model.ngram_embedding.weight)
    ids, lengths = torch.randint(2, 30, (5, 6)), torch.full((5,), 6)
    bags, targets = torch.randint(1, 50, (5, 11)), torch.tensor([0, 1, 2, 1, 0])
    both = model(ids, lengths, bags, alone=True)
    torch.testing.assert_close(both[:5], model(ids, lengths, bags))  # first: as predicted
    feats = model.features(ids, lengths, bags)
    feats[:, -cfg.ngram_dim :] = 0
    torch.testing.assert_close(both[5:], model.classifier(feats))  # then: the LSTM alone
    tc = TrainConfig(lstm_alone_loss=0.3)
    loss = Learner(model, SingleLabel(), None, tc, torch.device("cpu"), 4).loss(
        ids, lengths, bags, targets
    )
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(loss, 0.7 * ce(both[:5], targets) + 0.3 * ce(both[5:], targets))
    loss.backward()  # the bag learns from every text, not only from a share of them
    rows = model.ngram_embedding.weight.grad[bags.flatten()]
    assert (rows.abs().sum(dim=1) > 0).all()
    plain = TextLSTM(ModelConfig(emb_dim=8, hidden_dim=8, num_layers=1, ngrams=0), 30, 3)
    assert plain(ids, lengths, alone=True).shape == (5, 3)  # no bag: nothing to hide


def test_a_bundle_from_before_the_bag_was_the_default_loads_without_one(tmp_path):
    """config.json files written before these keys existed ran without the bag, the bag's
    rate or adversarial training: they must load (and resume) as they ran."""
    from textlstm.config import from_dict
    from textlstm.training import fit

    old = from_dict({"model": {"hidden_dim": 16}, "train": {"epochs": 2}})
    assert (old.model.ngrams, old.model.ngram_dropout) == (0, 0.0)
    assert (old.train.ngram_lr_scale, old.train.adversarial) == (1.0, 0.0)
    assert old.train.lstm_alone_loss == 0.0 and old.model.ngram_pooling == "mean"
    assert old.train.refit is False  # a resumed old run ends as it would have, unrefit
    assert from_dict({"model": {"ngrams": 3}}).model.ngrams == 3  # a saved value wins
    run = fit(tiny_config("model.ngrams=0", "train.epochs=1"), tmp_path / "run").run_dir
    texts = ["WINNER!! free prize, call now", "see you at lunch"]
    want = Predictor(run, engine="torch").probabilities(texts)
    config = json.loads((run / "config.json").read_text())
    for key in ("ngrams", "ngram_buckets", "ngram_dim", "ngram_dropout", "ngram_pooling"):
        del config["model"][key]
    for key in ("ngram_lr_scale", "adversarial", "lstm_alone_loss", "refit"):
        del config["train"][key]
    (run / "config.json").write_text(json.dumps(config))
    for engine in ("torch", "numpy"):
        np.testing.assert_allclose(
            Predictor(run, engine=engine).probabilities(texts), want, atol=1e-5
        )


@pytest.mark.parametrize("ngram_run", ["mean"], indirect=True)
def test_a_bundle_from_before_sqrt_pooling_keeps_its_mean(ngram_run, tmp_path):
    """A bag bundle written before `model.ngram_pooling` existed averaged its bag: read
    without the key, every engine must still average it, not take today's default."""
    import shutil

    run = shutil.copytree(ngram_run.run_dir, tmp_path / "old")
    texts = ["WINNER!! You have won a free prize, call now " * 5, "see you at lunch"]
    want = Predictor(run, engine="torch").probabilities(texts)
    config = json.loads((run / "config.json").read_text())
    del config["model"]["ngram_pooling"]
    (run / "config.json").write_text(json.dumps(config))
    for engine in ["torch", *OTHER_ENGINES]:
        got = Predictor(run, engine=engine).probabilities(texts)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=engine)
