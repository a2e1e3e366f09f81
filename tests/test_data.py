"""Loading: formats, label mapping, carved validation, and every bad input's message."""

import json
import time

import pandas as pd
import pytest
from conftest import SMS

from textlstm import TextlstmError
from textlstm.config import DataConfig
from textlstm.data import load_for_eval, load_raw
from textlstm.task import SingleLabel

ROWS = [("good film", "pos"), ("bad film", "neg"), ("great, loved it", "pos"), ("awful", "neg")]


def write(folder, split, rows, fmt, columns=("text", "label")):
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(columns))
    path = folder / f"{split}.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_folder_of_any_format_with_string_labels(tmp_path, fmt):
    for split in ("train", "validation", "test"):
        write(tmp_path, split, ROWS * 3, fmt)
    raw = load_raw(DataConfig(source=str(tmp_path)))
    assert raw.label_names == ["neg", "pos"]  # sorted distinct strings
    assert set(raw.splits) == {"train", "validation", "test"}
    train = raw.splits["train"]
    assert train.column_names == ["text", "label"]
    assert list(train["label"][:4]) == [1, 0, 1, 0]


def test_bundled_data_uses_labels_json():
    raw = load_raw(DataConfig(source=str(SMS)))
    assert raw.label_names == ["ham", "spam"]
    assert len(raw.splits["train"]) == 4451 and len(raw.splits["test"]) == 553


def test_labels_json_names_integer_ids(tmp_path):
    write(tmp_path, "train", [("a", 0), ("b", 1), ("c", 0)], "csv")
    (tmp_path / "labels.json").write_text(json.dumps(["cold", "hot"]))
    raw = load_raw(DataConfig(source=str(tmp_path)))
    assert raw.label_names == ["cold", "hot"]


def test_integer_labels_with_gaps_are_mapped_in_order(tmp_path):
    write(tmp_path, "train", [("a", 7), ("b", 3), ("c", 7), ("d", 3)] * 3, "csv")
    raw = load_raw(DataConfig(source=str(tmp_path)))
    assert raw.label_names == ["3", "7"]
    assert any("not 0..1" in n for n in raw.notes)


def test_single_file_gets_a_stratified_validation_split(tmp_path):
    rows = [(f"text {i}", "spam" if i % 5 == 0 else "ham") for i in range(200)]
    path = write(tmp_path, "train", rows, "csv").rename(tmp_path / "all.csv")
    raw = load_raw(DataConfig(source=str(path), validation_fraction=0.1), seed=3)
    val = raw.splits["validation"]
    assert len(val) == 20 and sorted(val["label"]).count(1) == 4  # 10% of each class
    assert len(raw.splits["train"]) + len(val) == 200
    assert any("carved" in n and "seed 3" in n for n in raw.notes)
    again = load_raw(DataConfig(source=str(path), validation_fraction=0.1), seed=3)
    assert list(again.splits["validation"]["text"]) == list(val["text"])


def test_csv_with_embedded_newlines_and_quotes(tmp_path):
    rows = [('He said "hi"\nthen left', "a"), ("plain, with comma", "b")] * 2
    write(tmp_path, "train", rows, "csv")
    raw = load_raw(DataConfig(source=str(tmp_path)))
    texts = list(raw.splits["train"]["text"]) + list(raw.splits["validation"]["text"])
    assert 'He said "hi"\nthen left' in texts


def test_custom_columns_and_null_texts_dropped(tmp_path):
    rows = [("x", "a"), (None, "b"), ("y", "b"), ("z", "a"), ("w", "b")]
    write(tmp_path, "train", rows, "parquet", columns=("sentence", "target"))
    cfg = DataConfig(source=str(tmp_path), text_column="sentence", label_column="target")
    raw = load_raw(cfg)
    assert any("dropped 1 rows" in n for n in raw.notes)
    assert raw.splits["train"].column_names == ["text", "label"]


def expect_error(cfg, *fragments):
    with pytest.raises(TextlstmError) as err:
        load_raw(cfg)
    for fragment in fragments:
        assert fragment in str(err.value)
    return str(err.value)


def test_missing_path():
    expect_error(DataConfig(source="./no/such/folder"), "does not exist")


def test_missing_column_lists_the_columns(tmp_path):
    write(tmp_path, "train", ROWS, "csv", columns=("review", "label"))
    expect_error(
        DataConfig(source=str(tmp_path)), "no column 'text'", "review, label", "--text-column"
    )


def test_non_text_column(tmp_path):
    write(tmp_path, "train", [(1, "a"), (2, "b")], "parquet")
    expect_error(DataConfig(source=str(tmp_path)), "not text")


def test_header_only_file(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n")
    expect_error(DataConfig(source=str(tmp_path)), "empty")


def test_empty_file(tmp_path):
    (tmp_path / "train.csv").write_text("")
    expect_error(DataConfig(source=str(tmp_path)), "is empty")


def test_one_class(tmp_path):
    write(tmp_path, "train", [("a", "x"), ("b", "x")], "csv")
    expect_error(DataConfig(source=str(tmp_path)), "single class")


def test_labels_only_in_test(tmp_path):
    write(tmp_path, "train", ROWS, "csv")
    write(tmp_path, "test", ROWS + [("meh", "neutral")], "csv")
    expect_error(DataConfig(source=str(tmp_path)), "test split", "neutral")


def test_folder_without_split_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    expect_error(DataConfig(source=str(tmp_path)), "no split files", "notes.txt")


def test_hub_name_offline_fails_at_once():
    start = time.time()
    message = expect_error(DataConfig(source="stanfordnlp/imdb"), "offline", "HF_HUB_OFFLINE")
    assert "local" in message.lower() or "folder" in message
    assert time.time() - start < 5


def test_hub_unreachable_fails_fast_without_offline_switch(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    start = time.time()
    expect_error(DataConfig(source="imdb"), "cannot be reached")
    assert time.time() - start < 5


def test_eval_split_maps_onto_trained_labels(tmp_path):
    write(tmp_path, "test", [("x", "spam"), ("y", "ham")], "csv")
    ds = load_for_eval(DataConfig(source=str(tmp_path)), "test", ["ham", "spam"], SingleLabel())
    assert list(ds["label"]) == [1, 0]
    with pytest.raises(TextlstmError, match="does not know: eggs"):
        write(tmp_path, "test", [("x", "eggs")], "csv")
        load_for_eval(DataConfig(source=str(tmp_path)), "test", ["ham", "spam"], SingleLabel())
