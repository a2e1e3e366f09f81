"""TensorBoard event files beside metrics.jsonl (train.tensorboard = true)."""

import json
import sys

import pandas as pd
import pytest
from conftest import SMS, tiny_config

from textlstm import TextlstmError, tblog
from textlstm.training import fit


@pytest.fixture
def small_sms(tmp_path):
    """400 train / 100 validation real SMS texts: a run of a second or two."""
    folder = tmp_path / "sms_small"
    folder.mkdir()
    for split, n in (("train", 400), ("validation", 100)):
        pd.read_parquet(SMS / f"{split}.parquet").head(n).to_parquet(folder / f"{split}.parquet")
    (folder / "labels.json").write_text((SMS / "labels.json").read_text())
    return folder


def test_tensorboard_event_files_hold_loss_lr_and_val_metrics(small_sms, tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    cfg = tiny_config(
        "train.tensorboard=true", "train.log_every=3", "train.test=false", source=small_sms
    )
    run_dir = tmp_path / "run"
    fit(cfg, run_dir)
    events = list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert events, "no event file in <run>/tb"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/loss", "val/accuracy", "val/macro_f1"} <= tags
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val = acc.Scalars("val/macro_f1")
    assert [e.step for e in val] == [r["step"] for r in rows]  # one point per epoch
    assert [e.value for e in val] == pytest.approx([r["val_macro_f1"] for r in rows])
    steps_per_epoch = rows[0]["step"]
    logged = [e.step for e in acc.Scalars("train/loss")]
    expected = [e * steps_per_epoch + s for e in range(2) for s in range(3, steps_per_epoch + 1, 3)]
    assert logged == expected  # every log_every steps, counted within each epoch
    assert all(e.value > 0 for e in acc.Scalars("train/lr"))


def test_missing_tensorboard_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(TextlstmError) as error:
        tblog.open_writer(tmp_path, resume=False, step=0)
    assert "pip install 'textlstm[tensorboard]'" in str(error.value)
    assert "\n" not in str(error.value)
