"""The task: single-label or multi-label classification, the one place they differ.

Every stage asks the run's `Task` instead of branching on the label shape:

| | `SingleLabel` | `MultiLabel` |
|---|---|---|
| label column | one value per text -> id | a list per text -> 0/1 row |
| validation carve | stratified by class | random (label sets do not stratify) |
| loss | cross-entropy (class weights, smoothing) | BCE with logits per label |
| probabilities | softmax | independent sigmoids |
| metrics | accuracy, macro-F1, confusion, ECE | micro/macro-F1, subset accuracy |
| picking labels | the top k at or above `threshold` | every label at or above its own cut |
| bundle files | - | `thresholds.json` (tuned on validation) |

The task is detected from train's label column and saved as `"task"` in config.json;
`task_of(config)` rebuilds it from a bundle. Multi-label decisions use one threshold
per label, tuned on validation after training to maximise that label's F1. Trade-off:
tuning on validation makes validation metrics slightly optimistic (report test
numbers), and a label with no positive validation example keeps 0.5. During training,
epochs are compared at 0.5, so model selection never sees tuned thresholds.

numpy only at import (the numpy engine uses it without torch); `loss` imports torch.
"""

import json
from pathlib import Path

import numpy as np

from textlstm import TextlstmError, datachecks, files, labels, metrics
from textlstm.checkpoint import THRESHOLDS_FILE


class SingleLabel:
    """One label per text: softmax over the classes."""

    name = "single_label"
    extra_metrics: tuple[str, ...] = ()  # report keys logged per epoch beside loss/acc/F1

    def __init__(self, thresholds=None):
        self.thresholds = thresholds

    # -- data ----------------------------------------------------------------------------

    def map_splits(self, splits: dict, cfg, names_file, seed: int, notes: list[str]):
        """Label names and each split with columns text + label id; validation carved."""
        label_names, note = labels.single_names(splits["train"], cfg, names_file)
        notes += [note] if note else []
        mapped = {
            name: self.map_split(name, ds, cfg, names_file, label_names, notes)
            for name, ds in splits.items()
        }
        counts = np.bincount(np.asarray(mapped["train"]["label"]), minlength=len(label_names))
        if np.count_nonzero(counts) < 2:
            only = label_names[int(np.argmax(counts))]
            raise TextlstmError(
                f"train has a single class ({only!r}): a classifier needs at least two labels"
            )
        if "validation" not in mapped:
            mapped["train"], mapped["validation"] = labels.carve_stratified(
                mapped["train"], cfg.validation_fraction, seed
            )
            notes.append(
                f"no validation split: carved a stratified {cfg.validation_fraction:.0%} of "
                f"train ({len(mapped['validation'])} texts, seed {seed})"
            )
        imbalance = datachecks.imbalance_warning(mapped["train"]["label"], label_names)
        notes += [imbalance] if imbalance else []
        return mapped, label_names

    def map_split(self, name: str, ds, cfg, names_file, label_names, notes=None):
        labels.check_kind(name, ds.features[cfg.label_column], cfg.label_column, multi=False)
        return labels.id_split(
            name, ds, cfg, names_file, label_names, [] if notes is None else notes
        )

    def check_training(self, tc, processes: int) -> list[str]:
        """Training settings this task cannot honour are refused before any work (or,
        for a default that does not apply, turned off); returns notes to print."""
        return []

    # -- model outputs -------------------------------------------------------------------

    def loss(self, logits, targets, class_weight=None, label_smoothing: float = 0.0):
        import torch.nn.functional as F

        return F.cross_entropy(
            logits.float(), targets, class_weight, label_smoothing=label_smoothing
        )

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return metrics.softmax(logits)

    def report(self, targets, logits, label_names, texts=None, examples: int = 0) -> dict:
        """Metrics of `logits` against `targets`; `examples` > 0 adds that many of the most
        confidently wrong `texts` (a callable returning the split's texts: read on demand)."""
        targets = np.asarray(targets)
        result = metrics.classification_report(targets, logits.argmax(axis=1), label_names)
        result["loss"] = metrics.cross_entropy(logits, targets)
        probs = self.probabilities(logits)
        predicted = probs.argmax(axis=1)
        result["calibration"] = metrics.calibration(probs.max(axis=1), predicted == targets)
        if examples and texts is not None:
            result["confidently_wrong"] = metrics.confidently_wrong(
                probs, targets, texts(), label_names, examples
            )
        return {"task": self.name, **result}

    def summary(self, report: dict) -> str:
        """The report's headline, one line."""
        return f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}"

    def pick(self, row: np.ndarray, names: list[str], top_k: int = 1, threshold: float = 0.0):
        """[(label, probability), ...] of one text: the `top_k` most likely at >= `threshold`."""
        best = np.argsort(-row, kind="stable")[:top_k]
        return [(names[i], float(row[i])) for i in best if row[i] >= threshold]

    # -- bundle files --------------------------------------------------------------------

    def finish(self, run_dir: Path, targets, logits, label_names) -> str | None:
        """After training: tune and save what the task needs beside the weights, from the
        validation `targets` and `logits()` (the best model's; computed only if needed).
        Returns a line to print, or None."""
        return None

    def load(self, run_dir: Path, label_names):
        """This task with what the bundle saved for it (multi-label: thresholds)."""
        return self


class MultiLabel(SingleLabel):
    """Any number of labels per text: one sigmoid per label, each with its own cut."""

    name = "multi_label"
    extra_metrics = ("micro_f1",)

    def map_splits(self, splits: dict, cfg, names_file, seed: int, notes: list[str]):
        label_names, note = labels.multi_names(splits["train"], cfg, names_file)
        notes += [note] if note else []
        mapped = {
            name: self.map_split(name, ds, cfg, names_file, label_names, notes)
            for name, ds in splits.items()
        }
        if "validation" not in mapped:
            fraction = cfg.validation_fraction
            mapped["train"], mapped["validation"] = labels.carve_random(
                mapped["train"], fraction, seed
            )
            notes.append(
                f"no validation split: carved a random {fraction:.0%} of train "
                f"({len(mapped['validation'])} texts, seed {seed})"
            )
        per_text = np.asarray(mapped["train"]["label"]).sum(axis=1).mean()
        notes.append(f"multi-label: {len(label_names)} labels, {per_text:.2f} per training text")
        return mapped, label_names

    def map_split(self, name: str, ds, cfg, names_file, label_names, notes=None):
        labels.check_kind(name, ds.features[cfg.label_column], cfg.label_column, multi=True)
        notes = [] if notes is None else notes
        return labels.multi_hot_split(name, ds, cfg, names_file, label_names, notes)

    def check_training(self, tc, processes: int) -> None:
        if tc.class_weights != "none" or tc.sampler != "bucket":
            raise TextlstmError("train.class_weights and train.sampler apply to single-label data")
        if processes > 1:
            raise TextlstmError("multi-label data trains in one process only (no --nproc/torchrun)")
        if not tc.refit:
            return []
        tc.refit = False  # so the printed and saved config say what runs
        return ["train.refit is off: multi-label thresholds are tuned on unseen validation texts"]

    def loss(self, logits, targets, class_weight=None, label_smoothing: float = 0.0):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return metrics.sigmoid(logits)

    def report(self, targets, logits, label_names, texts=None, examples: int = 0) -> dict:
        result = metrics.multi_label_report(targets, logits, label_names, self.thresholds)
        return {"task": self.name, **result}

    def summary(self, report: dict) -> str:
        return (
            f"micro-F1 {report['micro_f1']:.4f}   macro-F1 {report['macro_f1']:.4f}   "
            f"subset accuracy {report['subset_accuracy']:.4f}"
        )

    def pick(self, row: np.ndarray, names: list[str], top_k: int = 1, threshold: float = 0.0):
        """Every label at or above its tuned threshold, most likely first (`top_k` is not
        applied); `threshold` > 0 replaces the tuned cuts with one cut for every label."""
        cut = np.full(len(row), threshold) if threshold > 0 else self.cuts(len(row))
        chosen = np.flatnonzero(row >= cut)
        return [(names[i], float(row[i])) for i in chosen[np.argsort(-row[chosen], kind="stable")]]

    def cuts(self, size: int) -> np.ndarray:
        return np.full(size, 0.5) if self.thresholds is None else np.asarray(self.thresholds)

    def finish(self, run_dir: Path, targets, logits, label_names) -> str:
        self.thresholds = metrics.tune_thresholds(targets, self.probabilities(logits()))
        files.write_json(
            Path(run_dir) / THRESHOLDS_FILE,
            {n: float(t) for n, t in zip(label_names, self.thresholds, strict=True)},
        )
        return "thresholds tuned on validation: " + ", ".join(
            f"{n} {t:.3f}" for n, t in zip(label_names, self.thresholds, strict=True)
        )

    def load(self, run_dir: Path, label_names):
        """The bundle's tuned thresholds in label order (0.5 for a run that has none yet)."""
        path = Path(run_dir) / THRESHOLDS_FILE
        if not path.is_file():
            return MultiLabel(np.full(len(label_names), 0.5))
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return MultiLabel(np.array([float(saved[n]) for n in label_names]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise TextlstmError(f"{path} is corrupt or does not match labels.json ({exc})") from exc


TASKS = {task.name: task for task in (SingleLabel, MultiLabel)}


def of_feature(feature) -> SingleLabel:
    """The task a label column implies: lists are multi-label."""
    return MultiLabel() if labels.is_list_feature(feature) else SingleLabel()


def task_of(config: dict) -> SingleLabel:
    """The task saved in a bundle's (or preprocessed folder's) config."""
    name = config.get("task") or "single_label"
    if name not in TASKS:
        raise TextlstmError(f"unknown task {name!r} in config.json (known: {', '.join(TASKS)})")
    return TASKS[name]()
