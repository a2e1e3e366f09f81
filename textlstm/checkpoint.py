"""The checkpoint bundle: one directory holding everything `classify` needs.

    model.safetensors   weights (safetensors: loading runs no code)
    config.json         data + model + train config, vocab size, classes, versions
    tokenizer.json      the trained tokenizer
    labels.json         label names in id order
    metrics.json        best validation metrics and the epoch they came from
    train_state.pt      optimizer, schedule, RNG states, epoch, current weights and their
                        moving average when train.ema is on (resume only; read with
                        torch.load(weights_only=True))

Every file is written atomically (temp file in the same directory, fsync, rename): a
crash at any moment leaves the previous version of the file, never half of one.
`checkpoints/latest` (a symlink, or a one-line file where symlinks are unavailable)
names the newest finished run.

torch is imported only inside the functions that need it; the numpy predictor reads
bundles without it.
"""

import datetime
import json
import os
from pathlib import Path

from textlstm import FORMAT_VERSION, TextlstmError, __version__, distributed, files

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
    "metrics.json",
    "metrics.jsonl",
    "train_state.pt",
    THRESHOLDS_FILE,
    *REPORT_FILES,
)
DEFAULT_ROOT = Path("checkpoints")


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


def open_run_dir(run_dir: Path | None, source: str, resume: bool, overwrite: bool) -> Path:
    """The folder a training run writes to, checked writable and cleared of an older run.

    A finished run is never clobbered silently: `overwrite` (or `resume`) must say so.
    Under torchrun every rank checks it can write; rank 0 alone deletes (after a barrier,
    so no rank is still looking).
    """
    if not run_dir:
        name = Path(source.rstrip("/")).name.replace(":", "-") or "run"
        run_dir = DEFAULT_ROOT / f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = distributed.share(Path(run_dir))  # every rank uses rank 0's folder
    if not resume and (run_dir / "model.safetensors").exists() and not overwrite:
        raise TextlstmError(
            f"{run_dir} already holds a run; pass --overwrite to replace it, "
            f"--resume {run_dir} to continue it, or choose another --out"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{distributed.rank()}"  # one per rank: no race
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise TextlstmError(f"cannot write to {run_dir}: {exc.strerror or exc}") from exc
    distributed.barrier()  # every rank has checked before rank 0 deletes anything
    if not resume and distributed.is_main():  # nothing of an older run may survive
        for old in RUN_OUTPUTS:
            (run_dir / old).unlink(missing_ok=True)
    return run_dir


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
        if latest.is_symlink() or latest.is_dir():
            return latest.resolve()
        if latest.is_file():
            return (DEFAULT_ROOT / latest.read_text().strip()).resolve()
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
    missing = [name for name in BUNDLE_FILES if not (run_dir / name).is_file()]
    if missing:
        raise TextlstmError(
            f"{run_dir} is not a complete checkpoint: missing {', '.join(missing)} "
            "(a run writes them when its first epoch ends)"
        )
    config = read_config(run_dir)
    try:
        labels = json.loads((run_dir / "labels.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TextlstmError(f"{run_dir}/labels.json is corrupt ({exc})") from exc
    if not isinstance(labels, list) or len(labels) != config.get("num_classes"):
        raise TextlstmError(f"{run_dir}: labels.json does not match config.json's num_classes")
    return config, labels


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


def load_model(run_dir: Path, device: str = "cpu", rnn: str | None = None):
    """Rebuild the trained `TextLSTM` from a bundle (optionally with the other `rnn`)."""
    from textlstm.model import ModelConfig, TextLSTM

    config, labels = read_meta(run_dir)
    model_cfg = ModelConfig(**config["model"])
    if rnn is not None:
        model_cfg.rnn = rnn
    model = TextLSTM(model_cfg, config["vocab_size"], len(labels))
    try:
        model.load_state_dict(load_tensors(run_dir))
    except RuntimeError as exc:
        raise TextlstmError(f"{run_dir}: weights do not fit config.json ({exc})") from exc
    return model.to(device).eval(), config, labels


def load_tokenizer(run_dir: Path):
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(run_dir / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise TextlstmError(f"{run_dir}/tokenizer.json is unreadable ({exc})") from exc


def point_latest(run_dir: Path) -> Path | None:
    """Make `checkpoints/latest` name `run_dir`, atomically, when the run lies in the default
    root; returns the link, or None for a run elsewhere (a folder the user named is never
    given files the user did not ask for)."""
    run_dir = Path(run_dir).resolve()
    if run_dir.parent != DEFAULT_ROOT.resolve():
        return None
    latest = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
    except OSError:  # no symlinks (some Windows setups): a file naming the run
        tmp.write_text(run_dir.name + "\n")
    if latest.is_dir() and not latest.is_symlink():
        tmp.unlink()
        raise TextlstmError(f"{latest} is a real directory; cannot point it at {run_dir}")
    os.replace(tmp, latest)
    return latest


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


def keep_metrics_rows(run_dir: Path, epochs: int) -> None:
    """Drop metrics.jsonl rows of epochs after `epochs` (they will be trained again)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["epoch"] <= epochs]
    if len(kept) != len(lines):
        files.atomic_write(path, "".join(line + "\n" for line in kept).encode("utf-8"))
