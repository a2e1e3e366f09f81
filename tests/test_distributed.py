"""DDP on CPU: 2 gloo processes launched by torchrun follow a single process's run."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import SMS, TINY, tiny_config
from safetensors import safe_open

from textlstm.predict import Predictor

# No dropout: the two runs must then differ only by float summation order.
EXACT = [
    "model.dropout=0",
    "model.embedding_dropout=0",
    "model.ngram_dropout=0",
    "train.test=false",
    "train.epochs=2",
    "train.refit=true",  # the second run too, on train + validation, shards and all
]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """300 training and 60 validation texts of the bundled SMS data."""
    folder = tmp_path_factory.mktemp("sms300")
    for split, n in (("train", 300), ("validation", 60)):
        pd.read_parquet(SMS / f"{split}.parquet").head(n).to_parquet(folder / f"{split}.parquet")
    (folder / "labels.json").write_text((SMS / "labels.json").read_text())
    return folder


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def weight_shapes(run_dir):
    with safe_open(str(run_dir / "model.safetensors"), "np") as f:
        return {key: f.get_slice(key).get_shape() for key in f.keys()}


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(small_data, tmp_path):
    from textlstm.training import fit

    single = fit(tiny_config(*EXACT, "train.batch_size=32", source=small_data), tmp_path / "one")
    # Two processes with 16 texts each: the same global batch of 32.
    sets = TINY + EXACT + ["train.batch_size=16"]
    overrides = [a for item in sets for a in ("--set", item)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "textlstm",
            "train",
            "--nproc",
            "2",
            "--data",
            str(small_data),
            "--out",
            str(tmp_path / "ddp"),
            *overrides,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ddp_dir = tmp_path / "ddp"
    assert "2 processes" in done.stderr and done.stderr.count("effective config") == 1

    # The loss curve: same global batches, same steps, same numbers to float tolerance.
    one, two = metrics(single.run_dir), metrics(ddp_dir)
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for a, b in zip(one, two, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-4)
        assert b["val_accuracy"] == pytest.approx(a["val_accuracy"], abs=1e-9)

    # The bundle has the single-process form, and classify reads it.
    refit = json.loads((ddp_dir / "metrics.json").read_text())
    assert refit["refit_texts"] == 360 and refit["refit_epochs"] == single.best["refit_epochs"]
    assert weight_shapes(ddp_dir) == weight_shapes(single.run_dir)
    assert not any(key.startswith("module.") for key in weight_shapes(ddp_dir))
    from textlstm.checkpoint import REPORT_FILES

    by_cli = set(REPORT_FILES)  # the CLI's test report
    ddp_files = {p.name for p in ddp_dir.iterdir()} - by_cli
    assert ddp_files == {p.name for p in single.run_dir.iterdir()}
    ours = Predictor(ddp_dir).probabilities(["free prize call now", "see you at lunch"])
    theirs = Predictor(single.run_dir).probabilities(["free prize call now", "see you at lunch"])
    assert abs(ours - theirs).max() < 1e-3
