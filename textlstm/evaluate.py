"""Metrics and the evaluation report.

`report.json` (machine-readable) and `report.md` (for people) hold accuracy, macro-F1,
per-class precision / recall / F1 / support and the confusion matrix (rows = true
label, columns = predicted), with the split and checkpoint they came from. The same
table is printed on the terminal. Metrics are computed with numpy: no scikit-learn.
Calibration (ECE), the most confidently wrong texts, PNG plots and report.html come from
report.py, which this module calls so the report stays one call.
"""

import datetime
from pathlib import Path

import numpy as np
import torch

from textlstm.batching import BucketBatchSampler, PaddedBatches
from textlstm.checkpoint import atomic_write, write_json
from textlstm.report import (
    calibration,
    confidently_wrong,
    markdown_sections,
    read_curves,
    write_html,
    write_plots,
)


@torch.no_grad()
def predict_logits(model, split, device, batch_size: int = 256, precision: str = "fp32"):
    """Logits (N, C) for every example of a tokenized split, in the split's order.

    Batches are sorted by length (least padding); `index` puts rows back in place.
    """
    model.eval()
    batches = PaddedBatches(split)
    sampler = BucketBatchSampler(batches.lengths, batch_size=batch_size, shuffle=False)
    out = None
    for index in sampler:
        batch = batches[index]
        with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
            logits = model(batch["input_ids"].to(device), batch["lengths"].to(device))
        logits = logits.float().cpu().numpy()  # host sync: evaluation only
        if out is None:
            out = np.zeros((len(batches), logits.shape[1]), dtype=np.float32)
        out[index] = logits
    return out


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


def evaluate_split(
    model, split, label_names, device, batch_size=256, precision="fp32", examples: int = 0,
    thresholds=None,
) -> dict:  # fmt: skip
    """Metrics of `model` on a tokenized split; with `examples` > 0, also that many of the
    most confidently wrong texts (reading the text column costs time, so only on request).
    Multi-hot labels (a multi-label run) get multilabel.report at `thresholds`.
    """
    from textlstm.guards import OOM_ERRORS, oom_error
    from textlstm.predict import softmax

    try:
        logits = predict_logits(model, split, device, batch_size, precision)
    except OOM_ERRORS as exc:
        raise oom_error(exc, "evaluation", {"train.eval_batch_size": batch_size}) from exc
    labels = np.asarray(split["label"])
    if labels.ndim == 2:
        from textlstm.multilabel import report

        return report(labels, logits, label_names, thresholds)
    report = classification_report(labels, logits.argmax(axis=1), label_names)
    report["loss"] = cross_entropy(logits, labels)
    probs = softmax(logits)
    predicted = probs.argmax(axis=1)
    report["calibration"] = calibration(probs.max(axis=1), predicted == labels)
    if examples:
        report["confidently_wrong"] = confidently_wrong(
            probs, labels, split["text"], label_names, examples
        )
    return report


def per_class_table(report: dict, threshold: bool = False) -> list[str]:
    """Lines of the per-class precision/recall/F1/support table (multi-label: + threshold)."""
    names = report["labels"]
    width = max(8, *(len(n) for n in names))
    head = f"{'label':<{width}}  " + ("threshold  " if threshold else "")
    lines = [head + "precision  recall      f1  support"]
    for name in names:
        m = report["per_class"][name]
        lines.append(
            f"{name:<{width}}  "
            + (f"{m['threshold']:9.4f}  " if threshold else "")
            + f"{m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:6.4f}  {m['support']:7d}"
        )
    return lines


def format_report(report: dict) -> str:
    """The report as a terminal/markdown table."""
    if report.get("multi_label"):
        from textlstm.multilabel import format_report as multi_label_table

        return multi_label_table(report)
    names = report["labels"]
    width = max(8, *(len(n) for n in names))
    lines = [
        f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   "
        f"n={report['n']}" + (f"   split={report['split']}" if "split" in report else ""),
        "",
        *per_class_table(report),
    ]
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    cell = max(
        6, *(len(n) for n in names), *(len(str(v)) for r in report["confusion_matrix"] for v in r)
    )
    lines.append(" " * width + "  " + " ".join(f"{n:>{cell}}" for n in names))
    for name, row in zip(names, report["confusion_matrix"], strict=True):
        lines.append(f"{name:<{width}}  " + " ".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def write_report(report: dict, out_dir: Path) -> list[Path]:
    """report.json, report.md, report.html and (with matplotlib) PNG plots in `out_dir`.

    Training curves come from the `metrics.jsonl` of the report's checkpoint, when present.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {**report, "created": datetime.datetime.now().isoformat(timespec="seconds")}
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    write_json(json_path, report)
    images = write_plots(report, out_dir, read_curves(report.get("checkpoint")))
    md = [
        f"# Evaluation: {report.get('split', '?')} split",
        "",
        f"- checkpoint: `{report.get('checkpoint', '?')}`",
        f"- data: `{report.get('data', '?')}`",
        f"- created: {report['created']}",
        "",
        "```",
        format_report(report),
        "```",
        "",
        *markdown_sections(report, images or {}),
    ]
    atomic_write(md_path, "\n".join(md).encode())
    html_path = write_html(report, images or {}, out_dir)
    return [json_path, md_path, html_path, *(images or {}).values()]
