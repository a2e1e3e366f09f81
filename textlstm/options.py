"""The Click options verbs share, and how they become a run's config or a Predictor.

Kept out of cli.py so that each verb there reads as: options, one call, print.
"""

from pathlib import Path

import click

from textlstm import TextlstmError


class Probability(click.FloatRange):
    """A number in [0, 1]; NaN (which every comparison fails) is refused too."""

    def __init__(self):
        super().__init__(0, 1)

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail("nan is not a probability", param, ctx)
        return number


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


def reading_options(f):
    """What `classify` and `embed` share: texts (arguments, --file, stdin), bundle, engine."""
    options = [
        click.argument("texts", nargs=-1),
        click.option("--checkpoint", help="Run folder (default: checkpoints/latest)."),
        click.option("--file", help="Texts: .txt (one per line), .jsonl or .parquet; - stdin."),
        click.option("--output", "-o", type=click.Path(), help="Write here, not to stdout."),
        click.option(
            "--text-column",
            default="text",
            show_default=True,
            help="Field holding the text in a .jsonl or .parquet --file.",
        ),
        click.option(
            "--engine",
            type=click.Choice(["auto", "numpy", "torch", "onnx"]),
            default="auto",
            show_default=True,
            help="auto: numpy for texts given as arguments (fastest start); onnx for --file "
            "and stdin (torch without the onnx extra); torch on GPU; int8 bundles: onnx.",
        ),
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N."),
        click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def open_reading(texts, checkpoint, file, output, text_column, engine, device):
    """(chunks of texts, their count or None, the loaded Predictor)."""
    import os

    if engine != "torch" and device == "cpu":
        # The numpy engine multiplies small matrices step by step: OpenBLAS's thread pool
        # costs more than it gains (11x slower on a busy 2-core machine). Must be set
        # before numpy loads; an explicit OPENBLAS_NUM_THREADS wins.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from textlstm import stream
    from textlstm.predict import Predictor

    chunks, total = stream.open_input(texts, file, text_column, output)
    workload = "file" if file or texts == ("-",) else "few"  # few: the fastest start wins
    return chunks, total, Predictor(checkpoint, engine, device, workload)


def serve_options(f):
    """`serve`'s options: the bundle, the address, and the limits on one request."""
    options = [
        click.option("--checkpoint", help="Run folder (default: checkpoints/latest)."),
        click.option("--host", default="127.0.0.1", show_default=True),
        click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True),
        click.option(
            "--max-texts",
            type=click.IntRange(min=1),
            default=256,
            show_default=True,
            help="Most texts in one request (more: 413).",
        ),
        click.option(
            "--max-chars",
            type=click.IntRange(min=1),
            default=20_000,
            show_default=True,
            help="Most characters in one text (more: 413).",
        ),
        click.option(
            "--max-request-chars",
            type=click.IntRange(min=1),
            default=200_000,
            show_default=True,
            help="Most characters in all texts of one request (more: 413); bounds its time.",
        ),
        click.option(
            "--batch-wait-ms",
            type=click.FloatRange(min=0),
            default=5.0,
            show_default=True,
            help="How long to gather concurrent requests into one batch.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def train_config(resume, config_file, overrides, source, text_column, label_column, seed):
    """A new run's config from its options, or a resumed run's own (only --set may change)."""
    if not resume:
        return build_config(config_file, overrides, source, text_column, label_column, seed)
    from textlstm import checkpoint, config

    if config_file or source or text_column or label_column or seed is not None:
        raise TextlstmError(
            "--resume continues a run with its own config and data; "
            "only --set, --device and --report-dir may change"
        )
    saved = checkpoint.read_config(Path(resume))
    if saved.get("kind") == checkpoint.PRETRAINED_KIND:
        raise TextlstmError(
            f"{resume} is a pretraining: continue it with textlstm pretrain --resume {resume}"
        )
    return config.resumed(saved, overrides)
