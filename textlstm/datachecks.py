"""Checks on loaded data that do not change it: encoding, text types, leakage, balance.

Kept out of data.py so that module stays about locating and mapping data.

Choices, with their trade-offs:
- Text files (csv/tsv/jsonl/json) must be UTF-8. A file with other bytes is refused
  with the file, the byte offset and line, rather than decoded with replacement
  characters: silently changing training text (and so the vocabulary) is worse than
  asking for one `iconv` call. The check reads the file once more (text files only;
  parquet stores UTF-8 by construction).
- Exact duplicates of train texts in validation/test are a *warning* with counts, not an
  error: many public datasets (SMS spam included) contain them, and removing them would
  change the benchmark. The user learns that scores on those texts overstate accuracy.
- Heavy class imbalance (the largest class >= IMBALANCE_RATIO times the smallest) is a
  warning suggesting `train.class_weights=balanced`; training proceeds either way.
"""

import codecs
from pathlib import Path

import numpy as np

from textlstm import TextlstmError

TEXT_FORMATS = (".csv", ".tsv", ".jsonl", ".json")
IMBALANCE_RATIO = 10


def check_utf8(path: Path, chunk_size: int = 1 << 20) -> None:
    """Refuse a text file that is not valid UTF-8, naming the first bad byte's place."""
    path = Path(path)
    if path.suffix.lower() not in TEXT_FORMATS:
        return
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            data = decoder.getstate()[0] + chunk  # bytes of a character split by the chunking
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = exc.start
                line = lines + data[:at].count(b"\n")
                place = offset - (len(data) - len(chunk)) + at
                raise TextlstmError(
                    f"{path} is not UTF-8: byte 0x{data[at]:02x} at offset {place} (line "
                    f"{line}); re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8"
                ) from exc
            offset += len(chunk)
            lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise TextlstmError(f"{path} is not UTF-8: it ends inside a multi-byte character") from exc


def non_text_message(split_name: str, ds, column: str) -> str:
    """Why column `column` is not text: how many rows hold something else, and an example."""
    values = ds[column]
    bad = [(i, v) for i, v in enumerate(values) if v is not None and not isinstance(v, str)]
    if not bad or len(bad) == len(values):
        return (
            f"column {column!r} of the {split_name} split holds {ds.features[column]}, "
            "not text; choose another with --text-column"
        )
    row, value = bad[0]
    return (
        f"column {column!r} of the {split_name} split must hold text, but {len(bad)} of "
        f"{len(values)} rows hold other values (first: row {row + 1}, {value!r}); quote them "
        "as strings or fix the rows"
    )


def leakage_warning(splits: dict) -> str | None:
    """A warning with counts when validation/test texts also occur in train, exactly."""
    train = set(splits["train"]["text"])
    parts = []
    for name in ("validation", "test"):
        if name in splits:
            texts = splits[name]["text"]
            shared = sum(text in train for text in texts)
            if shared:
                parts.append(f"{shared} of {len(texts)} {name} texts ({shared / len(texts):.1%})")
    if not parts:
        return None
    return (
        f"warning: {' and '.join(parts)} also occur in train (exact duplicates): their "
        "scores overstate how well the model generalises"
    )


def imbalance_warning(labels, label_names: list[str]) -> str | None:
    """A warning when the largest train class is IMBALANCE_RATIO or more times the smallest."""
    counts = np.bincount(np.asarray(labels), minlength=len(label_names))
    present = counts[counts > 0]
    if len(present) < 2 or present.max() < IMBALANCE_RATIO * present.min():
        return None
    large = int(np.argmax(counts))
    small = int(np.flatnonzero(counts == present.min())[0])
    return (
        f"warning: classes are heavily imbalanced in train ({label_names[large]!r}: "
        f"{counts[large]}, {label_names[small]!r}: {counts[small]}); consider "
        "--set train.class_weights=balanced and judge by macro-F1 (train.metric=macro_f1)"
    )
