"""Multi-label classification: a label column holding lists (of strings or ints).

Detected from the data: when train's label column is a list column, the run is
multi-label (`data.multi_label = true`, saved in config.json). Each text's labels become
a multi-hot row of 0/1 over the label names; the model's outputs are independent
sigmoids trained with `BCEWithLogitsLoss`.

Decisions use one threshold per label, tuned on the validation split after training to
maximise that label's F1 and saved as `thresholds.json` in the bundle. Trade-off: tuning
on validation makes validation metrics slightly optimistic (report test numbers), and a
label with no positive validation example keeps 0.5. During training, epochs are
compared at 0.5 thresholds, so model selection never sees tuned thresholds.

Metrics: micro-F1 (over all text-label decisions), macro-F1 (mean per-label F1 over the
labels present), subset accuracy (every label of a text right; also `accuracy`, so
`train.metric` works unchanged), per-label precision / recall / F1 / support.

numpy only at import: `predict` (which never imports torch) reads thresholds from here.
"""

import json
from pathlib import Path

import numpy as np

from textlstm import TextlstmError

THRESHOLDS_FILE = "thresholds.json"


def is_list_feature(feature) -> bool:
    return type(feature).__name__ in ("Sequence", "List", "LargeList") or isinstance(feature, list)


# -- data: label lists -> multi-hot rows -----------------------------------------------


def map_splits(splits: dict, cfg, seed: int, names_file, notes: list[str]):
    """data.check_and_map for a list label column: names, multi-hot rows, validation."""
    import datasets

    from textlstm.data import RawData, label_namer

    column = cfg.label_column
    single = [n for n, ds in splits.items() if not is_list_feature(ds.features[column])]
    if single:
        raise TextlstmError(f"column {column!r} holds lists in train but single labels in "
                            f"{', '.join(single)}: use label lists in every split")  # fmt: skip
    name, known = label_namer(splits["train"].features[column].feature, names_file, column)
    values = {v for row in splits["train"][column] if row for v in row if v is not None}
    seen = {v: name(v) for v in values}
    if known is not None:
        bad = sorted(str(v) for v, n in seen.items() if n is None)[:5]
        if bad:
            raise TextlstmError(f"labels {', '.join(bad)} are not ids into the label names")
        label_names = list(known)
    else:
        label_names = [seen[v] for v in sorted(values, key=lambda v: (isinstance(v, str), v))]
    if len(label_names) < 2:
        raise TextlstmError(f"train's label lists use {len(label_names)} label(s); need >= 2")
    mapped = {
        split: multi_hot_split(split, ds, cfg, name, label_names, notes)
        for split, ds in splits.items()
    }
    if "validation" not in mapped:  # stratifying label sets is ill-defined: a random share
        train = mapped["train"]
        order = np.random.default_rng(seed).permutation(len(train))
        take = max(1, int(round(cfg.validation_fraction * len(train))))
        mapped["train"] = train.select(np.sort(order[take:]))
        mapped["validation"] = train.select(np.sort(order[:take]))
        notes.append(
            f"no validation split: carved a random {cfg.validation_fraction:.0%} of train "
            f"({take} texts, seed {seed})"
        )
    per_text = np.asarray(mapped["train"]["label"]).sum(axis=1).mean()
    notes.append(f"multi-label: {len(label_names)} labels, {per_text:.2f} per training text")
    cfg.multi_label = True
    return RawData(datasets.DatasetDict(mapped), label_names, notes)


def multi_hot_split(split: str, ds, cfg, name, label_names, notes):
    """Keep text and label; label lists -> 0/1 rows; unknown labels are an error."""
    from textlstm.data import rows_with_text_and_label, with_label_ids

    index = {n: i for i, n in enumerate(label_names)}
    ds = rows_with_text_and_label(split, ds, cfg, notes)
    rows = np.zeros((len(ds), len(label_names)), dtype=np.int64)
    unknown = set()
    for r, values in enumerate(ds[cfg.label_column]):
        for v in values:
            i = index.get(name(v))
            if i is None:
                unknown.add(str(v))
            else:
                rows[r, i] = 1
    return with_label_ids(split, ds, cfg, rows.tolist(), unknown, label_names)


# -- thresholds ------------------------------------------------------------------------


def tune_thresholds(y_true, probs) -> np.ndarray:
    """Per label, the probability cut that maximises F1 on (y_true, probs).

    Predicting the top i texts of a label positive gives F1 = 2 tp_i / (i + P), so one
    sort and a cumulative sum try every cut. Cuts fall between distinct probabilities
    (their midpoint), never inside a tie. A label with no positive keeps 0.5.
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs, dtype=np.float64)
    thresholds = np.full(probs.shape[1], 0.5)
    for j in range(probs.shape[1]):
        positives = int(y_true[:, j].sum())
        if positives == 0:
            continue
        order = np.argsort(-probs[:, j], kind="stable")
        p, tp = probs[order, j], np.cumsum(y_true[order, j])
        f1 = 2 * tp / (np.arange(1, len(p) + 1) + positives)
        f1[:-1][p[:-1] == p[1:]] = -1  # a cut inside a group of equal probabilities
        best = int(np.argmax(f1))
        thresholds[j] = p[best] if best == len(p) - 1 else (p[best] + p[best + 1]) / 2
    return thresholds


def save_thresholds(run_dir: Path, label_names, thresholds) -> None:
    from textlstm.checkpoint import write_json

    write_json(Path(run_dir) / THRESHOLDS_FILE,
               {n: float(t) for n, t in zip(label_names, thresholds, strict=True)})  # fmt: skip


def read_thresholds(run_dir: Path, label_names) -> np.ndarray:
    """The bundle's tuned thresholds in label order (0.5 for a run that has none yet)."""
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return np.full(len(label_names), 0.5)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return np.array([float(saved[n]) for n in label_names])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TextlstmError(f"{path} is corrupt or does not match labels.json ({exc})") from exc


def tune_on_validation(run_dir, model, split, label_names, device, batch_size, precision):
    """After training: tune thresholds on `split` with the best model and save them."""
    from textlstm.evaluate import predict_logits
    from textlstm.predict import sigmoid

    probs = sigmoid(predict_logits(model, split, device, batch_size, precision))
    thresholds = tune_thresholds(np.asarray(split["label"]), probs)
    save_thresholds(run_dir, label_names, thresholds)
    return thresholds


# -- metrics ---------------------------------------------------------------------------


def report(y_true, logits, label_names, thresholds=None) -> dict:
    """Multi-label metrics of sigmoid(logits) cut at `thresholds` (0.5 when None)."""
    from textlstm.evaluate import per_class_metrics
    from textlstm.predict import sigmoid

    y = np.asarray(y_true).astype(bool)
    logits = np.asarray(logits, dtype=np.float64)
    thresholds = np.full(y.shape[1], 0.5) if thresholds is None else np.asarray(thresholds)
    pred = sigmoid(logits) >= thresholds
    tp, fp, fn = (pred & y).sum(0), (pred & ~y).sum(0), (~pred & y).sum(0)
    precision = np.divide(tp, tp + fp, out=np.zeros(len(tp)), where=tp + fp > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(len(tp)), where=tp + fn > 0)
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros(len(tp)), where=2 * tp + fp + fn > 0)
    support = y.sum(0)
    micro_denominator = 2 * tp.sum() + fp.sum() + fn.sum()
    subset = float((pred == y).all(axis=1).mean()) if len(y) else 0.0
    return {
        "multi_label": True,
        "n": int(len(y)),
        "accuracy": subset,  # so train.metric=accuracy means subset accuracy here
        "subset_accuracy": subset,
        "micro_f1": float(2 * tp.sum() / micro_denominator) if micro_denominator else 0.0,
        "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
        # BCE per text-label pair, as in training: log(1 + e^x) - y x, overflow-free
        "loss": float((np.logaddexp(0, logits) - y * logits).mean()),
        "per_class": per_class_metrics(
            label_names, precision, recall, f1, support, threshold=thresholds
        ),  # fmt: skip
        "labels": list(label_names),
    }


def format_report(report: dict) -> str:
    from textlstm.evaluate import per_class_table

    lines = [
        f"micro-F1 {report['micro_f1']:.4f}   macro-F1 {report['macro_f1']:.4f}   subset "
        f"accuracy {report['subset_accuracy']:.4f}   n={report['n']}"
        + (f"   split={report['split']}" if "split" in report else ""),
        "",
        *per_class_table(report, threshold=True),
    ]
    return "\n".join(lines)


def pick(row: np.ndarray, labels: list[str], thresholds, override: float = 0.0):
    """[(label, probability), ...] at or above each label's threshold, most likely first;
    `override` > 0 replaces the tuned thresholds with one cut for every label."""
    cut = np.full(len(row), override) if override > 0 else np.asarray(thresholds)
    chosen = np.flatnonzero(row >= cut)
    return [(labels[i], float(row[i])) for i in chosen[np.argsort(-row[chosen], kind="stable")]]
