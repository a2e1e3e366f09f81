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
@click.option("--deterministic", is_flag=True,
              help="Deterministic GPU kernels where they exist (train.deterministic).")  # fmt: skip
@click.option("--nproc", type=click.IntRange(min=1),
              help="Train with N processes (DDP) on this machine via torchrun; "
              "batch sizes are per process.")  # fmt: skip
def train(
    source, text_column, label_column, config_file, overrides, out, device, seed, resume,
    overwrite, report_dir, deterministic, nproc,
):  # fmt: skip
    """Train a classifier; ends with the test-split report and the checkpoint path.

    \b
    Several processes: torchrun --nproc-per-node N -m textlstm train ... (or --nproc N).
    """
    if nproc:
        from textlstm.launch import launch_torchrun

        sys.exit(launch_torchrun(nproc, click.get_current_context()))
    from textlstm import checkpoint, config, distributed
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
    if deterministic:
        cfg.train.deterministic = True
    cfg.model.check()
    cfg.train.check()
    main_rank = distributed.is_main()  # under torchrun, rank 0 alone prints and reports
    if main_rank:
        click.echo(f"textlstm {__version__}: effective config\n{cfg.describe()}", err=True)
    try:
        result = fit(cfg, run_dir, resume=bool(resume), overwrite=overwrite)
    except Interrupted as stop:
        if not main_rank:
            sys.exit(stop.exit_code)
        click.echo(
            f"stopped by signal {stop.signum}; state saved. Resume with:\n"
            f"  textlstm train --resume {stop.run_dir}",
            err=True,
        )
        sys.exit(stop.exit_code)
    if not main_rank:
        return
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


@main.command(context_settings=CONTEXT)
@click.argument("texts", nargs=-1)
@click.option("--checkpoint", help="Run folder (default: checkpoints/latest).")
@click.option(
    "--file",
    "file",
    help="Texts to classify: .txt (one per line), .jsonl or .parquet; - reads stdin.",
)
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=1, show_default=True,
              help="Labels per text (capped at the number of classes).")  # fmt: skip
@click.option("--threshold", "-t", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Only show labels with at least this probability.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["text", "json", "jsonl", "parquet"]),
              help="Output format (default: from the --output suffix .jsonl/.json/.parquet, "
              "else text).")  # fmt: skip
@click.option("--output", "-o", type=click.Path(), help="Write here instead of stdout.")
@click.option("--text-column", default="text", show_default=True,
              help="Field holding the text in a .jsonl or .parquet --file.")  # fmt: skip
@click.option("--engine", type=click.Choice(["auto", "numpy", "torch"]), default="auto",
              show_default=True, help="auto: numpy on CPU (fast start), torch on GPU.")  # fmt: skip
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
def classify(texts, checkpoint, file, top_k, threshold, fmt, output, text_column, engine, device,
             batch_size):  # fmt: skip
    """Classify raw texts: arguments, --file PATH, or - for stdin (one text per line).

    \b
    --file may be .txt (one text per line), .jsonl or .parquet (--text-column); it is
    streamed in chunks of 4,096 texts, so memory stays flat for any file size.
    --output preds.parquet writes index, label, probability and prob_<label> columns.
    Empty or whitespace-only texts are classified as a single unknown token
    (the model's prior); a warning names them, and JSON output marks "empty": true.
    """
    import os

    if engine != "torch" and device == "cpu":
        # The numpy engine multiplies small matrices step by step: OpenBLAS's thread pool
        # costs more than it gains (11x slower on a busy 2-core machine). Must be set
        # before numpy loads; an explicit OPENBLAS_NUM_THREADS wins.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from textlstm import stream
    from textlstm.predict import Predictor

    fmt = stream.output_format(output, fmt)
    if fmt == "parquet" and not output:
        raise TextlstmError("parquet output needs --output FILE.parquet")
    if file and texts:
        raise TextlstmError("give texts as arguments or with --file, not both")
    if texts == ("-",):
        file = "-"
    if file:
        source = stream.read_chunks(file, text_column, stream.CHUNK)
        total = stream.count_rows(file)
    elif texts:
        source, total = stream.batched(texts, stream.CHUNK), len(texts)
    else:
        raise TextlstmError('nothing to classify: give TEXT arguments, --file PATH, or "-" '
                            "for standard input")  # fmt: skip
    predictor = Predictor(checkpoint, engine, device)
    bar = stream.progress(total, enabled=bool(file))  # not for a few texts on the command line

    def predicted():
        """(position of the chunk's first text, texts, probabilities) per chunk."""
        start = 0
        for chunk in source:
            probs = predictor.probabilities(chunk, batch_size)
            for number, text in enumerate(chunk, start + 1):
                if not text.strip():
                    click.echo(f"warning: text {number} is empty; classified as unknown input",
                               err=True)  # fmt: skip
            yield start, chunk, probs
            start += len(chunk)
            bar.update(len(chunk))

    if fmt == "parquet":
        try:
            sink, ok = stream.ParquetOutput(output, predictor.labels), False
        except OSError as exc:
            raise TextlstmError(f"cannot write {output}: {exc.strerror or exc}") from exc
        try:
            for start, _, probs in predicted():
                sink.write(start, probs, threshold)
            ok = True
        finally:
            sink.close(ok)
            bar.close()
        return
    try:
        out = click.open_file(output or "-", "w", encoding="utf-8", atomic=bool(output))
    except OSError as exc:  # missing folder, no permission, read-only disk
        raise TextlstmError(f"cannot write {output}: {exc.strerror or exc}") from exc
    with out:
        if fmt == "json":
            out.write("[")
        for start, chunk, probs in predicted():
            for index, (text, row) in enumerate(zip(chunk, probs, strict=True), start):
                picks = predictor.pick(row, top_k, threshold)
                if fmt == "text":
                    out.write("\t".join(f"{label}\t{p:.4f}" for label, p in picks) + "\n")
                    continue
                record = {"index": index, "text": text,
                          "labels": [{"label": lb, "probability": round(p, 6)}
                                     for lb, p in picks]}  # fmt: skip
                if not text.strip():
                    record["empty"] = True
                line = json.dumps(record, ensure_ascii=False)
                out.write(line + "\n" if fmt == "jsonl" else ("," if index else "") + line)
        if fmt == "json":
            out.write("]\n")
    bar.close()


@main.command(context_settings=CONTEXT)
@click.option("--checkpoint", help="Run folder (default: checkpoints/latest).")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), required=True)
@click.option("--out", help="Output folder (default: <checkpoint>/onnx).")
def export(checkpoint, fmt, out):
    """Write model.onnx (+ tokenizer.json, labels.json, config.json), checked against torch.

    \b
    Inputs: ids int64 (batch, steps) right-padded with 0, lengths int64 (batch,).
    Output: logits float32 (batch, classes). Needs: pip install 'textlstm[onnx]'.
    """
    from textlstm.export import export as run_export

    result = run_export(checkpoint, fmt, out)
    click.echo(
        f"wrote {result['path']} ({result['exporter']} exporter; onnxruntime matches torch "
        f"to {result['max_abs_diff']:.1e})"
    )


@main.command(context_settings=CONTEXT)
@click.option("--checkpoint", help="Run folder (default: checkpoints/latest).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-texts", type=click.IntRange(min=1), default=256, show_default=True,
              help="Most texts in one request (more: 413).")  # fmt: skip
@click.option("--max-chars", type=click.IntRange(min=1), default=20_000, show_default=True,
              help="Most characters in one text (more: 413).")  # fmt: skip
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="How long to gather concurrent requests into one batch.")  # fmt: skip
def serve(checkpoint, host, port, max_texts, max_chars, batch_wait_ms):
    """HTTP JSON API: POST /classify, GET /health, GET /labels (numpy engine).

    \b
    curl -s localhost:8000/classify -d '{"text": "WINNER!! call now"}'
    curl -s localhost:8000/classify -d '{"texts": ["hi", "free prize"], "top_k": 2}'
    Needs: pip install 'textlstm[serve]'.
    """
    from textlstm.serve import serve as run_server

    run_server(checkpoint, host, port, max_texts=max_texts, max_chars=max_chars,
               batch_wait_ms=batch_wait_ms)  # fmt: skip
