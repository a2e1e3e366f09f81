"""The parts of the evaluation report meant to be looked at: PNG plots, the Markdown
sections and a self-contained `report.html` (the numbers come from metrics.py).

Everything here works from the report dict (plus the run's `metrics.jsonl` for training
curves), so plots can be redrawn from a saved `report.json` without the model.

Plots need matplotlib (`pip install 'textlstm[plots]'`), imported only inside
`write_plots` with the non-interactive Agg backend (no display, no GUI toolkit). Without
it, the JSON, Markdown and HTML reports are still written, minus the images: the numbers
matter more than the pictures, so a missing extra never fails an evaluation.
"""

import base64
import html
import io
from pathlib import Path

import numpy as np

from textlstm import files
from textlstm.metrics import ECE_BINS

PLOTS_HINT = "plots: pip install 'textlstm[plots]' to add PNG plots to the report"


def read_curves(run_dir) -> list[dict]:
    """The per-epoch rows of a run's metrics.jsonl ([] when there is none)."""
    rows = files.read_jsonl(Path(run_dir) / "metrics.jsonl") if run_dir else []
    return [r for r in rows if "epoch" in r]


def write_plots(report: dict, out_dir: Path, curves: list[dict]) -> dict[str, Path] | None:
    """PNG plots into `out_dir`; returns {title: path}, or None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only: works on headless machines, never opens a window
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out_dir = Path(out_dir)
    written = {}

    def save(fig, name, title):
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        files.atomic_write(out_dir / name, buffer.getvalue())  # like every other bundle file
        written[title] = out_dir / name

    if "confusion_matrix" in report:
        names = report["labels"]
        counts = np.asarray(report["confusion_matrix"], dtype=float)
        rows = counts.sum(axis=1, keepdims=True)
        normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        size = 3 + 0.45 * len(names)
        fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
        for ax, data, title, fmt in (
            (axes[0], counts, "counts", "{:.0f}"),
            (axes[1], normalised, "row-normalised (recall on the diagonal)", "{:.2f}"),
        ):
            image = ax.imshow(data, cmap="Blues", vmin=0)
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
            ax.set(xticks=range(len(names)), yticks=range(len(names)), title=title)
            ax.set_xticklabels(names, rotation=45, ha="right")
            ax.set_yticklabels(names)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            if len(names) <= 20:  # numbers in cells stay legible up to about 20 classes
                top = data.max() or 1
                for (i, j), v in np.ndenumerate(data):
                    color = "white" if v > top / 2 else "black"
                    ax.text(j, i, fmt.format(v), ha="center", va="center", color=color)
        save(fig, "confusion_matrix.png", "Confusion matrix")

    if "calibration" in report:
        bins = report["calibration"]["bins"]
        fig, (ax, hist) = plt.subplots(
            2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        width = bins[0]["hi"] - bins[0]["lo"]
        filled = [b for b in bins if b["count"]]
        ax.bar(
            [b["lo"] for b in filled],
            [b["accuracy"] for b in filled],
            width=width,
            align="edge",
            edgecolor="black",
            label="accuracy",
        )
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.plot(
            [b["confidence"] for b in filled],
            [b["accuracy"] for b in filled],
            "o",
            color="tab:red",
            label="mean confidence",
        )
        ax.set(
            ylim=(0, 1),
            ylabel="accuracy",
            title=f"Reliability (ECE {report['calibration']['ece']:.4f})",
        )
        ax.legend(loc="upper left")
        hist.bar(
            [b["lo"] for b in bins],
            [b["count"] for b in bins],
            width=width,
            align="edge",
            edgecolor="black",
            color="gray",
        )
        hist.set(xlim=(0, 1), xlabel="confidence of the predicted label", ylabel="texts")
        hist.set_yscale("symlog")  # most texts sit in the top bin; keep the rest visible
        save(fig, "reliability.png", "Reliability diagram")

    if curves:
        epochs = [r["epoch"] for r in curves]
        fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 4))
        for key in ("train_loss", "val_loss"):
            if all(key in r for r in curves):
                loss_ax.plot(epochs, [r[key] for r in curves], "o-", label=key)
        loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
        loss_ax.legend()
        metric_keys = sorted({k for r in curves for k in r if k.startswith("val_")} - {"val_loss"})
        for key in metric_keys:
            metric_ax.plot(epochs, [r.get(key, np.nan) for r in curves], "o-", label=key)
        metric_ax.set(xlabel="epoch", title="Validation metrics")
        metric_ax.legend()
        for ax in (loss_ax, metric_ax):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        save(fig, "training_curves.png", "Training curves")
    return written


def markdown_sections(report: dict, images: dict[str, Path]) -> list[str]:
    """Report.md lines after the metrics table: calibration, errors, images."""
    lines = []
    if "calibration" in report:
        lines += [
            f"Expected calibration error ({ECE_BINS} bins): {report['calibration']['ece']:.4f}",
            "",
        ]
    wrong = report.get("confidently_wrong")
    if wrong:
        lines += [
            "## Most confidently wrong",
            "",
            "| probability | true | predicted | text |",
            "|---:|---|---|---|",
        ]
        for w in wrong:
            text = " ".join(w["text"].split()).replace("|", "\\|")
            lines.append(f"| {w['probability']:.4f} | {w['true']} | {w['predicted']} | {text} |")
        lines.append("")
    for title, path in images.items():
        lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    return lines


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
td{text-align:right}td.text{text-align:left;max-width:600px}img{max-width:100%}
th{background:#f0f0f0}"""


def write_html(report: dict, images: dict[str, Path], out_dir: Path) -> Path:
    """report.html: tables plus the PNGs inlined as base64, one file to open or mail."""
    esc = html.escape
    parts = [f"<h1>Evaluation: {esc(str(report.get('split', '?')))} split</h1>", "<ul>"]
    for key in ("checkpoint", "data", "created", "n", "note"):
        if key in report:
            parts.append(f"<li>{key}: <code>{esc(str(report[key]))}</code></li>")
    parts.append("</ul>")
    summary = [[k, f"{report[k]:.4f}"] for k in report if k in SUMMARY_KEYS]
    if "calibration" in report:
        summary.append([f"ECE ({ECE_BINS} bins)", f"{report['calibration']['ece']:.4f}"])
    parts.append(table(["metric", "value"], summary))
    per_label = report.get("per_class") or report.get("per_label") or {}
    parts.append(
        table(
            ["label", "precision", "recall", "f1", "support"],
            [
                [
                    name,
                    f"{m['precision']:.4f}",
                    f"{m['recall']:.4f}",
                    f"{m['f1']:.4f}",
                    m["support"],
                ]
                for name, m in per_label.items()
            ],
        )
    )
    if "confusion_matrix" in report:
        parts.append("<h2>Confusion matrix (rows: true, columns: predicted)</h2>")
        parts.append(
            table(
                [""] + report["labels"],
                [
                    [n, *row]
                    for n, row in zip(report["labels"], report["confusion_matrix"], strict=True)
                ],
            )
        )
    wrong = report.get("confidently_wrong")
    if wrong:
        parts.append("<h2>Most confidently wrong</h2>")
        rows = "".join(
            f"<tr><td>{w['probability']:.4f}</td><td>{esc(str(w['true']))}</td>"
            f"<td>{esc(str(w['predicted']))}</td><td class=text>{esc(w['text'])}</td></tr>"
            for w in wrong
        )
        parts.append(
            "<table><thead><tr><th>probability</th><th>true</th><th>predicted</th>"
            f"<th>text</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    for title, path in images.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(
            f'<h2>{esc(title)}</h2><img alt="{esc(title)}" src="data:image/png;base64,{data}">'
        )
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>textlstm evaluation</title><style>{STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>\n"
    )
    path = Path(out_dir) / "report.html"
    files.atomic_write(path, page.encode("utf-8"))
    return path


SUMMARY_KEYS = ("accuracy", "macro_f1", "loss", "micro_f1", "subset_accuracy")
