"""Label columns -> label names and ids (or multi-hot rows), and carving a validation
split. A leaf module: it works on `datasets` splits through their methods and needs no
other textlstm module; `cfg` is the run's data config (`text_column`, `label_column`,
`validation_fraction`).

Names come from a ClassLabel feature, else a labels.json beside the data, else the
distinct values of train (integers in numeric order, strings sorted). A label column of
lists is multi-label: each text's labels become a 0/1 row over the label names.
"""

import numpy as np

from textlstm import TextlstmError


def is_list_feature(feature) -> bool:
    return type(feature).__name__ in ("Sequence", "List", "LargeList") or isinstance(feature, list)


def label_namer(feature, names_file: list[str] | None, column: str):
    """A function from a raw label value (id, string, ClassLabel id) to its label name."""
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


def check_kind(split_name: str, feature, column: str, multi: bool) -> None:
    """A split's label column must be lists exactly when the run is multi-label."""
    if is_list_feature(feature) != multi:
        here, there = ("lists", "single labels") if not multi else ("single labels", "lists")
        raise TextlstmError(
            f"column {column!r} holds {here} in the {split_name} split but {there} in train "
            "(or in the trained model): use one kind of label column throughout"
        )


def names_in_order(values, name, known, column: str) -> tuple[list[str], str | None]:
    """Label names in id order for the raw `values` seen in train, and a note or None."""
    seen = {v: name(v) for v in values}
    if known is not None:
        bad = sorted(str(v) for v, n in seen.items() if n is None)[:5]
        if bad:
            raise TextlstmError(
                f"labels {', '.join(bad)} are not ids into the {len(known)} label names"
            )
        return list(known), None
    ordered = sorted(values, key=lambda v: (isinstance(v, str), v))
    ints = [v for v in ordered if not isinstance(v, str)]
    note = None
    if ints and ints != list(range(len(ints))):
        note = f"integer labels {ints[:8]} are not 0..{len(ints) - 1}: ids follow their order"
    return [seen[v] for v in ordered], note


def rows_with_text_and_label(name: str, ds, cfg, notes):
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


def with_label_ids(name: str, ds, cfg, labels, unknown, label_names):
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


# -- single-label: one id per text -----------------------------------------------------


def single_names(train, cfg, names_file) -> tuple[list[str], str | None]:
    name, known = label_namer(train.features[cfg.label_column], names_file, cfg.label_column)
    values = [v for v in train.unique(cfg.label_column) if v is not None]
    return names_in_order(values, name, known, cfg.label_column)


def id_split(split_name: str, ds, cfg, names_file, label_names, notes):
    """Keep `text` and `label` only, drop rows without either, map labels to ids."""
    name, _ = label_namer(ds.features[cfg.label_column], names_file, cfg.label_column)
    index = {n: i for i, n in enumerate(label_names)}
    ds = rows_with_text_and_label(split_name, ds, cfg, notes)
    raw = ds[cfg.label_column]
    ids = [index.get(name(v)) for v in raw]
    unknown = {str(v) for v, i in zip(raw, ids, strict=True) if i is None}
    labels = None if unknown else np.asarray(ids, dtype=np.int64)  # unknown: an error below
    return with_label_ids(split_name, ds, cfg, labels, unknown, label_names)


def carve_stratified(train, fraction: float, seed: int):
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


# -- multi-label: a 0/1 row per text ---------------------------------------------------


def multi_names(train, cfg, names_file) -> tuple[list[str], str | None]:
    feature = train.features[cfg.label_column].feature
    name, known = label_namer(feature, names_file, cfg.label_column)
    values = {v for row in train[cfg.label_column] if row for v in row if v is not None}
    label_names, note = names_in_order(values, name, known, cfg.label_column)
    if len(label_names) < 2:
        raise TextlstmError(f"train's label lists use {len(label_names)} label(s); need >= 2")
    return label_names, note


def multi_hot_split(split_name: str, ds, cfg, names_file, label_names, notes):
    """Keep text and label; label lists -> 0/1 rows; unknown labels are an error."""
    name, _ = label_namer(ds.features[cfg.label_column].feature, names_file, cfg.label_column)
    index = {n: i for i, n in enumerate(label_names)}
    ds = rows_with_text_and_label(split_name, ds, cfg, notes)
    rows = np.zeros((len(ds), len(label_names)), dtype=np.int64)
    unknown = set()
    for r, values in enumerate(ds[cfg.label_column]):
        for v in values:
            i = index.get(name(v))
            if i is None:
                unknown.add(str(v))
            else:
                rows[r, i] = 1
    return with_label_ids(split_name, ds, cfg, rows.tolist(), unknown, label_names)


def carve_random(train, fraction: float, seed: int):
    """A random share of `train` (stratifying label sets is ill-defined)."""
    order = np.random.default_rng(seed).permutation(len(train))
    take = max(1, int(round(fraction * len(train))))
    return train.select(np.sort(order[take:])), train.select(np.sort(order[:take]))
