"""Writing files so that a crash never leaves half of one (a leaf module: no textlstm
imports but the error type).

Every file of a bundle, a report or a prediction output is written to a temp file in
the target's folder, fsynced, and renamed over the target: readers see the old or the
new file, whole. A process killed with `kill -9` can leave its temp file behind (named
`.<target>.<random>.tmp`); `remove_stale_temps` deletes those when a run starts again.
"""

import json
import os
import tempfile
from pathlib import Path

from textlstm import TextlstmError


def temp_beside(path: Path) -> tuple[int, str]:
    """A new temp file in `path`'s folder (so the rename stays on one filesystem), with the
    permissions a plain `open` would give it: mkstemp's 0600 would make a bundle shared
    with a colleague or a serving account unreadable."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TextlstmError(f"cannot write {path}: {exc.strerror or exc}") from exc
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
    return fd, tmp


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, whole."""
    path = Path(path)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # disk full, quota, I/O error: the old file is intact
            raise TextlstmError(
                f"could not write {path} ({exc.strerror or exc}); the previous version of "
                "the file is unchanged"
            ) from exc
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable (where the filesystem allows it)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the file itself is synced


def make_folder(folder) -> Path:
    """`folder` (and its parents) created if missing; one line when that is impossible."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file by that name, no permission, read-only disk
        raise TextlstmError(f"cannot create the folder {folder}: {exc.strerror or exc}") from exc
    return folder


def new_or_empty(folder) -> Path:
    """`folder`, refused with one line when it already holds something."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise TextlstmError(f"{folder} already exists and is not an empty folder; choose another")
    return folder


def write_json(path: Path, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())


def append_jsonl(path: Path, row: dict) -> None:
    """One JSON line at the end of `path` (a log: a crash loses at most the last line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSONL log ([] when absent); a line cut short by a crash is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files a killed process left behind (`kill -9` cannot clean up)."""
    stale = sorted(Path(folder).glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def is_special(path: Path) -> bool:
    """A FIFO, device or socket (e.g. /dev/null, /dev/stdout on a pipe): written in place,
    never renamed over."""
    try:
        return Path(path).exists() and not Path(path).is_file()
    except OSError:
        return False


def same_file(a, b) -> bool:
    try:
        return a not in (None, "-") and b not in (None, "-") and os.path.samefile(a, b)
    except OSError:
        return False


class Output:
    """Where `classify` writes: stdout, a special file as is, or a regular file through a
    temp file in its folder that replaces the target only when everything was written.

    A failure, a bad input line half-way or Ctrl-C leaves the previous file (or none)
    under the target's name, never part of a new one; a full disk is one line.
    """

    def __init__(self, path: str | None, binary: bool = False):
        import sys

        self.path = None if path in (None, "-") else Path(path)
        self.tmp = None
        mode, kwargs = ("wb", {}) if binary else ("w", {"encoding": "utf-8"})
        try:
            if self.path is None:
                self.file = sys.stdout.buffer if binary else sys.stdout
            elif is_special(self.path):
                self.file = open(self.path, mode, **kwargs)  # noqa: SIM115
            else:
                fd, self.tmp = temp_beside(self.path)
                self.file = os.fdopen(fd, mode, **kwargs)
        except OSError as exc:  # missing folder, no permission, read-only disk
            raise TextlstmError(f"cannot write {path}: {exc.strerror or exc}") from exc

    @property
    def target(self) -> str:
        """The file name to hand a writer that opens by name (parquet): the temp file."""
        return self.tmp or str(self.path)

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> None:
        error = exc if isinstance(exc, OSError) else None
        try:
            if kind is None:
                self.file.flush()
                if self.tmp:
                    os.fsync(self.file.fileno())
            if self.path is not None:
                self.file.close()
            if self.tmp and kind is None:
                os.replace(self.tmp, self.path)
                sync_folder(self.path.parent)
        except OSError as err:  # e.g. the disk filled at the last flush
            error, kind = err, kind or type(err)
        finally:
            if self.tmp and kind is not None:
                Path(self.tmp).unlink(missing_ok=True)
        if isinstance(error, BrokenPipeError) and self.path is None:
            # `classify ... | head`: the reader has all it wants; end quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            raise SystemExit(0)
        if error is not None:
            kept = "; the previous version of the file is unchanged" if self.tmp else ""
            where = self.path or "standard output"
            raise TextlstmError(
                f"could not write {where} ({error.strerror or error}){kept}"
            ) from error
