"""bench/sweep.py --holdout: a tenth of train scored in place of test, which it never reads."""

import sys

import pandas as pd
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from sweep import holdout_view  # noqa: E402


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
