"""The `textlstm` command: preprocess -> train -> evaluate -> classify.

Heavy imports (torch, datasets) happen inside each command, so `textlstm --help` is
instant and `classify` (numpy engine) never pays for torch. Errors a user can cause end
with one `error:` line on stderr and exit status 1.
"""

import sys
from pathlib import Path

import click

from textlstm import TextlstmError, __version__
from textlstm.options import (
    Probability,
    build_config,
    config_options,
    data_options,
    open_reading,
    reading_options,
    serve_options,
    train_config,
)

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


@main.command(context_settings=CONTEXT)
@data_options
@config_options
@click.option("--out", required=True, help="Folder to write the tokenizer and tokenized splits.")
@click.option("--seed", type=int, help="Seed for carving a validation split (default 0).")
def preprocess(source, text_column, label_column, config_file, overrides, out, seed):
    """Load, check and tokenize a dataset once; `train --data OUT` then reuses it."""
    from textlstm import files
    from textlstm.tokenizer import prepare, save_preprocessed

    cfg = build_config(config_file, overrides, source, text_column, label_column, seed)
    cfg.data.check()
    files.new_or_empty(out)  # before the slow part: never overwrite what is there
    prep = prepare(cfg.data, cfg.train.seed, bag=cfg.model.ngrams > 0)
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
@click.option(
    "--init-from",
    type=click.Path(),
    help="Start from the tokenizer and encoder of a `textlstm pretrain` folder (model.init_from).",
)
@click.option(
    "--deterministic",
    is_flag=True,
    help="Deterministic GPU kernels where they exist (train.deterministic).",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    help="Train with N processes (DDP) on this machine via torchrun; batch sizes are per process.",
)
@click.option(
    "--autotune",
    metavar="DURATION",
    help="Try lr, size, dropout, n-grams, adversarial epsilon and epochs on validation for "
    "this long (600, 10m, 1h), keep the best.",
)
def train(
    resume, out, overwrite, report_dir, init_from, device, deterministic, nproc, autotune, **options
):
    """Train a classifier; ends with the test-split report and the checkpoint path.

    \b
    Several processes: torchrun --nproc-per-node N -m textlstm train ... (or --nproc N).
    """
    if nproc:
        from textlstm.launch import launch_torchrun

        sys.exit(launch_torchrun(nproc, click.get_current_context()))
    from textlstm import distributed
    from textlstm.training import Interrupted, fit

    cfg = train_config(resume, **options)
    if init_from and resume:
        raise TextlstmError("--resume continues from the run's own weights: drop --init-from")
    cfg.model.init_from = init_from or cfg.model.init_from
    cfg.train.device = device or cfg.train.device
    cfg.train.deterministic = deterministic or cfg.train.deterministic
    cfg.check()  # fit prints the config once the data loaded: a bad --data is one line
    main_rank = distributed.is_main()  # under torchrun, rank 0 alone prints and reports
    try:
        if autotune:
            result = run_autotune(cfg, autotune, out, resume or overwrite or nproc)
        else:
            run_dir = Path(resume or out) if resume or out else None
            result = fit(cfg, run_dir, bool(resume), overwrite)
    except Interrupted as stop:
        stopped(stop, "train", main_rank)
    if main_rank:
        from textlstm import runs

        with runs.locked(result.run_dir):  # the report files are the run's too
            final_report(result, cfg, report_dir)
        click.echo(runs.where_is(result.run_dir))


def run_autotune(cfg, duration: str, out, refused):
    from textlstm.autotune import autotune, parse_duration

    if refused:
        raise TextlstmError("--autotune writes a new folder: drop --resume, --overwrite, --nproc")
    say = lambda msg: click.echo(msg, err=True)  # noqa: E731
    return autotune(cfg, parse_duration(duration), Path(out) if out else None, say)


def stopped(stop, verb: str, say: bool = True) -> None:
    """After SIGINT / SIGTERM: how to go on, and the signal's exit status."""
    if say:
        click.echo(f"stopped by signal {stop.signum}; state saved. Resume with:", err=True)
        click.echo(f"  textlstm {verb} --resume {stop.run_dir}", err=True)
    sys.exit(stop.exit_code)


def final_report(result, cfg, report_dir) -> None:
    """After training: the report on test (validation when there is no test split)."""
    splits, prep = result.prepared.splits, result.prepared
    split = "test" if "test" in splits and cfg.train.test else "validation"
    if split == "validation":
        click.echo("note: no test split (or train.test=false): reporting on validation", err=True)
    where = dict(split=split, checkpoint=str(result.run_dir), data=str(cfg.data.source))
    print_report(result.model, splits[split], prep.label_names, prep.task, where, report_dir, cfg)


@main.command(context_settings=CONTEXT)
@data_options
@config_options
@click.option(
    "--unlabeled",
    multiple=True,
    type=click.Path(),
    help="More texts to learn from: .txt (one per line), .csv, .tsv, .jsonl, .parquet "
    "(column --text-column), or a folder of them (repeatable).",
)
@click.option("--out", help="Folder to write the pretrained encoder to (required unless --resume).")
@click.option("--resume", type=click.Path(), help="Continue the pretraining saved in this folder.")
@click.option("--overwrite", is_flag=True, help="Replace a pretraining already in --out.")
@click.option("--device", help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--seed", type=int, help="Random seed (train.seed, default 0).")
def pretrain(unlabeled, out, resume, overwrite, device, **options):
    """Pretrain the encoder as a bidirectional language model on the task's own texts.

    \b
    Reads the texts of --data's train split (never a label) and of any --unlabeled files;
    `textlstm train --init-from OUT` then starts the classifier from it. Settings:
    [data] (tokenizer), [model] (encoder shape), [train] (optimiser), [pretrain].
    """
    from textlstm import pretraining
    from textlstm.training import Interrupted

    if resume:
        if out or unlabeled or any(v is not None for k, v in options.items() if k != "overrides"):
            raise TextlstmError(
                "--resume continues a pretraining with its own config and texts; "
                "only --set train.* / pretrain.* and --device may change"
            )
        cfg, unlabeled = pretraining.resumed_config(Path(resume), options["overrides"])
    elif not out:
        raise TextlstmError("pretrain needs --out DIR (or --resume DIR)")
    else:
        cfg = build_config(**options)
    cfg.train.device = device or cfg.train.device
    try:  # pretraining.pretrain checks the config before any work
        result = pretraining.pretrain(cfg, Path(resume or out), unlabeled, bool(resume), overwrite)
    except Interrupted as stop:
        stopped(stop, "pretrain")
    held = result.best.get("heldout_ppl")
    kept = f" (epoch {result.best['epoch']}, held-out perplexity {held:.1f})" if held else ""
    click.echo(f"pretrained encoder: {result.out}{kept}")
    click.echo(f"fine-tune it: textlstm train --data {cfg.data.source} --init-from {result.out}")


def print_report(model, split_data, label_names, task, where: dict, report_dir, cfg) -> None:
    """Evaluate, write the report files, print the table and where they went."""
    from textlstm.evaluate import format_report, report_on

    out = Path(report_dir) if report_dir else Path(where["checkpoint"])
    report, paths = report_on(model, split_data, label_names, task, where, out, cfg.train)
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
    from textlstm import config
    from textlstm.data import load_for_eval
    from textlstm.task import task_of
    from textlstm.tokenizer import tokenize_splits
    from textlstm.training import pick_device

    run_dir = ckpt.resolve(checkpoint)
    device = "cpu" if device == "auto" and ckpt.is_int8(ckpt.read_config(run_dir)) else device
    model, saved, labels = ckpt.load_model(run_dir, pick_device(device), rnn)
    cfg, task = config.from_dict(saved), task_of(saved)
    cfg.data.source = source or cfg.data.source
    cfg.data.text_column = text_column or cfg.data.text_column
    cfg.data.label_column = label_column or cfg.data.label_column
    split_data = load_for_eval(cfg.data, split, labels, task)
    tokenizer = ckpt.load_tokenizer(run_dir, saved["vocab_size"])
    tokenized = tokenize_splits(split_data, tokenizer, cfg.data, bag=cfg.model.ngrams > 0)
    where = dict(split=split, checkpoint=str(run_dir), data=str(cfg.data.source))
    print_report(model, tokenized, labels, task, where, report_dir, cfg)


@main.command(context_settings=CONTEXT)
@reading_options
@click.option(
    "--top-k",
    "-k",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Labels per text (capped at the number of classes).",
)
@click.option(
    "--threshold",
    "-t",
    type=Probability(),
    default=0.0,
    show_default=True,
    help="Only show labels with at least this probability.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "jsonl", "parquet"]),
    help="Default: from the --output suffix .jsonl/.json/.parquet, else text.",
)
def classify(
    texts, checkpoint, file, output, text_column, engine, device, batch_size, top_k, threshold, fmt
):
    """Classify raw texts: arguments, --file PATH, or - for stdin (one text per line).

    \b
    --file may be .txt (one text per line), .jsonl or .parquet (--text-column); it is
    streamed in chunks of 4,096 texts, so memory stays flat for any file size.
    --output preds.parquet writes index, label, probability, labels and prob_<label> columns.
    Empty or whitespace-only texts are classified as a single unknown token
    (the model's prior); a warning names them, and JSON output marks "empty": true.
    """
    from textlstm import stream

    fmt = stream.output_format(output, fmt)
    chunks, total, predictor = open_reading(
        texts, checkpoint, file, output, text_column, engine, device
    )
    warn = lambda msg: click.echo(f"warning: {msg}", err=True)  # noqa: E731
    with stream.progress(total, enabled=bool(file)) as bar:  # not for a few arguments
        predicted = stream.predict_chunks(predictor, chunks, batch_size, bar, warn)
        stream.write_predictions(predicted, predictor, output, fmt, top_k, threshold)


@main.command(context_settings=CONTEXT)
@reading_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "npy", "parquet"]),
    help="Default: from the --output suffix (.npy, .parquet), else jsonl.",
)
def embed(texts, checkpoint, file, output, text_column, engine, device, batch_size, fmt):
    """Text vectors: each text's pooled features, the vector the classifier reads.

    \b
    For search, clustering or another model. Inputs as for classify; JSONL records
    {"index", "vector"}, parquet (index, vector) or one .npy matrix (N, D).
    """
    from textlstm import stream

    fmt = stream.vector_format(output, fmt)
    chunks, total, predictor = open_reading(
        texts, checkpoint, file, output, text_column, engine, device
    )
    with stream.progress(total, enabled=bool(file)) as bar:
        stream.write_vectors(stream.embed_chunks(predictor, chunks, batch_size, bar), output, fmt)


@main.command(context_settings=CONTEXT)
@click.option("--checkpoint", help="Run folder (default: checkpoints/latest).")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), required=True)
@click.option("--out", help="Output folder (default: <checkpoint>/onnx).")
def export(checkpoint, fmt, out):
    """Write model.onnx (+ tokenizer.json, labels.json, config.json), checked against torch.

    \b
    Inputs: ids int64 (batch, steps) right-padded with 0, lengths int64 (batch,); with
    model.ngrams also ngram_ids int64 (batch, n), from textlstm.ngrams.bag_matrix.
    Output: logits float32 (batch, classes). Needs: pip install 'textlstm[onnx]'.
    """
    from textlstm.export import export as run_export

    r = run_export(checkpoint, fmt, out)
    how = f"{r['exporter']} exporter; onnxruntime matches torch to {r['max_abs_diff']:.1e}"
    if r["exporter"] == "int8":
        how = "the int8 bundle's graph, checked; outputs logits and features"
    click.echo(f"wrote {r['path']} ({how})")


@main.command(context_settings=CONTEXT)
@click.option("--checkpoint", help="Run folder (default: checkpoints/latest).")
@click.option("--out", help="Folder of the int8 bundle (default: <checkpoint>-int8).")
@click.option("--overwrite", is_flag=True, help="Replace an int8 bundle already in --out.")
@click.option("--per-channel", is_flag=True, help="One int8 scale per output row, not per tensor.")
def quantize(checkpoint, out, overwrite, per_channel):
    """Write an int8 copy of a bundle: ~4x smaller, faster on CPU (onnx engine).

    \b
    classify, embed, evaluate, serve, export and textlstm.load() take it like any bundle.
    Needs: pip install 'textlstm[onnx]'.
    """
    from textlstm.quantize import quantize as run_quantize

    r = run_quantize(checkpoint, out, overwrite, per_channel)
    ratio = r["fp32_bytes"] / r["int8_bytes"]
    click.echo(
        f"wrote {r['path']}: {r['int8_bytes'] / 1e6:.2f} MB, {ratio:.1f}x "
        f"smaller than the fp32 bundle; probabilities within {r['max_prob_diff']:.3f} of fp32 "
        "on a probe batch (accuracy per dataset: docs/BENCHMARKS.md)"
    )


@main.command(context_settings=CONTEXT)
@serve_options
def serve(checkpoint, host, port, **limits):
    """HTTP JSON API: POST /classify, GET /health, GET /labels (onnx or numpy engine).

    \b
    curl -s localhost:8000/classify -d '{"text": "WINNER!! call now"}'
    curl -s localhost:8000/classify -d '{"texts": ["hi", "free prize"], "top_k": 2}'
    Needs: pip install 'textlstm[serve]'.
    """
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in classify; before numpy loads
    from textlstm.serve import serve as run_server

    run_server(checkpoint, host, port, **limits)
