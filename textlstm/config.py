"""One run's configuration: sections `data`, `model`, `train`, one dataclass each, with
its defaults, a comment per field, and a `check()` that refuses a bad value with one line.

The three live here, together, so that reading or checking a config never imports torch
or datasets (the CLI parses and prints it before any heavy import). docs/CONFIG.md is
generated from these classes and their comments (`python -m textlstm.configdoc`).

Precedence, lowest first: the dataclass defaults, a TOML file (`--config`), `--set
section.field=value` overrides, then the dedicated CLI flags (`--data`, `--seed`,
`--device`). Unknown sections or fields are errors that list the valid ones.
"""

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from textlstm import TextlstmError

TOKENIZERS = ("word", "wordpiece")
TRUNCATIONS = ("head", "head+tail")
POOLINGS = ("last", "max", "mean")
SAMPLERS = ("bucket", "balanced")


@dataclass
class DataConfig:
    """Where the data comes from and how text becomes token ids (section `data`)."""

    source: str = "data/sms_spam"  # folder, file, or hub name ("imdb", "nyu-mll/glue:sst2")
    text_column: str = "text"  # column holding the text (--text-column)
    label_column: str = "label"  # column holding the label or a list of labels (--label-column)
    validation_fraction: float = 0.1  # carved (stratified) from train when there is none
    # Tokenizer, trained on the train split only (see tokenizer.py for the trade-offs).
    tokenizer: str = "word"  # "word" (reproducible) | "wordpiece" (subwords, see tokenizer.py)
    vocab_size: int = 20000  # vocabulary size limit
    min_frequency: int = 2  # tokens rarer than this in train are left out of the vocabulary
    lowercase: bool = True  # lower-case before tokenizing
    digits: str = "keep"  # "keep" | "zero": every digit becomes 0 (numbers share tokens)
    max_len: int = 256  # tokens kept per text; longer texts are truncated
    truncation: str = "head"  # "head" keeps the start | "head+tail" keeps start and end

    def check(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise TextlstmError(
                f"data.tokenizer must be 'wordpiece' or 'word', not {self.tokenizer!r}"
            )
        if self.digits not in ("keep", "zero"):
            raise TextlstmError(f"data.digits must be 'keep' or 'zero', not {self.digits!r}")
        if self.truncation not in TRUNCATIONS:
            raise TextlstmError(
                f"data.truncation must be 'head' or 'head+tail', not {self.truncation!r}"
            )
        ranges = {"validation_fraction": "(0, 1)", "vocab_size": ">= 3", "max_len": ">= 1"}
        check_ranges("data", self, {**ranges, "min_frequency": ">= 0"})


@dataclass
class ModelConfig:
    """Network shape (section `model`). Vocabulary and class count come from the data."""

    emb_dim: int = 128  # embedding size (the vectors' dimension with model.vectors)
    hidden_dim: int = 128  # per direction
    num_layers: int = 2  # stacked LSTM layers
    bidirectional: bool = True  # a backward LSTM too, its output joined to the forward one
    dropout: float = 0.3  # between LSTM layers and before the classifier
    embedding_dropout: float = 0.1  # dropout on the embeddings
    pooling: str = "max+last"  # "last", "max", "mean", or several joined with "+"
    rnn: str = "cudnn"  # "cudnn" (fused kernels, exact dense) | "cell" (hand-written)
    # on: never below off on validation on any suite dataset (docs/BENCHMARKS.md, "The n-gram
    # bag as the default"); 0 = the LSTM alone
    ngrams: int = 2  # > 0: also a bag of hashed 1..n-grams of the whole text (ngrams.py)
    ngram_buckets: int = 100_000  # hash buckets of the n-gram bag (rows of its embedding)
    ngram_dim: int = 64  # size of the n-gram bag's vectors
    ngram_dropout: float = 0.0  # share of training texts whose bag is hidden (LSTM alone)
    # sqrt: best on validation over the suite (BENCHMARKS.md, "The bag over the square root")
    ngram_pooling: str = "sqrt"  # "mean" | "sqrt": sum / sqrt(count), long texts weigh more
    vectors: str = ""  # word2vec/GloVe/fastText text file to initialise embeddings (vectors.py)
    freeze_vectors: bool = False  # keep the rows found in `vectors` fixed during training
    init_from: str = ""  # a `textlstm pretrain` folder: start from its tokenizer and encoder

    def check(self) -> None:
        parts = self.pooling.split("+")
        if not parts or any(p not in POOLINGS for p in parts) or len(set(parts)) != len(parts):
            raise TextlstmError(
                f"model.pooling={self.pooling!r}: use {', '.join(POOLINGS)}, or several "
                "joined with '+' (e.g. 'max+last')"
            )
        if self.rnn not in ("cudnn", "cell"):
            raise TextlstmError(f"model.rnn must be 'cudnn' or 'cell', not {self.rnn!r}")
        if self.ngram_pooling not in ("mean", "sqrt"):
            raise TextlstmError(
                f"model.ngram_pooling must be 'mean' or 'sqrt', not {self.ngram_pooling!r}"
            )
        if self.freeze_vectors and not self.vectors:
            raise TextlstmError("model.freeze_vectors needs model.vectors=PATH")
        if self.vectors and self.init_from:
            raise TextlstmError(
                "model.vectors and model.init_from both set the embeddings: choose one"
            )
        check_ranges(
            "model",
            self,
            {
                "emb_dim": ">= 1",
                "ngrams": ">= 0",
                "ngram_buckets": ">= 1",
                "ngram_dim": ">= 1",
                "ngram_dropout": "[0, 1)",
                "hidden_dim": ">= 1",
                "num_layers": ">= 1",
                "dropout": "[0, 1)",
                "embedding_dropout": "[0, 1)",
            },
        )


def parse_class_weights(value) -> str | list[float]:
    """ "none" | "balanced" | [w0, w1, ...] from a TOML value or a --set string ("[1,3]")."""
    if isinstance(value, list | tuple):
        weights = list(value)
    else:
        text = str(value).strip()
        if text.lower() in ("none", "balanced"):
            return text.lower()
        try:
            weights = json.loads(text)
        except json.JSONDecodeError:
            weights = None
        if not isinstance(weights, list):
            raise TextlstmError(
                f"train.class_weights={text!r}: use none, balanced, or a list of one weight "
                "per class such as [1, 3]"
            )
    if not weights or not all(
        isinstance(w, int | float) and not isinstance(w, bool) and w >= 0 for w in weights
    ):
        raise TextlstmError(
            f"train.class_weights={value!r}: the list must hold non-negative numbers, one per class"
        )
    if not any(weights):
        raise TextlstmError("train.class_weights: at least one weight must be above 0")
    return [float(w) for w in weights]


@dataclass
class TrainConfig:
    """Optimisation and run control (section `train`)."""

    epochs: int = 20  # at most; early stopping (patience) ends most runs sooner (BENCHMARKS.md)
    batch_size: int = 64  # texts per batch (an upper bound when max_tokens is set)
    max_tokens: int = 0  # > 0: batches of at most this many padded tokens (GPU)
    lr: float = 2e-3  # AdamW learning rate, reached after warm-up
    ngram_lr_scale: float = 10.0  # the n-gram bag's learning rate, as a multiple of train.lr
    # 0.5: the bag learns from every text, the LSTM too (BENCHMARKS.md, "The LSTM-alone loss")
    lstm_alone_loss: float = 0.5  # share of the loss scored with the n-gram bag hidden
    weight_decay: float = 0.01  # AdamW (decoupled), on weight matrices only
    warmup_ratio: float = 0.05  # share of all steps spent ramping the LR up from 0
    schedule: str = "cosine"  # after warm-up: "cosine" | "linear" | "constant"
    clip_norm: float = 1.0  # global gradient-norm clip; 0 disables
    label_smoothing: float = 0.0  # cross-entropy label smoothing (single-label runs)
    # 2: best on validation over the suite (docs/BENCHMARKS.md, "The suite"); ~2x per step
    adversarial: float = 2.0  # > 0: also train on embeddings moved this far against the model
    ema: float = 0.0  # > 0: validate and save a moving average of the weights (averaging.py)
    layer_lr_decay: float = 1.0  # > 1: each layer below the classifier learns this much slower
    unfreeze: float = 0.0  # > 0: classifier first, one more layer from the top every N epochs
    class_weights: str = "none"  # "none" | "balanced" (n / (k * count)) | "[w0, w1, ...]"
    sampler: str = "bucket"  # "bucket" | "balanced" (equal share of each class per epoch)
    metric: str = "macro_f1"  # picks the best epoch: "macro_f1" | "accuracy" | "loss"
    patience: int = 3  # epochs without improvement before stopping early; 0 = never
    refit: bool = True  # then as many epochs on train + validation; BENCHMARKS.md, "Refit"
    seed: int = 0  # seeds Python, numpy and torch (--seed)
    device: str = "auto"  # "auto" (CUDA when present) | "cpu" | "cuda" | "cuda:N"
    precision: str = "fp32"  # "fp32" | "bf16" (autocast)
    pad_multiple: int = 1  # round batch width up to this (8/16 helps GPU kernels)
    workers: int = 0  # DataLoader processes building batches ahead of the GPU
    log_every: int = 20  # steps between progress updates (each is one host sync)
    eval_batch_size: int = 256  # texts per batch in validation and evaluation
    test: bool = True  # after training, report on the test split when there is one
    max_nonfinite: int = 10  # stop after this many consecutive non-finite steps; 0 = never
    deterministic: bool = False  # deterministic kernels on GPU (see guards.set_deterministic)
    tensorboard: bool = False  # also write TensorBoard events to <run>/tb (see tblog.py)

    def check(self) -> None:
        if self.metric not in ("macro_f1", "accuracy", "loss"):
            raise TextlstmError("train.metric must be macro_f1, accuracy or loss")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise TextlstmError("train.schedule must be cosine, linear or constant")
        parse_class_weights(self.class_weights)
        if self.sampler not in SAMPLERS:
            raise TextlstmError(f"train.sampler must be one of {', '.join(SAMPLERS)}")
        if self.precision not in ("fp32", "bf16"):
            raise TextlstmError("train.precision must be fp32 or bf16")
        check_ranges("train", self, TRAIN_RANGES)


# Allowed values of train's numbers: "[a, b)" intervals, or ">= a" / "> a".
TRAIN_RANGES = {
    "lr": "> 0",
    "ngram_lr_scale": "> 0",
    "lstm_alone_loss": "[0, 1)",
    "weight_decay": ">= 0",
    "warmup_ratio": "[0, 1)",
    "clip_norm": ">= 0",
    "label_smoothing": "[0, 1)",
    "adversarial": ">= 0",
    "ema": "[0, 1)",
    "layer_lr_decay": ">= 1",
    "unfreeze": ">= 0",
    "epochs": ">= 1",
    "batch_size": ">= 1",
    "max_tokens": ">= 0",
    "patience": ">= 0",
    "seed": ">= 0",
    "pad_multiple": ">= 1",
    "workers": ">= 0",
    "log_every": ">= 1",
    "eval_batch_size": ">= 1",
    "max_nonfinite": ">= 0",
}


def check_ranges(section: str, values, ranges: dict[str, str]) -> None:
    """Each named field is a finite number inside its range, or one line names it."""
    for name, allowed in ranges.items():
        value = getattr(values, name)
        if allowed.startswith(("[", "(")):
            low, high = (float(x) for x in allowed[1:-1].split(","))
            ok = (low <= value if allowed[0] == "[" else low < value) and (
                value <= high if allowed[-1] == "]" else value < high
            )
        else:
            op, low = allowed.split()
            ok = value >= float(low) if op == ">=" else value > float(low)
        if not (math.isfinite(value) and ok):
            raise TextlstmError(f"{section}.{name}={value!r}: must be {allowed}")


@dataclass
class PretrainConfig:
    """Language-model pretraining, `textlstm pretrain` only (section `pretrain`): the encoder's
    shape comes from `model`, the tokenizer from `data`, the optimiser and seed from `train`."""

    epochs: int = 5  # passes over the texts at most; the best held-out epoch is kept
    heldout: float = 0.02  # share of the texts held out to measure perplexity
    max_texts: int = 0  # > 0: pretrain on a random sample of at most this many texts
    activation_reg: float = 2.0  # x mean square of the predicting states: keeps cells unsaturated

    def check(self) -> None:
        ranges = {"epochs": ">= 1", "heldout": "[0, 0.5]", "max_texts": ">= 0"}
        check_ranges("pretrain", self, {**ranges, "activation_reg": ">= 0"})


# The settings an encoder is made with: a run that starts from a pretrained one must use
# the same (training.adopt_encoder), or its weights and token ids would mean other things.
ENCODER_KEYS = {
    "data": ("tokenizer", "vocab_size", "min_frequency", "lowercase", "digits"),
    "model": ("emb_dim", "hidden_dim", "num_layers", "bidirectional"),
}


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def check(self) -> None:
        """Every section's values, before any work is done."""
        self.data.check()
        self.model.check()
        self.train.check()
        self.pretrain.check()

    def describe(self, sections=("data", "model", "train")) -> str:
        """The effective config as TOML-like lines, printed at the start of a run."""
        lines = []
        for section, values in self.as_dict().items():
            if section not in sections:
                continue
            lines.append(f"[{section}]")
            lines += [f"  {key} = {json.dumps(value)}" for key, value in values.items()]
        return "\n".join(lines)


def coerce(value, kind, key: str):
    """`value` (from TOML or a --set string) as the field's type, or a clear error."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        kind = args[0]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise TextlstmError(f"{key}: {value!r} is not a valid {getattr(kind, '__name__', kind)}")


def apply(cfg: RunConfig, section: str, key: str, value) -> None:
    sections = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    if section not in sections:
        raise TextlstmError(f"unknown config section {section!r}; sections: {', '.join(sections)}")
    target = sections[section]
    hints = typing.get_type_hints(type(target))
    if key not in hints:
        raise TextlstmError(
            f"unknown config key {section}.{key}; valid keys: "
            + ", ".join(f"{section}.{k}" for k in hints)
        )
    setattr(target, key, coerce(value, hints[key], f"{section}.{key}"))


def build(config_file: str | None = None, overrides: tuple[str, ...] = ()) -> RunConfig:
    cfg = RunConfig()
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise TextlstmError(f"config file {path} does not exist")
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise TextlstmError(f"{path} is not valid TOML: {exc}") from exc
        for section, values in table.items():
            if not isinstance(values, dict):
                raise TextlstmError(f"{path}: {section!r} must be a [section] table")
            for key, value in values.items():
                apply(cfg, section, key, value)
    for item in overrides:
        apply(cfg, *split_override(item))
    return cfg


def split_override(item: str) -> tuple[str, str, str]:
    """ "train.epochs=3" -> ("train", "epochs", "3")."""
    dotted, sep, value = item.partition("=")
    section, dot, key = dotted.strip().partition(".")
    if not sep or not dot:
        raise TextlstmError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=3")
    return section, key, value.strip()


# Defaults that came on after their key shipped: a saved config without the key ran without it
ABSENT_MEANS_OFF = {
    "model": {"ngrams": 0, "ngram_dropout": 0.0, "ngram_pooling": "mean"},
    "train": {"adversarial": 0.0, "ngram_lr_scale": 1.0, "lstm_alone_loss": 0.0, "refit": False},
}


def from_dict(values: dict) -> RunConfig:
    """The RunConfig saved in a checkpoint's config.json."""
    cfg = RunConfig()
    for section in ("data", "model", "train", "pretrain"):
        saved = {**ABSENT_MEANS_OFF.get(section, {}), **values.get(section, {})}
        for key, value in saved.items():
            if (section, key) == ("data", "multi_label"):
                continue  # older bundles kept the task here; it is config.json's "task" now
            apply(cfg, section, key, value)
    return cfg


def resumed(saved: dict, overrides=()) -> RunConfig:
    """A run's saved config with `--resume`'s `--set` overrides: only `train.*` may change
    (the weights and token ids were made with the model and data settings)."""
    cfg = from_dict(saved)
    for item in overrides:  # e.g. train.epochs=20 to extend a run
        section, key, value = split_override(item)
        if section != "train":
            raise TextlstmError(
                f"--resume keeps the run's {section} settings; "
                f"--set {section}.{key} needs a new run"
            )
        apply(cfg, section, key, value)
    return cfg
