"""The checkpoint bundle: one directory holding everything `classify` needs.

    model.safetensors   weights (safetensors: loading runs no code)
    config.json         data + model + train config, vocab size, classes, versions
    tokenizer.json      the trained tokenizer
    labels.json         label names in id order
    metrics.json        best validation metrics and the epoch they came from
    train_state.pt      optimizer, schedule, RNG states, epoch, current weights and their
                        moving average when train.ema is on (resume only; read with
                        torch.load(weights_only=True))

An int8 bundle (`textlstm quantize`) holds `model.int8.onnx` (onnx_engine.py) in place of
`model.safetensors`, and its config.json a `"quantized"` record (source, sha256, sizes).

A `textlstm pretrain` folder has the same layout less labels.json, and its config.json
says `"kind": "pretrained_encoder"`: its weights are an encoder and a language-model
head, no classifier, so the classifier's loaders refuse it and `load_pretrained` (for
`train --init-from`) reads it.

Every file is written atomically (temp file in the same directory, fsync, rename): a
crash at any moment leaves the previous version of the file, never half of one.
`checkpoints/latest` (a symlink, or a one-line file where symlinks are unavailable)
names the newest finished run.

torch is imported only inside the functions that need it; the numpy predictor reads
bundles without it.
"""

import json
from pathlib import Path

from textlstm import FORMAT_VERSION, TextlstmError, __version__, files
from textlstm.onnx_engine import INT8_GRAPH

# The layout of a run folder; other modules import these names instead of spelling them.
BUNDLE_FILES = ("model.safetensors", "config.json", "tokenizer.json", "labels.json")
THRESHOLDS_FILE = "thresholds.json"  # multi-label runs: per-label cuts (task.py)
REPORT_FILES = (
    "report.json",
    "report.md",
    "report.html",
    "confusion_matrix.png",
    "reliability.png",
    "training_curves.png",
)
# What a run writes after its start: a fresh run into an old folder removes these first.
RUN_OUTPUTS = (
    "model.safetensors",
    INT8_GRAPH,
    "metrics.json",
    "metrics.jsonl",
    "train_state.pt",
    THRESHOLDS_FILE,
    *REPORT_FILES,
)
LOCK_FILE = ".lock"  # held by the one process writing a run folder (lock_run)
DEFAULT_ROOT = Path("checkpoints")
PRETRAINED_KIND = "pretrained_encoder"  # config.json "kind" of a `textlstm pretrain` folder
PRETRAINED_FILES = ("model.safetensors", "config.json", "tokenizer.json")
INT8_FILES = (INT8_GRAPH, "config.json", "tokenizer.json", "labels.json")
# The ids every tokenizer.json of a bundle gives its two special tokens.
PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1


def save_weights(path: Path, state_dict) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    files.atomic_write(path, save(tensors, metadata={"format": "pt"}))


def start_bundle(run_dir: Path, config: dict, tokenizer, label_names) -> None:
    """Write what a run knows before training: config, tokenizer, labels."""
    run_dir = Path(run_dir)
    files.remove_stale_temps(run_dir)  # one run writes a folder at a time
    files.atomic_write(run_dir / "tokenizer.json", tokenizer.to_str().encode())
    files.write_json(run_dir / "labels.json", list(label_names))
    files.write_json(run_dir / "config.json", config)


def save_best(run_dir: Path, model, metrics: dict) -> None:
    """The best epoch so far: its weights, then the metrics that describe them."""
    save_weights(Path(run_dir) / "model.safetensors", model.state_dict())
    files.write_json(Path(run_dir) / "metrics.json", metrics)


def bundle_config(data, model, train, vocab_size: int, label_names, task) -> dict:
    from dataclasses import asdict

    return {
        "format_version": FORMAT_VERSION,
        "textlstm_version": __version__,
        "task": task.name,  # "single_label" | "multi_label" (task.py)
        "vocab_size": vocab_size,
        "num_classes": len(label_names),
        "data": asdict(data),
        "model": asdict(model),
        "train": asdict(train),
    }


def resolve(checkpoint: str | Path | None) -> Path:
    """The run directory to use: `checkpoint`, or what `checkpoints/latest` names."""
    if checkpoint is None:
        latest = DEFAULT_ROOT / "latest"
        try:
            if latest.is_file() and not latest.is_symlink():
                return (DEFAULT_ROOT / latest.read_text().strip()).resolve(strict=True)
            if latest.is_symlink() or latest.is_dir():
                return latest.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # a dangling link, or a link loop
            why = exc.strerror if isinstance(exc, OSError) else exc
            raise TextlstmError(
                f"{latest} does not lead to a run ({why}); train again, or pass --checkpoint DIR"
            ) from exc
        raise TextlstmError(
            "no checkpoint: train one with `textlstm train` (or `make train`), "
            "or pass --checkpoint DIR"
        )
    path = Path(checkpoint).expanduser()
    if not path.is_dir():
        raise TextlstmError(f"checkpoint {path} does not exist or is not a directory")
    return path


def read_meta(run_dir: Path) -> tuple[dict, list[str]]:
    """config.json and labels.json of a bundle, checked for completeness and version."""
    config = read_config(run_dir) if (run_dir / "config.json").is_file() else None
    if config is not None and config.get("kind") == PRETRAINED_KIND:
        raise TextlstmError(
            f"{run_dir} is a pretrained encoder (textlstm pretrain), not a classifier: "
            f"fine-tune it first with textlstm train --init-from {run_dir}"
        )
    required = INT8_FILES if config is not None and is_int8(config) else BUNDLE_FILES
    missing = [name for name in required if not (run_dir / name).is_file()]
    if missing:
        raise TextlstmError(
            f"{run_dir} is not a complete checkpoint: missing {', '.join(missing)} "
            "(a run writes them when its first epoch ends)"
        )
    if not all(
        isinstance(config.get(k), int) and config[k] > 0 for k in ("vocab_size", "num_classes")
    ):
        raise TextlstmError(f"{run_dir}/config.json lacks a valid vocab_size or num_classes")
    try:
        labels = json.loads((run_dir / "labels.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TextlstmError(f"{run_dir}/labels.json is corrupt ({exc})") from exc
    if not isinstance(labels, list) or len(labels) != config.get("num_classes"):
        raise TextlstmError(f"{run_dir}: labels.json does not match config.json's num_classes")
    return config, labels


def is_int8(config: dict) -> bool:
    """An int8 bundle written by `textlstm quantize` (its weights are an ONNX graph)."""
    return isinstance(config.get("quantized"), dict)


def refuse_int8(run_dir: Path, config: dict, what: str) -> None:
    if is_int8(config):
        source = config["quantized"].get("source", "?")
        raise TextlstmError(
            f"{run_dir} is an int8 bundle (textlstm quantize): it runs on the onnx engine, "
            f"on the CPU; {what} needs the fp32 bundle it came from ({source})"
        )


def read_config(run_dir: Path) -> dict:
    """config.json of a run, checked for the bundle format this textlstm reads."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise TextlstmError(f"{run_dir} has no config.json: it is not a textlstm run")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TextlstmError(f"{path} is corrupt ({exc})") from exc
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != FORMAT_VERSION:
        made_by = config.get("textlstm_version", "an unknown version") if version else "?"
        raise TextlstmError(
            f"{run_dir} has checkpoint format {version!r} (written by textlstm {made_by}); "
            f"this textlstm {__version__} reads format {FORMAT_VERSION}: retrain, or use the "
            "textlstm version that wrote it"
        )
    from textlstm.config import from_dict

    sections = [config.get(k, {}) for k in ("data", "model", "train")]
    if not all(isinstance(section, dict) for section in sections):
        raise TextlstmError(f"{path} is corrupt: data, model and train must be objects")
    # Bundles written before "task" existed said data.multi_label; every section is then
    # read through the dataclasses, so an edited value is checked and typed like a --set.
    legacy = (
        config.get("data", {}).get("multi_label") if isinstance(config.get("data"), dict) else None
    )
    config["task"] = config.get("task") or ("multi_label" if legacy else "single_label")
    config.update(from_dict(config).as_dict())
    return config


def load_tensors(run_dir: Path, framework: str = "pt") -> dict:
    """The weights as torch tensors ("pt") or numpy arrays ("np"); refuses bad files."""
    from safetensors import SafetensorError, safe_open

    path = run_dir / "model.safetensors"
    try:
        with safe_open(str(path), framework=framework) as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise TextlstmError(f"{path} is unreadable or truncated ({exc})") from exc


def expected_shapes(model, vocab_size: int, num_classes: int) -> dict[str, tuple]:
    """Every weight's shape for a `ModelConfig`, in `nn.LSTM`'s names (model.py)."""
    hidden, directions = model.hidden_dim, 2 if model.bidirectional else 1
    gates = 4 * hidden
    shapes = {"embedding.weight": (vocab_size, model.emb_dim)}
    for layer in range(model.num_layers):
        width = model.emb_dim if layer == 0 else hidden * directions
        for suffix in ("", "_reverse")[:directions]:
            s = f"_l{layer}{suffix}"
            shapes[f"rnn.weight_ih{s}"] = (gates, width)
            shapes[f"rnn.weight_hh{s}"] = (gates, hidden)
            shapes[f"rnn.bias_ih{s}"] = shapes[f"rnn.bias_hh{s}"] = (gates,)
    features = hidden * directions * len(model.pooling.split("+"))
    if model.ngrams:
        shapes["ngram_embedding.weight"] = (model.ngram_buckets + 1, model.ngram_dim)
        features += model.ngram_dim
    shapes["classifier.weight"] = (num_classes, features)
    shapes["classifier.bias"] = (num_classes,)
    return shapes


def check_weights(run_dir: Path, config: dict, tensors: dict) -> None:
    """The weights fit config.json (names and shapes) and are finite; else one line."""
    import numpy as np

    from textlstm.config import from_dict

    model = from_dict(config).model
    model.check()
    want = expected_shapes(model, int(config["vocab_size"]), int(config["num_classes"]))
    got = {name: tuple(t.shape) for name, t in tensors.items()}
    wrong = [n for n in want if got.get(n) != want[n]] + sorted(set(got) - set(want))
    if wrong:
        n = wrong[0]
        raise TextlstmError(
            f"{run_dir}: model.safetensors does not fit config.json ({len(wrong)} tensors "
            f"differ; {n}: {got.get(n, 'missing')} in the weights, {want.get(n, 'none')} "
            "expected): the files come from different runs, or one was edited"
        )
    for name, tensor in tensors.items():
        if not np.isfinite(np.asarray(tensor, dtype=np.float32)).all():
            raise TextlstmError(
                f"{run_dir}: weight {name} holds NaN or infinite values; this model cannot "
                "answer (retrain it, e.g. with a lower train.lr)"
            )


def load_bundle(run_dir: Path, framework: str = "np") -> tuple[dict, list[str], dict, object]:
    """(config, labels, weights, tokenizer) of a bundle, each checked against the others:
    one validation for every engine and verb, refusing any mismatch with one line."""
    config, labels = read_meta(run_dir)
    refuse_int8(run_dir, config, "this engine")
    tensors = load_tensors(run_dir, framework)
    check_weights(run_dir, config, tensors)
    tokenizer = load_tokenizer(run_dir, config["vocab_size"])
    return config, labels, tensors, tokenizer


def load_model(run_dir: Path, device: str = "cpu", rnn: str | None = None):
    """Rebuild the trained `TextLSTM` from a bundle (optionally with the other `rnn`); an
    int8 bundle gives its ONNX Runtime session behind the same call (CPU only)."""
    from textlstm.config import from_dict
    from textlstm.model import TextLSTM

    config, labels = read_meta(run_dir)
    if is_int8(config) and rnn is None and str(device).split(":")[0] == "cpu":
        from textlstm import onnx_engine

        load_tokenizer(run_dir, config["vocab_size"])  # checked here as for any bundle
        return onnx_engine.torch_module(onnx_engine.Session(run_dir, config)), config, labels
    refuse_int8(run_dir, config, f"--rnn {rnn}" if rnn else f"--device {device}")
    config, labels, tensors, _ = load_bundle(run_dir, "pt")
    model_cfg = from_dict(config).model
    if rnn is not None:
        model_cfg.rnn = rnn
    model = TextLSTM(model_cfg, config["vocab_size"], len(labels))
    model.load_state_dict(tensors)  # shapes checked by load_bundle
    return model.to(device).eval(), config, labels


def load_pretrained(folder) -> tuple[dict, dict, object]:
    """(config, encoder weights as torch tensors, tokenizer) of a `textlstm pretrain`
    folder, for `train --init-from`; anything else, or a folder whose files do not fit
    each other, is refused with one line."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise TextlstmError(f"--init-from {folder}: no such folder")
    config = read_config(folder)
    if config.get("kind") != PRETRAINED_KIND:
        raise TextlstmError(
            f"--init-from {folder}: not a textlstm pretrain folder (its config.json has no "
            f'"kind": "{PRETRAINED_KIND}"); make one with textlstm pretrain'
        )
    missing = [name for name in PRETRAINED_FILES if not (folder / name).is_file()]
    if missing:
        raise TextlstmError(
            f"--init-from {folder}: missing {', '.join(missing)} (a pretraining writes its "
            "weights when its first epoch ends)"
        )
    from textlstm.config import from_dict

    vocab = config.get("vocab_size")
    if not isinstance(vocab, int) or vocab < 3:
        raise TextlstmError(f"{folder}/config.json lacks a valid vocab_size")
    tensors = load_tensors(folder)
    want = expected_shapes(from_dict(config).model, vocab, 1)
    want = {n: shape for n, shape in want.items() if n.startswith(("embedding.", "rnn."))}
    wrong = [n for n in want if n not in tensors or tuple(tensors[n].shape) != want[n]]
    if wrong:
        n = wrong[0]
        got = tuple(tensors[n].shape) if n in tensors else "missing"
        raise TextlstmError(
            f"--init-from {folder}: model.safetensors does not fit its config.json ({n}: "
            f"{got} in the weights, {want[n]} expected)"
        )
    encoder = {n: tensors[n] for n in want}
    if not all(bool(t.isfinite().all()) for t in encoder.values()):
        raise TextlstmError(f"--init-from {folder}: the encoder holds NaN or infinite weights")
    return config, encoder, load_tokenizer(folder, vocab)


def load_tokenizer(run_dir: Path, vocab_size: int | None = None):
    """tokenizer.json of a run; with `vocab_size`, checked against the weights' rows and
    for the ids textlstm relies on ([PAD] 0, [UNK] 1)."""
    from tokenizers import Tokenizer

    path = Path(run_dir) / "tokenizer.json"
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise TextlstmError(f"{path} is unreadable ({exc})") from exc
    if vocab_size is not None:
        if tok.get_vocab_size() != vocab_size:
            raise TextlstmError(
                f"{path} has {tok.get_vocab_size()} tokens but the weights have {vocab_size} "
                "rows: the files come from different runs"
            )
        if (tok.token_to_id(PAD), tok.token_to_id(UNK)) != (PAD_ID, UNK_ID):
            raise TextlstmError(
                f"{path} does not map {PAD} to {PAD_ID} and {UNK} to {UNK_ID}: it was not "
                "written by textlstm"
            )
    return tok


def save_train_state(run_dir: Path, state: dict) -> None:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    files.atomic_write(Path(run_dir) / "train_state.pt", buffer.getvalue())


def load_train_state(run_dir: Path) -> dict:
    import pickle

    import torch

    path = Path(run_dir) / "train_state.pt"
    if not path.is_file():
        raise TextlstmError(f"{run_dir} has no train_state.pt: nothing to resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise TextlstmError(
            f"{path} cannot be loaded safely ({type(exc).__name__}): it is corrupt or holds "
            "objects other than tensors and plain values"
        ) from exc
