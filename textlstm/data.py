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

from textlstm import TextlstmError, datachecks, task
from textlstm.config import DataConfig
from textlstm.task import SingleLabel

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
class RawData:
    """Loaded, checked splits plus what the run should tell the user about them."""

    splits: "object"  # datasets.DatasetDict with columns text, label
    label_names: list[str]
    task: SingleLabel  # single- or multi-label, detected from train's label column
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


# -- checking and mapping the splits ----------------------------------------------------


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


def load_for_eval(cfg: DataConfig, split: str, label_names: list[str], run_task: SingleLabel):
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
    if (Path(cfg.source).expanduser() / PREPROCESSED_MARKER).is_file():
        if names_file != list(label_names):  # labels there are ids (or rows) into its names
            raise TextlstmError(
                f"{cfg.source} was preprocessed with labels {names_file}; the model has "
                f"{label_names}: evaluate the raw data instead"
            )
        return ds.select_columns(["text", "label"])
    return run_task.map_split(split, ds, cfg, names_file, label_names)


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
    run_task = task.of_feature(splits["train"].features[cfg.label_column])
    mapped, label_names = run_task.map_splits(splits, cfg, names_file, seed, notes)
    leak_note = datachecks.leakage_warning(mapped)
    notes += [leak_note] if leak_note else []
    return RawData(datasets.DatasetDict(mapped), label_names, run_task, notes)
