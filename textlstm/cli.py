"""The `textlstm` command: preprocess -> train -> evaluate -> classify.

Heavy imports (torch, datasets) happen inside each command, so `textlstm --help` is
instant and `classify` (numpy engine) never pays for torch. Errors a user can cause end
with one `error:` line on stderr and exit status 1.
"""

import json
import sys
from pathlib import Path

import click

from textlstm import TextlstmError, __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TextlstmError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=Group, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="textlstm")
def main():
    """Train and use bidirectional-LSTM text classifiers.

    \b
    make train                                   # train on the bundled SMS spam data
    textlstm classify "WINNER!! free prize"      # uses checkpoints/latest
    textlstm train --data DIR_OR_FILE_OR_HUB_NAME --set train.epochs=5
    textlstm evaluate --data DIR --split test
    """


def data_options(f):
    f = click.option("--label-column", help="Column holding the labels (default: label).")(f)
    f = click.option("--text-column", help="Column holding the text (default: text).")(f)
    f = click.option(
        "--data",
        "source",
        help="Folder of train/validation/test .parquet/.csv/.jsonl files, one such file, "
        "a `textlstm preprocess` folder, or a hub name (imdb, nyu-mll/glue:sst2).",
    )(f)
    return f


def config_options(f):
    f = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Override one config value, e.g. --set train.epochs=3 (repeatable).",
    )(f)
    f = click.option("--config", "config_file", help="TOML file with [data] [model] [train].")(f)
    return f


def build_config(config_file, overrides, source, text_column, label_column, seed=None):
    from textlstm import config

    cfg = config.build(config_file, overrides)
    for key, value in (("source", source), ("text_column", text_column)):
        if value is not None:
            setattr(cfg.data, key, value)
    if label_column is not None:
        cfg.data.label_column = label_column
    if seed is not None:
        cfg.train.seed = seed
    return cfg


@main.command(context_settings=CONTEXT)
@data_options
@config_options
@click.option("--out", required=True, help="Folder to write the tokenizer and tokenized splits.")
@click.option("--seed", type=int, help="Seed for carving a validation split (default 0).")
def preprocess(source, text_column, label_column, config_file, overrides, out, seed):
    """Load, check and tokenize a dataset once; `train --data OUT` then reuses it."""
    from textlstm.tokenizer import prepare, save_preprocessed

    cfg = build_config(config_file, overrides, source, text_column, label_column, seed)
    prep = prepare(cfg.data, cfg.train.seed)
    for note in prep.notes:
        click.echo(f"note: {note}", err=True)
    save_preprocessed(prep, Path(out))
    sizes = ", ".join(f"{name} {len(split)}" for name, split in prep.splits.items())
    click.echo(
        f"wrote {out}: {sizes} texts, {len(prep.label_names)} classes, "
        f"vocab {prep.tokenizer.get_vocab_size()}. Train with: textlstm train --data {out}"
    )


@main.command(context_settings=CONTEXT)
@data_options
@config_options
@click.option("--out", help="Run folder (default checkpoints/<data>-<date>-<time>).")
@click.option("--device", help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--seed", type=int, help="Random seed (train.seed, default 0).")
@click.option("--resume", type=click.Path(), help="Continue the run saved in this folder.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run already in --out.")
@click.option("--report-dir", help="Where to write the test report (default: the run folder).")
def train(
    source, text_column, label_column, config_file, overrides, out, device, seed, resume,
    overwrite, report_dir,
):  # fmt: skip
    """Train a classifier; ends with the test-split report and the checkpoint path."""
    from textlstm import checkpoint, config
    from textlstm.train import Interrupted, fit

    if resume:
        run_dir = Path(resume)
        saved = checkpoint.read_config(run_dir)
        cfg = config.from_dict(saved)
        for item in overrides:  # e.g. --set train.epochs=20 to extend a run
            config.apply(cfg, *config.split_override(item))
        if config_file or source or text_column or label_column or seed is not None:
            raise TextlstmError("--resume continues a run with its own config and data; "
                                "only --set, --device and --report-dir may change")  # fmt: skip
    else:
        run_dir = Path(out) if out else None
        cfg = build_config(config_file, overrides, source, text_column, label_column, seed)
    if device:
        cfg.train.device = device
    cfg.model.check()
    cfg.train.check()
    click.echo(f"textlstm {__version__}: effective config\n{cfg.describe()}", err=True)
    try:
        result = fit(cfg, run_dir, resume=bool(resume), overwrite=overwrite)
    except Interrupted as stop:
        click.echo(
            f"stopped by signal {stop.signum}; state saved. Resume with:\n"
            f"  textlstm train --resume {stop.run_dir}",
            err=True,
        )
        sys.exit(stop.exit_code)
    splits = result.prepared.splits
    split = "test" if "test" in splits and cfg.train.test else "validation"
    if split == "validation":
        click.echo("note: no test split (or train.test=false): reporting on validation", err=True)
    report_for(result.model, splits[split], result.prepared.label_names, split, result.run_dir,
               cfg.data.source, report_dir, cfg.train)  # fmt: skip
    latest = result.run_dir.parent / "latest"
    click.echo(f"checkpoint: {result.run_dir}  ({latest} points here)")


def report_for(model, split_data, label_names, split, run_dir, source, report_dir, tc):
    from textlstm.evaluate import evaluate_split, format_report, write_report
    from textlstm.multilabel import read_thresholds

    device = next(model.parameters()).device
    thresholds = read_thresholds(run_dir, label_names)  # used by multi-label runs only
    report = evaluate_split(model, split_data, label_names, device, tc.eval_batch_size,
                            tc.precision, examples=10, thresholds=thresholds)  # fmt: skip
    report.update(split=split, checkpoint=str(run_dir), data=str(source))
    paths = write_report(report, Path(report_dir) if report_dir else run_dir)
    click.echo(format_report(report))
    click.echo("report: " + "  ".join(str(p) for p in paths))
    if not any(p.suffix == ".png" for p in paths):
        from textlstm.report import PLOTS_HINT

        click.echo(PLOTS_HINT, err=True)


@main.command(context_settings=CONTEXT)
@click.option("--checkpoint", help="Run folder (default: checkpoints/latest).")
@data_options
@click.option("--split", default="test", show_default=True, help="Split to evaluate.")
@click.option("--report-dir", help="Where to write report.json/report.md (default: the run).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--rnn", type=click.Choice(["cudnn", "cell"]), help="Run the other LSTM kernel.")
def evaluate(checkpoint, source, text_column, label_column, split, report_dir, device, rnn):
    """Report accuracy, macro-F1, per-class metrics and confusion matrix on a split."""
    from textlstm import checkpoint as ckpt
    from textlstm.data import DataConfig, load_for_eval
    from textlstm.tokenizer import tokenize_splits
    from textlstm.train import TrainConfig, pick_device

    run_dir = ckpt.resolve(checkpoint)
    model, config, labels = ckpt.load_model(run_dir, pick_device(device), rnn)
    data = DataConfig(**config["data"])
    for key, value in (("source", source), ("text_column", text_column),
                       ("label_column", label_column)):  # fmt: skip
        if value is not None:
            setattr(data, key, value)
    split_data = load_for_eval(data, split, labels)
    tokenized = tokenize_splits(split_data, ckpt.load_tokenizer(run_dir), data)
    tc = TrainConfig(**config["train"])
    report_for(model, tokenized, labels, split, run_dir, data.source, report_dir, tc)


def read_texts(texts, file):
    """Texts from arguments, a file (one per line) or stdin (`-`), lazily."""
    if file and texts:
        raise TextlstmError("give texts as arguments or with --file, not both")
    if texts == ("-",):
        file = "-"
    if file is None:
        if not texts:
            raise TextlstmError('nothing to classify: give TEXT arguments, --file PATH, or "-" '
                                "for standard input")  # fmt: skip
        yield from texts
        return
    stream = click.open_file(file, encoding="utf-8", errors="replace")
    with stream:
        for line in stream:
            yield line.rstrip("\n").rstrip("\r")


def chunks(items, size):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@main.command(context_settings=CONTEXT)
@click.argument("texts", nargs=-1)
@click.option("--checkpoint", help="Run folder (default: checkpoints/latest).")
@click.option("--file", "file", help="Text file, one text per line; - reads standard input.")
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Labels per text (capped at the number of classes).")  # fmt: skip
@click.option("--threshold", "-t", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Only show labels with at least this probability.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl"]), default="text",
              show_default=True)  # fmt: skip
@click.option("--output", "-o", type=click.Path(), help="Write here instead of stdout.")
@click.option("--engine", type=click.Choice(["auto", "numpy", "torch"]), default="auto",
              show_default=True, help="auto: numpy on CPU (fast start), torch on GPU.")  # fmt: skip
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
def classify(texts, checkpoint, file, top_k, threshold, fmt, output, engine, device, batch_size):
    """Classify raw texts: arguments, --file PATH, or - for stdin (one text per line).

    \b
    Empty or whitespace-only texts are classified as a single unknown token
    (the model's prior); a warning names them, and JSON output marks "empty": true.
    """
    from textlstm.predict import Predictor

    predictor = Predictor(checkpoint, engine, device)
    out = click.open_file(output or "-", "w", encoding="utf-8", atomic=bool(output))
    with out:
        if fmt == "json":
            out.write("[")
        number = 0
        for chunk in chunks(read_texts(texts, file), 4096):
            probs = predictor.probabilities(chunk, batch_size)
            for text, row in zip(chunk, probs, strict=True):
                number += 1
                picks = predictor.pick(row, top_k, threshold)
                empty = not text.strip()
                if empty:
                    click.echo(f"warning: text {number} is empty; classified as unknown input",
                               err=True)  # fmt: skip
                if fmt == "text":
                    out.write("\t".join(f"{label}\t{p:.4f}" for label, p in picks) + "\n")
                    continue
                record = {"text": text, "labels": [{"label": lb, "probability": round(p, 6)}
                                                   for lb, p in picks]}  # fmt: skip
                if empty:
                    record["empty"] = True
                line = json.dumps(record, ensure_ascii=False)
                out.write(line + "\n" if fmt == "jsonl" else ("," if number > 1 else "") + line)
        if fmt == "json":
            out.write("]\n")
