"""bench/sweep.py: --holdout scores a tenth of train in place of test, which it never reads;
with train.refit, the first run's scores are those of the same run without refit."""

import sys

import pandas as pd
import pytest
from conftest import REPO, tiny_config

sys.path.insert(0, str(REPO / "bench"))
from sweep import fit_scoring_first, holdout_view  # noqa: E402


def test_the_holdout_is_a_stratified_tenth_of_train_and_test_is_left_out(tmp_path):
    pytest.importorskip("sklearn", reason="bench/sweep.py --holdout needs the bench extra")
    source = tmp_path / "data"
    source.mkdir()
    train = pd.DataFrame({"text": [f"text {i}" for i in range(200)], "label": [0] * 150 + [1] * 50})
    train.to_parquet(source / "train.parquet")
    pd.DataFrame({"text": ["v"], "label": [1]}).to_parquet(source / "validation.parquet")
    pd.DataFrame({"text": ["secret"], "label": [0]}).to_parquet(source / "test.parquet")
    (source / "labels.json").write_text('["a", "b"]')

    view = holdout_view(str(source), tmp_path / "view")
    kept, held = (pd.read_parquet(view / f"{s}.parquet") for s in ("train", "test"))
    assert len(held) == 20 and held.label.tolist().count(1) == 5  # a tenth, per class
    assert set(kept.text) | set(held.text) == set(train.text)
    assert not set(kept.text) & set(held.text)
    assert "secret" not in set(held.text)  # the real test split is never copied
    assert pd.read_parquet(view / "validation.parquet").text.tolist() == ["v"]
    assert (view / "labels.json").read_text() == '["a", "b"]'
    again = holdout_view(str(source), tmp_path / "again")  # the same cut every time
    assert pd.read_parquet(again / "test.parquet").text.tolist() == held.text.tolist()


def test_the_score_before_the_refit_is_the_run_without_refit(tmp_path):
    import torch

    from textlstm import training
    from textlstm.evaluate import evaluate_split

    def score(model, prepared):
        split = prepared.splits["test"]
        return evaluate_split(
            model, split, prepared.label_names, torch.device("cpu"), prepared.task
        )

    extra = ("model.num_layers=1", "train.epochs=2", "train.patience=1")
    refit = training.refit
    plain, none = fit_scoring_first(tiny_config(*extra), tmp_path / "plain", score)
    assert none is None  # no refit, nothing read before it
    _, first = fit_scoring_first(tiny_config(*extra, "train.refit=true"), tmp_path / "r", score)
    expected = score(plain.model, plain.prepared)
    assert first["accuracy"] == expected["accuracy"]
    assert first["loss"] == pytest.approx(expected["loss"], abs=1e-6)
    assert training.refit is refit  # put back for the next run
