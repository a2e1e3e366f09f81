"""Evaluation: a model's logits on a split, the task's metrics, and the report files.

`report.json` (machine-readable) and `report.md` (for people) hold the task's metrics
(single-label: accuracy, macro-F1, per-class precision / recall / F1 / support, the
confusion matrix with rows = true label and columns = predicted; multi-label: micro/macro-F1,
subset accuracy, per-label thresholds), with the split and checkpoint they came from. The
same table is printed on the terminal. Calibration (ECE) and the most confidently wrong
texts come from metrics.py; PNG plots and report.html from report.py.
A report on the validation texts a `train.refit` bundle trained on says that it reads
high, with the first run's validation scores (refit_note).

Under torchrun each rank predicts every W-th text and one all-reduce assembles the full
logits on every rank, so all ranks compute the same metrics (and take the same
early-stopping decision) with no extra broadcast.
"""

import datetime
import json
from pathlib import Path

import numpy as np
import torch

from textlstm import checkpoint, distributed, files, guards
from textlstm.batching import BucketBatchSampler, PaddedBatches, column_array
from textlstm.report import markdown_sections, read_curves, write_html, write_plots
from textlstm.task import TASKS


@torch.no_grad()
def predict_logits(model, split, device, batch_size: int = 256, precision: str = "fp32"):
    """Logits (N, C) for every example of a tokenized split, in the split's order.

    Batches are sorted by length (least padding); `index` puts rows back in place.
    """
    model.eval()
    batches = PaddedBatches(split, bag=model.bag)
    sampler = BucketBatchSampler(batches.lengths, batch_size=batch_size, shuffle=False)
    out = None
    for index in sampler:
        batch = batches[index]
        bag = batch["ngram_ids"].to(device) if "ngram_ids" in batch else None
        with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
            logits = model(batch["input_ids"].to(device), batch["lengths"].to(device), bag)
        logits = logits.float().cpu().numpy()  # host sync: evaluation only
        if out is None:
            out = np.zeros((len(batches), logits.shape[1]), dtype=np.float32)
        out[index] = logits
    return out


def all_logits(model, split, num_classes, device, batch_size=256, precision="fp32"):
    """predict_logits over all ranks: each predicts every W-th text; one all-reduce."""
    if not distributed.active():
        return predict_logits(model, split, device, batch_size, precision)
    n, w, r = len(split), distributed.world_size(), distributed.rank()
    full = torch.zeros(n, num_classes, dtype=torch.float32)
    mine = list(range(r, n, w))
    if mine:
        full[r::w] = torch.from_numpy(
            predict_logits(model, split.select(mine), device, batch_size, precision)
        )
    return distributed.sum_rows(full).numpy()  # each row is non-zero on exactly one rank


def evaluate_split(
    model, split, label_names, device, task, batch_size=256, precision="fp32", examples: int = 0
) -> dict:
    """The `task`'s metrics of `model` on a tokenized split; with `examples` > 0, also that
    many of the most confidently wrong texts (reading the texts costs time: on request)."""
    try:
        logits = all_logits(model, split, len(label_names), device, batch_size, precision)
    except guards.OOM_ERRORS as exc:
        raise guards.oom_error(exc, "evaluation", {"train.eval_batch_size": batch_size}) from exc
    targets = column_array(split, "label")
    return task.report(targets, logits, label_names, lambda: split["text"], examples)


def report_on(model, split, label_names, task, where: dict, out_dir, tc) -> tuple[dict, list]:
    """(the report of `model` on `split`, the files written into `out_dir`): the task's
    metrics with the bundle's tuned thresholds and the 10 most confidently wrong texts;
    `where` (split, checkpoint, data) is recorded in it."""
    device = next(model.parameters()).device
    task = task.load(where["checkpoint"], label_names)  # multi-label: the tuned thresholds
    report = evaluate_split(
        model, split, label_names, device, task, tc.eval_batch_size, tc.precision, examples=10
    )
    report.update(where)
    note = refit_note(where)
    if note:
        report["note"] = note
    return report, write_report(report, out_dir)


def refit_note(where: dict) -> str | None:
    """A report on validation from a bundle that `train.refit` trained on those very texts
    (same data; metrics.json has `refit_epochs`) reads high: the line that says so, with
    the first run's validation scores, read before the refit. None otherwise."""
    run = Path(where["checkpoint"])
    if where.get("split") != "validation" or not (run / "metrics.json").is_file():
        return None
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    saved = checkpoint.read_config(run)["data"]["source"]
    if "refit_epochs" not in metrics or Path(saved).resolve() != Path(where["data"]).resolve():
        return None
    keys = [k for k in ("val_accuracy", "val_macro_f1") if k in metrics]
    first = ", ".join(f"{k[4:]} {metrics[k]:.4f}" for k in keys)
    return (
        "the refit trained on these validation texts, so this report reads high; "
        f"the first run's validation, before the refit: {first}"
    )


def per_class_table(report: dict) -> list[str]:
    """Lines of the per-class precision/recall/F1/support table (+ threshold when tuned)."""
    names = report["labels"]
    width = max(8, *(len(n) for n in names))
    threshold = "threshold" in next(iter(report["per_class"].values()))
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


def confusion_table(report: dict) -> list[str]:
    names, matrix = report["labels"], report["confusion_matrix"]
    width = max(8, *(len(n) for n in names))
    cell = max(6, *(len(n) for n in names), *(len(str(v)) for r in matrix for v in r))
    lines = ["", "confusion matrix (rows: true, columns: predicted)"]
    lines.append(" " * width + "  " + " ".join(f"{n:>{cell}}" for n in names))
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"{name:<{width}}  " + " ".join(f"{v:>{cell}}" for v in row))
    return lines


def format_report(report: dict) -> str:
    """The report as a terminal/markdown table."""
    headline = TASKS[report.get("task", "single_label")]().summary(report)
    lines = [
        headline
        + f"   n={report['n']}"
        + (f"   split={report['split']}" if "split" in report else ""),
        "",
        *per_class_table(report),
    ]
    if "note" in report:
        lines[1:1] = [f"note: {report['note']}"]
    if "confusion_matrix" in report:
        lines += confusion_table(report)
    return "\n".join(lines)


def write_report(report: dict, out_dir: Path) -> list[Path]:
    """report.json, report.md, report.html and (with matplotlib) PNG plots in `out_dir`.

    Training curves come from the `metrics.jsonl` of the report's checkpoint, when present.
    """
    out_dir = files.make_folder(out_dir)
    report = {**report, "created": datetime.datetime.now().isoformat(timespec="seconds")}
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    files.write_json(json_path, report)
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
    files.atomic_write(md_path, "\n".join(md).encode())
    html_path = write_html(report, images or {}, out_dir)
    return [json_path, md_path, html_path, *(images or {}).values()]
