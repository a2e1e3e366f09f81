"""`textlstm train --autotune DURATION`: try settings on validation within a time budget,
keep the best (fastText's -autotune-validation / -autotune-duration).

    textlstm train --data DIR --autotune 10m --out checkpoints/tuned

Trial 0 is the config as given (defaults, preset, --set), so the result is never worse
on validation than not tuning; trial 1 is the same with SUGGESTED (the n-gram bag without
the LSTM-alone loss: the bag decides more). The others are drawn from SPACE with
`train.seed` (the same seed, the same trials), never the same twice; every trial trains
with that seed, so all carve the same validation split and differ only in their
settings. A trial is a whole `fit` into DIR/trials/NN with its log in
DIR/trials/NN/train.log; it starts only when the budget left covers its predicted time
(COST relative to trial 0, corrected by how far the predictions were off so far).
Trials score on validation (`train.metric`) only: the test split is read once, by the
final report of the chosen model.

The best of the other trials replaces trial 0 only when it beats it by more than the
luck of the draw: sqrt(2) * SE * z_k, where SE = sqrt(p(1-p)/n) is the standard error of
trial 0's validation score p on n texts (sqrt(2): a difference of two such scores) and
z_k the expected maximum of k standard normals, k the number of other trials that
finished (at least 1). With a few hundred validation texts and several trials, the best
of them beats trial 0 by about that much even when none is truly better; the defaults
were chosen on a whole suite of datasets, so within that margin they are the better bet.
(For `train.metric=loss` the margin is 0.) Trial 0 and the best other trial keep their
weights until the search ends; then the loser's are deleted.

DIR gets the kept trial's bundle (and metrics), `autotune.jsonl` (a row per trial) and
`autotune.md` (the table); the other trials keep their config and metrics, their
weights are deleted. Ctrl-C stops the running trial: the finished ones are decided on.
Cost: the budget, plus the last trial's overrun (a trial is never cut short), plus the
kept trial's refit with `train.refit` (the trials themselves never refit).
"""

import contextlib
import copy
import json
import math
import random
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from textlstm import TextlstmError, files, runs
from textlstm.checkpoint import BUNDLE_FILES, THRESHOLDS_FILE, load_model
from textlstm.config import RunConfig, apply
from textlstm.training import FitResult, Interrupted, fit

# The settings searched: the ones that moved validation most on the benchmark suite
# (docs/BENCHMARKS.md: n-gram branch, adversarial training, size, regularisation, lr).
SPACE = {
    "train.lr": (1e-3, 2e-3, 4e-3),
    "model.hidden_dim": (64, 128, 256),
    "model.dropout": (0.3, 0.5),
    "model.ngrams": (0, 2),
    "train.lstm_alone_loss": (0.0, 0.5),  # 0: the bag decides more (long, many-topic texts)
    "train.ngram_lr_scale": (1.0, 10.0),
    "train.adversarial": (0.0, 1.0, 2.0, 5.0),
    "train.epochs": (5, 10, 20),
}
# Trial 1, before the drawn ones: the bag with nothing holding it back (docs/BENCHMARKS.md,
# "The LSTM-alone loss"): ahead on long many-topic and small keyword tasks, far behind on
# sentence sentiment, so it is the first thing worth trying and not a default.
SUGGESTED = {"model.ngrams": 2, "train.lstm_alone_loss": 0.0, "train.ngram_lr_scale": 10.0}
BAGLESS = {"train.lstm_alone_loss": 0.0, "train.ngram_lr_scale": 1.0}
# A trial's time relative to trial 0, per setting (measured ratios, rounded)
COST = {
    "model.hidden_dim": lambda v, base: (v / base) ** 1.3,
    "train.adversarial": lambda v, base: (2.3 if v else 1.0) / (2.3 if base else 1.0),
    "model.ngrams": lambda v, base: (1.2 if v else 1.0) / (1.2 if base else 1.0),
    "train.epochs": lambda v, base: v / base,
}
KEPT = (*BUNDLE_FILES, THRESHOLDS_FILE, "metrics.json", "metrics.jsonl")


def parse_duration(text: str) -> float:
    """Seconds in "90", "90s", "10m", "1h30m"; one line for anything else."""
    parts = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
        r"(?:(\d+(?:\.\d+)?)s?)?\s*",
        str(text),
    )
    if not parts or not any(parts.groups()):
        raise TextlstmError(f"--autotune {text!r}: give a duration like 600, 90s, 10m or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise TextlstmError(f"--autotune {text!r}: the budget must be more than 0 seconds")
    return total


def draw_trials(seed: int, count: int = 200) -> list[dict]:
    """The trials after trial 0, in order: distinct points of SPACE drawn with `seed`."""
    rng, seen, trials = random.Random(seed), set(), []
    size = 1
    for values in SPACE.values():
        size *= len(values)
    while len(trials) < min(count, size):
        point = {key: rng.choice(values) for key, values in SPACE.items()}
        if not point.get("model.ngrams", 1):  # no bag: its rate and loss share mean nothing
            point.update({k: v for k, v in BAGLESS.items() if k in point})
        key = tuple(point.values())
        if key not in seen:
            seen.add(key)
            trials.append(point)
    return trials


def trial_queue(base: dict, seed: int) -> list[dict]:
    """Trial 0 (`base`), then `base` with SUGGESTED, then the drawn points; no repeats."""
    suggested = {**base, **{k: v for k, v in SUGGESTED.items() if k in SPACE}}
    queue = []
    for point in [base, suggested, *draw_trials(seed)]:
        if point not in queue:
            queue.append(point)
    return queue


def current(cfg: RunConfig) -> dict:
    """The SPACE settings of `cfg` (trial 0's)."""
    return {key: getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1]) for key in SPACE}


def margin(score: float, metric: str, n_validation: int, others: int) -> float:
    """How much the best of `others` trials must beat trial 0's validation `score` (on
    `n_validation` texts) to replace it: sqrt(2) * SE * z_k (module docstring)."""
    if metric == "loss" or n_validation <= 0:
        return 0.0
    p = min(max(score, 0.0), 1.0)
    k = max(others, 1)
    z_k = max(statistics.NormalDist().inv_cdf((k - 0.375) / (k + 0.25)), 1.0)  # Blom
    return math.sqrt(2) * math.sqrt(p * (1 - p) / n_validation) * z_k


def relative_cost(point: dict, base: dict) -> float:
    cost = 1.0
    for key, ratio in COST.items():
        if key in point and key in base:
            cost *= ratio(point[key], base[key])
    return cost


@dataclass
class Trial:
    number: int
    settings: dict
    score: float | None = None  # validation train.metric; None: failed or interrupted
    seconds: float = 0.0
    epoch: int = 0
    note: str = ""


def configured(cfg: RunConfig, settings: dict) -> RunConfig:
    trial_cfg = copy.deepcopy(cfg)
    for key, value in settings.items():
        apply(trial_cfg, *key.split("."), value)
    return trial_cfg


def run_trial(cfg: RunConfig, settings: dict, folder: Path):
    """fit with `settings`, its output into folder/train.log; (FitResult, metrics). No
    trial refits (`train.refit`): its score is the first run's either way."""
    trial_cfg = configured(cfg, settings)
    trial_cfg.train.refit = False
    folder.mkdir(parents=True)
    with open(folder / "train.log", "w", encoding="utf-8") as log:
        with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            result = fit(trial_cfg, folder / "run")
    return result, json.loads((folder / "run" / "metrics.json").read_text())


def refit_kept(cfg: RunConfig, kept: tuple, out: Path, say):
    """With `train.refit`, the kept trial alone is refit, after the search: its run is
    resumed with the refit on (its epochs are done, so only the refit runs). Stopped by a
    signal, the trial's first model is kept."""
    trial, result = kept
    folder = out / "trials" / f"{trial.number:02d}"
    say(f"autotune: refitting trial {trial.number} on train + validation")
    try:
        with open(folder / "train.log", "a", encoding="utf-8") as log:
            with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
                return fit(configured(cfg, trial.settings), folder / "run", resume=True)
    except Interrupted:
        say(f"autotune: refit stopped by a signal: keeping trial {trial.number} as it was")
        return result


def table(trials: list[Trial], metric: str, best: Trial | None) -> str:
    keys = list(SPACE)
    lines = [
        f"| trial | {' | '.join(keys)} | val {metric} | best epoch | seconds | note |",
        "|" + "---|" * (len(keys) + 5),
    ]
    for t in trials:
        score = "–" if t.score is None else f"{t.score:.4f}"
        mark = " **best**" if best is t else ""
        values = " | ".join(str(t.settings[k]) for k in keys)
        lines.append(
            f"| {t.number}{mark} | {values} | {score} | {t.epoch} | {t.seconds:.0f} | {t.note} |"
        )
    return "\n".join(lines) + "\n"


def autotune(cfg: RunConfig, budget_s: float, out: Path | None, say=print):
    """Search within `budget_s` seconds; returns the FitResult of the best trial, its
    bundle copied into the autotune folder (whose path is its `run_dir`)."""
    cfg.check()
    if out is None:
        name = Path(cfg.data.source.rstrip("/")).name.replace(":", "-") or "run"
        out = Path("checkpoints") / f"{name}-autotune-{time.strftime('%Y%m%d-%H%M%S')}"
    files.new_or_empty(out)  # a new folder: nothing of an earlier run is replaced
    lock = runs.lock_run(files.make_folder(out))
    started, metric = time.time(), cfg.train.metric
    higher = metric != "loss"
    base = current(cfg)
    queue = trial_queue(base, cfg.train.seed)
    trials, correction = [], []
    first = leader = None  # (Trial, FitResult): trial 0, and the best of the others so far
    n_validation, stopped = 0, False

    def better(a: Trial, b: Trial) -> bool:
        return a.score > b.score if higher else a.score < b.score

    try:
        for number, settings in enumerate(queue):
            left = budget_s - (time.time() - started)
            if trials:
                first_s = trials[0].seconds or 1.0
                factor = sum(correction) / len(correction) if correction else 1.0
                predicted = first_s * relative_cost(settings, base) * factor
                if predicted > left:
                    continue  # a cheaper trial later in the queue may still fit
                if left < first_s * 0.25:
                    break
            trial, t0 = Trial(number, settings), time.time()
            folder = out / "trials" / f"{number:02d}"
            try:
                result, metrics = run_trial(cfg, settings, folder)
                trial.score, trial.epoch = metrics[f"val_{metric}"], metrics["epoch"]
                n_validation = n_validation or len(result.prepared.splits["validation"])
            except Interrupted:
                trial.note = "interrupted"
                drop_weights(folder / "run")
                raise
            except TextlstmError as exc:  # e.g. a trial that diverged: the search goes on
                trial.note = str(exc).split(";")[0][:80]
                result = None
            finally:
                trial.seconds = time.time() - t0
                trials.append(trial)
                files.append_jsonl(out / "autotune.jsonl", trial.__dict__)
            if number and trial.score is not None:
                correction.append(
                    trial.seconds / (trials[0].seconds * relative_cost(settings, base))
                )
            if trial.score is None:
                drop_weights(folder / "run")
            elif number == 0:
                first = (trial, result)
            elif leader is None or better(trial, leader[0]):
                if leader is not None:
                    drop_weights(out / "trials" / f"{leader[0].number:02d}" / "run")
                leader = (trial, result)
            else:
                drop_weights(folder / "run")
            top = max(
                (t for t in trials if t.score is not None),
                key=lambda t: t.score if higher else -t.score,
                default=None,
            )
            say(progress_line(trial, top, metric, budget_s - (time.time() - started)))
    except Interrupted:
        say("autotune stopped by a signal: deciding among the finished trials")
        stopped = True
    finally:
        best = decide(first, leader, trials, metric, n_validation, out, say)
        files.atomic_write(out / "autotune.md", table(trials, metric, best and best[0]).encode())
        runs.unlock(lock)
    if best is None:  # trial 0 always runs to its end: a signal or an error stopped them all
        why = "stopped by a signal" if stopped else trials[0].note if trials else "none began"
        raise TextlstmError(f"autotune: no trial finished ({why}); nothing kept in {out}")
    if cfg.train.refit:
        best = (best[0], refit_kept(cfg, best, out, say))
    return promote(best[1], best[0], out)


def decide(first, leader, trials, metric, n_validation, out: Path, say):
    """(Trial, FitResult) kept: the best other trial if it clears trial 0 by `margin`,
    else trial 0 (either one alone if the other never finished); the loser's weights go."""
    if first is None or leader is None:
        return first or leader
    others = sum(1 for t in trials[1:] if t.score is not None)
    needed = margin(first[0].score, metric, n_validation, others)
    gain = leader[0].score - first[0].score
    gain = gain if metric != "loss" else -gain
    kept, lost = (leader, first) if gain > needed else (first, leader)
    say(
        f"autotune: the best other trial, {leader[0].number}, scores {gain:+.4f} against "
        f"trial 0; the best of {others} trial(s) on {n_validation:,} validation texts must "
        f"beat it by more than {needed:.4f}: keeping trial {kept[0].number}"
    )
    drop_weights(out / "trials" / f"{lost[0].number:02d}" / "run")
    return kept


def drop_weights(run_dir: Path) -> None:
    """A trial that lost keeps its config and metrics, not its weights."""
    for name in ("model.safetensors", "train_state.pt"):
        (run_dir / name).unlink(missing_ok=True)


def progress_line(trial: Trial, best: Trial | None, metric: str, left: float) -> str:
    settings = " ".join(f"{k.split('.')[1]}={v}" for k, v in trial.settings.items())
    score = f"val {metric} {trial.score:.4f}" if trial.score is not None else ""
    score = "; ".join(part for part in (score, trial.note) if part)
    top = f" (best {best.score:.4f}, trial {best.number})" if best else ""
    return (
        f"trial {trial.number}: {settings}  {score}{top}  {trial.seconds:.0f} s, "
        f"{max(left, 0) / 60:.1f} min left"
    )


def promote(result, best: Trial, out: Path):
    """The best trial's bundle into `out`; `checkpoints/latest` names `out`."""
    source = out / "trials" / f"{best.number:02d}" / "run"
    for name in KEPT:
        if (source / name).is_file():
            files.atomic_write(out / name, (source / name).read_bytes())
    (source / "train_state.pt").unlink(missing_ok=True)
    runs.point_latest(out)
    model, _, _ = load_model(out, next(result.model.parameters()).device)
    return FitResult(out, model, result.prepared, json.loads((out / "metrics.json").read_text()))
