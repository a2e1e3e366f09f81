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


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, whole."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TextlstmError(f"cannot write {path}: {exc.strerror or exc}") from exc
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
