"""Metrics, computed with numpy only (a leaf module: no torch, no scikit-learn).

Single-label: accuracy, macro-F1 (over the classes present in the split), per-class
precision / recall / F1 / support, the confusion matrix (rows = true label, columns =
predicted), cross-entropy, calibration (ECE) and the most confidently wrong texts.

Multi-label: micro-F1 (over all text-label decisions), macro-F1 (mean per-label F1 over
the labels present), subset accuracy (every label of a text right; also stored as
`accuracy`, so `train.metric` works unchanged), BCE, per-label metrics at the given
thresholds, and `tune_thresholds`, which picks each label's F1-maximising cut.
"""

import numpy as np

ECE_BINS = 15


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1/(1+e^-x), without overflow warnings


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def per_class_metrics(label_names, precision, recall, f1, support, **extra) -> dict:
    """{label: {precision, recall, f1, support, *extra}} from per-class arrays."""
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            **{key: float(values[i]) for key, values in extra.items()},
        }
        for i, name in enumerate(label_names)
    }


def classification_report(y_true, y_pred, label_names) -> dict:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = len(label_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    present = support > 0  # macro-F1 over the classes that occur in this split
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class_metrics(label_names, precision, recall, f1, support),
        "confusion_matrix": confusion.tolist(),
        "labels": list(label_names),
    }


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def calibration(confidence, correct, bins: int = ECE_BINS) -> dict:
    """Expected calibration error over `bins` equal-width confidence bins, and the bins.

    ECE = sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|.
    A bin is (lo, hi]; a confidence of exactly 0 goes to the first bin. Equal-width
    bins are the usual choice (Guo et al. 2017), so numbers compare with other tools';
    the trade-off is that with few examples the sparse high-confidence-error bins are
    noisy, which is why each bin's count is kept beside it.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        row = {"lo": b / bins, "hi": (b + 1) / bins, "count": count}
        if count:
            row["accuracy"] = float(correct[members].mean())
            row["confidence"] = float(confidence[members].mean())
            ece += count / len(confidence) * abs(row["accuracy"] - row["confidence"])
        rows.append(row)
    return {"ece": float(ece), "bins": rows}


def confidently_wrong(probs, y_true, texts, label_names, k: int = 10) -> list[dict]:
    """The `k` misclassified texts the model was surest of, most confident first.

    These are what people look at first: label noise and systematic blind spots show
    up here long before they move an aggregate metric.
    """
    probs, y_true = np.asarray(probs), np.asarray(y_true)
    predicted = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), predicted]
    wrong = np.flatnonzero(predicted != y_true)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:k]
    return [
        {
            "text": texts[i],
            "true": label_names[y_true[i]],
            "predicted": label_names[predicted[i]],
            "probability": float(confidence[i]),
        }
        for i in order
    ]


def multi_label_report(y_true, logits, label_names, thresholds=None) -> dict:
    """Multi-label metrics of sigmoid(logits) cut at `thresholds` (0.5 when None)."""
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
        "n": int(len(y)),
        "accuracy": subset,  # so train.metric=accuracy means subset accuracy here
        "subset_accuracy": subset,
        "micro_f1": float(2 * tp.sum() / micro_denominator) if micro_denominator else 0.0,
        "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
        # BCE per text-label pair, as in training: log(1 + e^x) - y x, overflow-free
        "loss": float((np.logaddexp(0, logits) - y * logits).mean()),
        "per_class": per_class_metrics(
            label_names, precision, recall, f1, support, threshold=thresholds
        ),
        "labels": list(label_names),
    }


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
