"""`train --autotune DURATION`: trials on validation within a budget, the best kept."""

import json
import math
import re

import pytest
import torch
from click.testing import CliRunner
from conftest import SMS, TINY, tiny_config

from textlstm import TextlstmError, autotune
from textlstm.cli import main

SMALL = {"train.lr": (5e-3, 2e-2), "train.epochs": (1, 2)}  # TINY's lr and epochs among them


@pytest.mark.parametrize(
    "text, seconds", [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("1.5m", 90)]
)
def test_durations(text, seconds):
    assert autotune.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "0", "5x", "-3m"])
def test_bad_durations_are_one_line(text):
    with pytest.raises(TextlstmError, match="--autotune"):
        autotune.parse_duration(text)


def test_the_same_seed_draws_the_same_distinct_trials():
    first, again = autotune.draw_trials(0, 30), autotune.draw_trials(0, 30)
    assert first == again and first != autotune.draw_trials(1, 30)
    assert len({tuple(t.values()) for t in first}) == 30
    for trial in first:
        assert all(trial[key] in values for key, values in autotune.SPACE.items())
    bagless = [t for t in first if not t["model.ngrams"]]  # no bag: nothing of it varies
    assert bagless and all(t["train.lstm_alone_loss"] == 0 for t in bagless)
    assert all(t["train.ngram_lr_scale"] == 1 for t in bagless)


def test_trial_1_is_the_suites_runner_up_then_the_draws():
    base = {key: values[0] for key, values in autotune.SPACE.items()}
    queue = autotune.trial_queue(base, 0)
    assert queue[0] == base and queue[1] == {**base, **autotune.SUGGESTED}
    assert len({tuple(p.values()) for p in queue}) == len(queue)  # never the same twice
    already = {**base, **autotune.SUGGESTED}  # a config that is the suggestion already
    assert autotune.trial_queue(already, 0)[1] != already


def test_the_margin_grows_with_the_noise_and_the_number_of_trials():
    se = math.sqrt(0.9 * 0.1 / 100)  # 0.03
    assert autotune.margin(0.9, "accuracy", 100, 1) == pytest.approx(math.sqrt(2) * se)
    assert autotune.margin(0.9, "accuracy", 100, 0) == autotune.margin(0.9, "accuracy", 100, 1)
    # z_k, the expected best of k standard normals (Blom's approximation): 1.18 for 5, 2.44 for 84
    assert autotune.margin(0.9, "accuracy", 100, 5) == pytest.approx(math.sqrt(2) * se * 1.18, 0.01)
    assert autotune.margin(0.9, "accuracy", 100, 84) == pytest.approx(
        math.sqrt(2) * se * 2.44, 0.01
    )
    assert autotune.margin(0.9, "accuracy", 400, 5) < autotune.margin(0.9, "accuracy", 100, 5)
    assert autotune.margin(0.3, "loss", 400, 5) == 0.0  # no margin for the loss
    assert autotune.margin(1.0, "accuracy", 50, 5) == 0.0


def test_autotune_keeps_the_best_trial_and_reports_on_test(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a space of 4 cheap points, trial 0 (the config as given) among them, and a budget
    # that covers them all even on a loaded machine: the search is exhaustive, not timed
    monkeypatch.setattr(autotune, "SPACE", SMALL)
    args = ["train", "--data", SMS, "--autotune", "20m", "--out", tmp_path / "tuned"]
    for item in TINY:
        args += ["--set", item]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    out = tmp_path / "tuned"
    rows = [json.loads(line) for line in (out / "autotune.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["settings"] == {"train.lr": 5e-3, "train.epochs": 2}
    assert "trial 0:" in result.output and "trial 1:" in result.output
    # the best other trial replaces trial 0 only if it clears the margin the line states
    log = (out / "trials" / "00" / "train.log").read_text()
    n_validation = int(re.search(r"/ (\d+) validation", log).group(1))
    first = rows[0]
    challenger = max(rows[1:], key=lambda r: r["score"])
    needed = autotune.margin(first["score"], "macro_f1", n_validation, 3)
    said = re.search(r"beat it by more than ([0-9.]+): keeping trial (\d+)", result.output)
    assert float(said.group(1)) == pytest.approx(needed, abs=1e-4)
    best = challenger if challenger["score"] - first["score"] > needed else first
    assert int(said.group(2)) == best["number"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["lr"] == best["settings"]["train.lr"]
    assert saved["train"]["epochs"] == best["settings"]["train.epochs"]
    assert json.loads((out / "metrics.json").read_text())["val_macro_f1"] == best["score"]
    assert (out / "report.json").is_file() and "**best**" in (out / "autotune.md").read_text()
    # only the best trial keeps weights; the bundle classifies
    kept = [p for p in (out / "trials").rglob("model.safetensors")]
    assert kept == [out / "trials" / f"{best['number']:02d}" / "run" / "model.safetensors"]
    assert CliRunner().invoke(main, ["classify", "--checkpoint", str(out), "hi"]).exit_code == 0


def test_an_interrupted_search_keeps_the_best_finished_trial(tmp_path, monkeypatch):
    from textlstm.training import Interrupted

    real = autotune.fit
    calls = []

    def fit_then_stop(cfg, run_dir, *args, **kwargs):
        calls.append(run_dir)
        if len(calls) == 2:
            raise Interrupted(2, run_dir)
        return real(cfg, run_dir, *args, **kwargs)

    monkeypatch.setattr(autotune, "fit", fit_then_stop)
    monkeypatch.setattr(autotune, "SPACE", SMALL)  # trial 1 is cheap: it starts, not timed
    monkeypatch.chdir(tmp_path)
    result = autotune.autotune(tiny_config(), 600, tmp_path / "t", say=lambda _: None)
    assert result.run_dir == tmp_path / "t" and (tmp_path / "t" / "model.safetensors").is_file()
    rows = [
        json.loads(line)
        for line in (tmp_path / "t" / "autotune.jsonl").read_text().split("\n")
        if line
    ]
    assert [r["note"] for r in rows] == ["", "interrupted"]


def test_autotune_refuses_what_it_cannot_do(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    for extra, words in [
        (["--out", tmp_path / "used"], "already exists"),
        (["--overwrite"], "--autotune writes a new folder"),
        (["--autotune", "soon"], "--autotune"),
    ]:
        args = ["train", "--data", SMS, "--autotune", "1m", *extra]
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 1
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("error: ") and words in last, last
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"


def test_with_refit_only_the_kept_trial_is_refit(tmp_path, monkeypatch):
    monkeypatch.setattr(autotune, "SPACE", SMALL)
    said = []
    result = autotune.autotune(tiny_config("train.refit=true"), 1200, tmp_path / "t", said.append)
    kept = re.search(r"keeping trial (\d+)", "\n".join(said)).group(1)
    assert f"autotune: refitting trial {kept} on train + validation" in said
    trials = sorted((tmp_path / "t" / "trials").iterdir())
    assert len(trials) == 4
    for folder in trials:  # the search compared first runs; one refit, after it
        metrics = json.loads((folder / "run" / "metrics.json").read_text())
        refit = folder.name == f"{int(kept):02d}"
        assert ("refit_epochs" in metrics) == refit
        assert ("refit: " in (folder / "train.log").read_text()) == refit
    shipped = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert shipped["refit_epochs"] == result.best["refit_epochs"] == shipped["epoch"]
    assert json.loads((tmp_path / "t" / "config.json").read_text())["train"]["refit"] is True


def test_a_search_that_keeps_trial_0_ships_the_plain_runs_model(tmp_path, monkeypatch):
    # `--autotune` is never below the defaults when the margin keeps trial 0: the bundle
    # is then the model `train` alone gives, its refit included, to the weight
    from textlstm import checkpoint
    from textlstm.training import fit

    monkeypatch.setattr(autotune, "SPACE", SMALL)
    said = []  # a budget of one second: trial 0 runs, no other trial fits
    tuned = autotune.autotune(tiny_config("train.refit=true"), 1, tmp_path / "t", said.append)
    assert "autotune: refitting trial 0 on train + validation" in said
    plain = fit(tiny_config("train.refit=true"), tmp_path / "plain")
    assert tuned.best["refit_epochs"] == plain.best["refit_epochs"]
    shipped, alone = checkpoint.load_tensors(tmp_path / "t"), checkpoint.load_tensors(plain.run_dir)
    assert shipped.keys() == alone.keys()
    for name in shipped:
        torch.testing.assert_close(shipped[name], alone[name], rtol=0, atol=1e-6)


def test_a_search_stopped_before_any_trial_finished_says_so(tmp_path, monkeypatch):
    from textlstm.training import Interrupted

    def stop_at_once(cfg, run_dir, *args, **kwargs):
        raise Interrupted(2, run_dir)

    monkeypatch.setattr(autotune, "fit", stop_at_once)
    with pytest.raises(TextlstmError, match=r"no trial finished \(stopped by a signal\)"):
        autotune.autotune(tiny_config(), 600, tmp_path / "t", say=lambda _: None)
    assert (tmp_path / "t" / "autotune.md").is_file()  # the (empty) table is still written
