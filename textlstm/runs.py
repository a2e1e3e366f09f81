"""A training run's folder: where it goes, one writer at a time, an older run's outputs
cleared, `checkpoints/latest`, and metrics rows kept straight on resume.

The files inside are the bundle's (checkpoint.py names them). A folder the user named
with `--out` is used as given and nothing beside it is touched; `latest` lives only in
the default root, `checkpoints/`.
"""

import contextlib
import datetime
import json
import os
from pathlib import Path

from textlstm import TextlstmError, distributed, files
from textlstm.checkpoint import DEFAULT_ROOT, LOCK_FILE, RUN_OUTPUTS
from textlstm.onnx_engine import INT8_GRAPH

WEIGHTS = ("model.safetensors", INT8_GRAPH)  # a folder with either holds a model


def open_run_dir(run_dir: Path | None, source: str, resume: bool, overwrite: bool):
    """(the folder a training run writes to, its lock): checked writable, locked against a
    second writer, cleared of an older run's outputs.

    A finished run is never clobbered silently: `overwrite` (or `resume`) must say so. A
    folder holding files that are not a textlstm run is refused: nothing a run did not
    write is ever deleted. Under torchrun every rank checks it can write; rank 0 alone
    locks and deletes (after a barrier, so no rank is still looking).
    """
    if not run_dir:
        name = Path(source.rstrip("/")).name.replace(":", "-") or "run"
        run_dir = DEFAULT_ROOT / f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = distributed.share(Path(run_dir))  # every rank uses rank 0's folder
    problem = None  # decided by rank 0 before any rank creates a file there, then shared
    if not resume and distributed.is_main():
        if foreign_files(run_dir) and not holds_run(run_dir):
            problem = (
                f"{run_dir} holds files that are not a textlstm run; choose a new or empty --out"
            )
        elif any((run_dir / f).exists() for f in WEIGHTS) and not overwrite:
            problem = (
                f"{run_dir} already holds a run; pass --overwrite to replace it, "
                f"--resume {run_dir} to continue it, or choose another --out"
            )
    problem = distributed.share(problem)
    if problem:
        raise TextlstmError(problem)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{distributed.rank()}"  # one per rank: no race
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise TextlstmError(f"cannot write to {run_dir}: {exc.strerror or exc}") from exc
    lock, problem = None, None
    if distributed.is_main():  # rank 0 locks; every rank learns whether that worked
        try:
            lock = lock_run(run_dir)
        except TextlstmError as exc:
            problem = str(exc)
    problem = distributed.share(problem)  # also the barrier before rank 0 deletes anything
    if problem:
        raise TextlstmError(problem)
    if not resume and distributed.is_main():  # nothing of an older run may survive
        for old in RUN_OUTPUTS:
            (run_dir / old).unlink(missing_ok=True)
    return run_dir, lock


def foreign_files(run_dir: Path) -> list[Path]:
    """Files in `run_dir` other than the lock and write probes a run starts with."""
    if not run_dir.is_dir():
        return []
    ours = lambda p: p.name == LOCK_FILE or p.name.startswith(".write-test-")  # noqa: E731
    return [p for p in run_dir.iterdir() if not ours(p)]


def holds_run(run_dir: Path) -> bool:
    """`run_dir` has a textlstm config.json (a finished, crashed or interrupted run)."""
    try:
        return "format_version" in json.loads((run_dir / "config.json").read_text("utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def lock_run(run_dir: Path):
    """An exclusive lock on `run_dir/.lock` (holding this process's id), or one line naming
    the process that holds it. The lock ends with `unlock` or with the process."""
    import fcntl

    handle = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise TextlstmError(
            f"{run_dir} is in use by another textlstm process (pid {holder}); wait for it "
            "to end, or choose another --out"
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def unlock(lock) -> None:
    if lock is not None:
        lock.close()  # closing the file releases the flock


@contextlib.contextmanager
def locked(run_dir: Path):
    """Hold `run_dir`'s lock for a block (the CLI's report after training)."""
    lock = lock_run(Path(run_dir))
    try:
        yield
    finally:
        unlock(lock)


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


def where_is(run_dir: Path) -> str:
    """The last line of a training run: where the checkpoint is and how to use it."""
    latest = DEFAULT_ROOT / "latest"
    if latest.resolve() == Path(run_dir).resolve():
        return f"checkpoint: {run_dir}  ({latest} points here)"
    return f"checkpoint: {run_dir}  (use it with --checkpoint {run_dir})"


def keep_metrics_rows(run_dir: Path, epochs: int) -> None:
    """Drop metrics.jsonl rows of epochs after `epochs` (they will be trained again)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    rows = files.read_jsonl(path)  # a line cut short by a crash is dropped too
    kept = [row for row in rows if isinstance(row.get("epoch"), int) and row["epoch"] <= epochs]
    if len(kept) != len(path.read_text(encoding="utf-8").splitlines()):
        files.atomic_write(path, "".join(json.dumps(row) + "\n" for row in kept).encode("utf-8"))
