"""`train.refit`: the chosen epochs again on train + validation; nothing lost if stopped."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import SMS, TINY, tiny_config

from textlstm import checkpoint
from textlstm.evaluate import evaluate_split, format_report, refit_note, report_on
from textlstm.training import fit

EXTRA = ("model.num_layers=1", "train.epochs=3", "train.patience=1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(the same run without and with train.refit)"""
    root = tmp_path_factory.mktemp("refit")
    plain = fit(tiny_config(*EXTRA), root / "plain")
    refit = fit(tiny_config(*EXTRA, "train.refit=true"), root / "refit")
    return plain, refit


def weights(run_dir):
    return checkpoint.load_tensors(run_dir)


def test_refit_trains_the_chosen_epochs_on_train_and_validation(runs):
    plain, refit = runs
    splits = refit.prepared.splits
    # the first run is the plain run itself: same epoch chosen, same validation scores
    assert refit.best == plain.best | {
        k: refit.best[k] for k in ("epoch_s", "tokens_per_s", "refit_epochs", "refit_texts")
    }
    assert refit.best["refit_epochs"] == plain.best["epoch"]
    assert refit.best["refit_texts"] == len(splits["train"]) + len(splits["validation"])
    saved = json.loads((refit.run_dir / "metrics.json").read_text())
    assert saved["refit_texts"] == refit.best["refit_texts"]

    # the bundle holds the refit weights (what fit returned), not the first run's
    shipped, first = weights(refit.run_dir), weights(plain.run_dir)
    assert any(not torch.equal(shipped[k], first[k]) for k in shipped)
    for name, value in refit.model.state_dict().items():
        torch.testing.assert_close(shipped[name], value)

    # and it has learned from the validation texts: its loss on them is lower
    def val_loss(model):
        return evaluate_split(
            model, splits["validation"], refit.prepared.label_names, torch.device("cpu"),
            refit.prepared.task,
        )["loss"]  # fmt: skip

    assert val_loss(refit.model) < val_loss(plain.model)


def test_sigint_during_the_refit_keeps_the_first_bundle_and_resume_redoes_it(runs, tmp_path):
    plain, refit = runs
    run_dir = tmp_path / "stopped"
    args = [sys.executable, "-m", "textlstm", "train", "--data", str(SMS), "--out", str(run_dir)]
    for item in (*TINY, *EXTRA, "train.refit=true"):
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same sums
    proc = subprocess.Popen(
        args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    seen = []
    for line in proc.stderr:  # the signal lands inside the refit's first epoch
        seen.append(line)
        if line.startswith("refit:"):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, "".join(seen) + err
    assert f"--resume {run_dir}" in err
    # nothing of the first run is lost: its bundle and metrics, as if refit were off
    first = weights(plain.run_dir)
    for name, value in weights(run_dir).items():
        torch.testing.assert_close(value, first[name], atol=1e-6, rtol=0)
    assert "refit_epochs" not in json.loads((run_dir / "metrics.json").read_text())

    resumed = fit(tiny_config(*EXTRA, "train.refit=true"), run_dir, resume=True)
    assert resumed.best["epoch"] == refit.best["epoch"]  # no epoch of the first run again
    shipped = weights(refit.run_dir)
    for name, value in weights(run_dir).items():
        torch.testing.assert_close(value, shipped[name], atol=1e-6, rtol=0)


def test_a_report_on_the_validation_the_refit_trained_on_says_it_reads_high(runs, tmp_path):
    plain, refit = runs
    prep = refit.prepared
    where = dict(split="validation", checkpoint=str(refit.run_dir), data=str(SMS))
    report, _ = report_on(
        refit.model, prep.splits["validation"], prep.label_names, prep.task, where, tmp_path,
        tiny_config().train,
    )  # fmt: skip
    assert "reads high" in report["note"]
    assert f"accuracy {refit.best['val_accuracy']:.4f}" in report["note"]  # the first run's
    assert f"note: {report['note']}" in format_report(report)
    assert json.loads((tmp_path / "report.json").read_text())["note"] == report["note"]
    assert report["note"] in (tmp_path / "report.md").read_text()

    # no note where the report reads texts the shipped model never trained on
    assert refit_note({**where, "split": "test"}) is None
    assert refit_note({**where, "data": str(tmp_path)}) is None  # another dataset's validation
    assert refit_note({**where, "checkpoint": str(plain.run_dir)}) is None  # no refit
