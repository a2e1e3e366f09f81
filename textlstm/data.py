"""Loading labelled text: a local folder or file, or a Hugging Face hub name.

Whatever the source, the result is a `DatasetDict` with splits `train`, `validation` and
(when the source has one) `test`, each with exactly two columns: `text` (string) and
`label` (int64, ids into `label_names`). Everything later in the pipeline relies on that
shape, so every check a user can fail happens here, with one clear message.

`datasets` is imported inside the functions: importing this module must not cost the
two seconds that `import datasets` takes (the CLI imports it only for commands that load
data).
"""

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from textlstm import TextlstmError, datachecks
from textlstm.multilabel import is_list_feature

SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing"),
}
# File ending -> `datasets` builder that reads it.
FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json"}
PREPROCESSED_MARKER = "preprocess.json"  # written by `textlstm preprocess`
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")


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
    multi_label: bool = False  # set from the data: a label column of lists (multilabel.py)


@dataclass
class RawData:
    """Loaded, checked splits plus what the run should tell the user about them."""

    splits: "object"  # datasets.DatasetDict with columns text, label
    label_names: list[str]
    notes: list[str] = field(default_factory=list)


# -- locating the files ---------------------------------------------------------------


def find_split_files(folder: Path) -> dict[str, Path]:
    """Map split name -> file for `train.parquet`, `validation.csv`, `test.jsonl`, ..."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in FORMATS or not path.is_file():
            continue
        stem = path.stem.lower()
        for split, aliases in SPLIT_NAMES.items():
            if stem in aliases:
                if split in found:
                    raise TextlstmError(
                        f"{folder} has two files for the {split} split: "
                        f"{found[split].name} and {path.name}; keep one"
                    )
                found[split] = path
    return found


def read_file(path: Path):
    """One parquet/csv/tsv/jsonl/json file as a `datasets.Dataset` (cached Arrow)."""
    import datasets

    builder = FORMATS.get(path.suffix.lower())
    if builder is None:
        raise TextlstmError(
            f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}"
        )
    if path.stat().st_size == 0:
        raise TextlstmError(f"{path} is empty")
    datachecks.check_utf8(path)
    kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    try:
        loaded = datasets.load_dataset(builder, data_files={"data": str(path)}, **kwargs)
    except Exception as exc:  # pyarrow/pandas raise many types; the user needs the file name
        if "corresponds to no data" in str(exc):
            raise TextlstmError(f"{path} has no rows (empty, or header only)") from exc
        raise TextlstmError(f"could not read {path}: {type(exc).__name__}: {exc}") from exc
    return loaded["data"]


def read_label_names_file(folder: Path) -> list[str] | None:
    path = folder / "labels.json"
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TextlstmError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TextlstmError(f"{path} must hold a JSON list of label names in id order")
    return names


def looks_like_path(source: str) -> bool:
    return (
        source.startswith((".", "/", "~"))
        or os.sep in source.strip("/").replace("/", "", 1)  # more than one slash
        or Path(source).suffix.lower() in FORMATS
        or not HUB_NAME.match(source)
    )


# -- turning columns into text + label ids --------------------------------------------


def check_columns(split_name: str, ds, cfg: DataConfig) -> None:
    for column in (cfg.text_column, cfg.label_column):
        if column not in ds.column_names:
            which = "--text-column" if column == cfg.text_column else "--label-column"
            raise TextlstmError(
                f"{split_name} split has no column {column!r} (columns: "
                f"{', '.join(ds.column_names)}); choose one with {which}"
            )
    dtype = getattr(ds.features[cfg.text_column], "dtype", None)
    if dtype not in ("string", "large_string"):
        raise TextlstmError(datachecks.non_text_message(split_name, ds, cfg.text_column))


def label_namer(feature, names_file: list[str] | None, column: str):
    """A function from a raw label value (id, string, ClassLabel id) to its label name."""
    if is_list_feature(feature):
        raise TextlstmError(
            f"column {column!r} holds lists (multi-label) here but single labels in train "
            "(or in the trained model): use one kind of label column throughout"
        )
    names = getattr(feature, "names", None) or names_file  # ClassLabel, else labels.json

    def name(value):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if names is None:
                return str(value)
            return names[value] if 0 <= value < len(names) else None
        raise TextlstmError(
            f"column {column!r} must hold integers or strings, found {type(value).__name__} "
            f"({value!r})"
        )

    return name, names


def label_vocabulary(train, cfg: DataConfig, names_file: list[str] | None):
    """Label names in id order, and the raw-value -> id function for every split.

    Names come from a ClassLabel feature, else a labels.json beside the data, else the
    distinct values of train (integers in numeric order, strings sorted).
    """
    name, known = label_namer(train.features[cfg.label_column], names_file, cfg.label_column)
    values = [v for v in train.unique(cfg.label_column) if v is not None]
    seen = {v: name(v) for v in values}
    note = None
    if known is not None and None not in seen.values():
        label_names = list(known)
    else:
        if known is not None:
            bad = sorted(str(v) for v, n in seen.items() if n is None)[:5]
            raise TextlstmError(
                f"labels {', '.join(bad)} are not ids into the {len(known)} label names"
            )
        ordered = sorted(values, key=lambda v: (isinstance(v, str), v))
        label_names = [seen[v] for v in ordered]
        ints = [v for v in ordered if not isinstance(v, str)]
        if ints and ints != list(range(len(ints))):
            note = f"integer labels {ints[:8]} are not 0..{len(ints) - 1}: ids follow their order"
    index = {n: i for i, n in enumerate(label_names)}
    return label_names, (lambda v: index.get(name(v))), note


def rows_with_text_and_label(name: str, ds, cfg: DataConfig, notes):
    """Keep the text and label columns; drop (and count) rows where either is null."""
    before = len(ds)
    ds = ds.select_columns([cfg.text_column, cfg.label_column])
    ds = ds.filter(
        lambda batch: [
            t is not None and v is not None
            for t, v in zip(batch[cfg.text_column], batch[cfg.label_column], strict=True)
        ],
        batched=True,
        desc=f"checking {name}",
    )
    if len(ds) < before:
        notes.append(f"{name}: dropped {before - len(ds)} rows with no text or no label (null)")
    return ds


def with_label_ids(name: str, ds, cfg: DataConfig, labels, unknown, label_names):
    """`ds` with columns text and label (= `labels`); labels the model lacks are an error."""
    if unknown:
        shown = ", ".join(sorted(unknown)[:10]) + (" ..." if len(unknown) > 10 else "")
        raise TextlstmError(
            f"{name} split has labels the classifier does not know: {shown} "
            f"(known: {', '.join(label_names)})"
        )
    ds = ds.remove_columns(cfg.label_column)
    if cfg.text_column != "text":
        ds = ds.rename_column(cfg.text_column, "text")
    return ds.add_column("label", labels)


def normalise_split(name: str, ds, cfg: DataConfig, to_id, label_names, notes):
    """Keep `text` and `label` only, drop rows without text or label, map labels to ids."""
    ds = rows_with_text_and_label(name, ds, cfg, notes)
    raw = ds[cfg.label_column]
    ids = [to_id(v) for v in raw]
    unknown = {str(v) for v, i in zip(raw, ids, strict=True) if i is None}
    labels = None if unknown else np.asarray(ids, dtype=np.int64)  # unknown: an error below
    return with_label_ids(name, ds, cfg, labels, unknown, label_names)


def carve_validation(train, fraction: float, seed: int):
    """Stratified split of `train`: each class gives `fraction` of its rows (at least 1)."""
    labels = np.asarray(train["label"])
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < 2:
            continue  # a class with one example stays in train
        take = max(1, int(round(fraction * len(rows))))
        held_out.extend(rng.permutation(rows)[:take].tolist())
    held = np.zeros(len(labels), dtype=bool)
    held[held_out] = True
    return train.select(np.flatnonzero(~held)), train.select(np.sort(np.flatnonzero(held)))


def read_source(source: str) -> tuple[dict, list[str] | None]:
    """The splits found at `source` (folder, file or hub name) and a labels.json, if any."""
    path = Path(os.path.expanduser(source))
    if (path / PREPROCESSED_MARKER).is_file():  # keeps text and label ids per split
        import datasets

        return dict(datasets.load_from_disk(str(path / "splits"))), read_label_names_file(path)
    if path.is_dir():
        files = find_split_files(path)
        if not files:
            listed = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "nothing"
            raise TextlstmError(
                f"{path} has no split files (expected train/validation/test .parquet, .csv or "
                f".jsonl; found {listed})"
            )
        return {name: read_file(f) for name, f in files.items()}, read_label_names_file(path)
    if path.is_file():
        return {"train": read_file(path)}, read_label_names_file(path.parent)
    if looks_like_path(source):
        raise TextlstmError(f"{source} does not exist")
    from textlstm.hub import load_from_hub

    return dict(load_from_hub(source)), None


def load_raw(cfg: DataConfig, seed: int = 0) -> RawData:
    """Read `cfg.source`, check it, and return train/validation[/test] as text + label ids."""
    import datasets

    datasets.disable_progress_bars()
    splits, names_file = read_source(cfg.source)
    return check_and_map(splits, cfg, seed, names_file)


def load_for_eval(cfg: DataConfig, split: str, label_names: list[str]):
    """One split of `cfg.source` with labels mapped onto a trained model's `label_names`.

    A single file counts as any split. Labels the model does not know are an error.
    """
    import datasets

    datasets.disable_progress_bars()
    splits, names_file = read_source(cfg.source)
    splits = {canonical_split(n): d for n, d in splits.items()}
    if len(splits) == 1 and Path(cfg.source).is_file():
        splits = {split: next(iter(splits.values()))}
    if split not in splits:
        raise TextlstmError(f"{cfg.source} has no {split} split (splits: {', '.join(splits)})")
    ds = splits[split]
    check_columns(split, ds, cfg)
    if len(ds) == 0:
        raise TextlstmError(f"the {split} split is empty (header only?)")
    if cfg.multi_label:
        from textlstm.multilabel import multi_hot_split

        feature = ds.features[cfg.label_column]
        if not is_list_feature(feature):
            raise TextlstmError(f"the model is multi-label but column {cfg.label_column!r} "
                                "holds single labels, not lists")  # fmt: skip
        if (Path(cfg.source).expanduser() / PREPROCESSED_MARKER).is_file():
            return ds.select_columns(["text", "label"])  # already multi-hot rows
        name, _ = label_namer(feature.feature, names_file, cfg.label_column)
        return multi_hot_split(split, ds, cfg, name, label_names, [])
    name, _ = label_namer(ds.features[cfg.label_column], names_file, cfg.label_column)
    index = {n: i for i, n in enumerate(label_names)}
    return normalise_split(split, ds, cfg, lambda v: index.get(name(v)), label_names, [])


def canonical_split(name: str) -> str:
    return next((s for s, aliases in SPLIT_NAMES.items() if name in aliases), name)


def check_and_map(splits: dict, cfg: DataConfig, seed: int, names_file) -> RawData:
    """Rename splits to train/validation/test, check them, map labels, carve validation."""
    import datasets

    renamed = {}
    for name, ds in splits.items():  # "dev" -> validation; drop e.g. imdb's "unsupervised"
        if canonical_split(name) in SPLIT_NAMES and canonical_split(name) not in renamed:
            renamed[canonical_split(name)] = ds
    splits = renamed
    notes: list[str] = []
    for name, ds in splits.items():
        check_columns(name, ds, cfg)
        if len(ds) == 0:
            raise TextlstmError(f"the {name} split is empty (header only?)")
    if "train" not in splits:
        raise TextlstmError(f"{cfg.source} has no train split (splits: {', '.join(splits)})")
    if is_list_feature(splits["train"].features[cfg.label_column]):
        from textlstm.multilabel import map_splits

        return map_splits(splits, cfg, seed, names_file, notes)
    cfg.multi_label = False  # detected from the data, never taken from a setting
    label_names, to_id, note = label_vocabulary(splits["train"], cfg, names_file)
    if note:
        notes.append(note)
    mapped = {
        name: normalise_split(name, ds, cfg, to_id, label_names, notes)
        for name, ds in splits.items()
    }
    counts = np.bincount(np.asarray(mapped["train"]["label"]), minlength=len(label_names))
    if np.count_nonzero(counts) < 2:
        only = label_names[int(np.argmax(counts))]
        raise TextlstmError(
            f"train has a single class ({only!r}): a classifier needs at least two labels"
        )
    if "validation" not in mapped:
        mapped["train"], mapped["validation"] = carve_validation(
            mapped["train"], cfg.validation_fraction, seed
        )
        notes.append(
            f"no validation split: carved a stratified {cfg.validation_fraction:.0%} of train "
            f"({len(mapped['validation'])} texts, seed {seed})"
        )
    counts_note = datachecks.imbalance_warning(mapped["train"]["label"], label_names)
    leak_note = datachecks.leakage_warning(mapped)
    notes += [note for note in (counts_note, leak_note) if note]
    return RawData(datasets.DatasetDict(mapped), label_names, notes)
