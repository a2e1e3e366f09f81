"""bench/suite_data.py, the converter for the accuracy suite's extra datasets.

Two kinds of test:
- the converter on tiny synthetic raw files in tmp_path (run everywhere, CI included);
- each converted dataset in .suite-data/<name>/, loaded the way training loads a folder.
  The data is not in git (licenses), so these skip with a reason where it was not built.
"""

import json
import re
import sys

import pandas as pd
import pytest
from conftest import REPO

from textlstm.config import DataConfig
from textlstm.data import load_raw

sys.path.insert(0, str(REPO / "bench"))
import suite_data  # noqa: E402

# Distinct texts in both train and test of a published (official) split; the converter's
# own splits never share a text. R8's official split has 4 (see its README, Checks).
OFFICIAL_OVERLAP = {"r8": 4}


def split_files(folder) -> dict[str, pd.DataFrame]:
    return {
        split: pd.read_parquet(folder / f"{split}.parquet")
        for split in suite_data.SPLITS
        if (folder / f"{split}.parquet").exists()
    }


def shared_texts(files: dict) -> dict[tuple[str, str], int]:
    names = list(files)
    return {
        (a, b): suite_data.overlap(files[a], files[b])
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }


# -- the converted datasets (skipped where .suite-data/ has not been built) --------------


@pytest.mark.parametrize("name", list(suite_data.DATASETS))
def test_converted_dataset_loads_like_training_data(name):
    folder = suite_data.SUITE_DATA / name
    if not (folder / "train.parquet").is_file():
        pytest.skip(f"{folder} not built (python bench/suite_data.py {name} --source RAW)")
    spec = suite_data.DATASETS[name]
    names = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    assert names == list(spec.labels)
    files = split_files(folder)
    official = spec.shares is None
    assert set(files) == ({"train", "test"} if official else set(suite_data.SPLITS))
    assert sum(len(f) for f in files.values()) == spec.rows  # the published count
    for frame in files.values():
        assert list(frame.columns) == ["text", "label"]
        assert str(frame.label.dtype) == "int64"
        assert frame.label.between(0, len(names) - 1).all()

    raw = load_raw(DataConfig(source=str(folder)))  # what `textlstm train` does with it
    assert raw.label_names == names
    assert list(raw.splits["test"]["text"]) == files["test"].text.tolist()
    assert list(raw.splits["test"]["label"]) == files["test"].label.tolist()
    loaded_train = len(raw.splits["train"]) + len(raw.splits["validation"])
    assert loaded_train == len(files["train"]) + len(files.get("validation", []))
    if not official:  # the folder's own validation split is used, not a carve
        assert list(raw.splits["validation"]["text"]) == files["validation"].text.tolist()
    assert set(raw.splits["train"]["label"]) == set(range(len(names)))  # every class trains

    for (a, b), shared in shared_texts(files).items():
        allowed = OFFICIAL_OVERLAP.get(name, 0) if (a, b) == ("train", "test") else 0
        assert shared == allowed, f"{name}: {shared} texts in both {a} and {b}"


def test_no_held_out_dataset_enters_the_suite():
    for name, spec in suite_data.DATASETS.items():
        assert not re.search(r"trec|20ng|newsgroup", f"{name} {spec.title}", re.IGNORECASE)


# -- the converter on synthetic raw files (runs in CI) -----------------------------------


def convert(name, raw, out):
    suite_data.main([name, "--source", str(raw), "--out", str(out)])
    return split_files(out)


def test_per_class_files_split_stratified_deterministic_and_grouped(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pos = [f"a fine film number {i} ." for i in range(40)]
    neg = [f"a dull film number {i} ." for i in range(40)]
    pos[5] = "café society — a delight ."  # bytes 0xe9 and 0x97 in Windows-1252 (as Cornell)
    pos[7] = "A  Fine film number 0 ."  # same text as pos[0] but for case and spacing
    (raw / "rt-polarity.pos").write_bytes(("\n".join(pos) + "\n\n").encode("cp1252"))
    (raw / "rt-polarity.neg").write_bytes(("\n".join(f"{t} " for t in neg)).encode("cp1252"))

    files = convert("mr", raw, tmp_path / "out")
    assert set(files) == {"train", "validation", "test"}
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == ["neg", "pos"]
    everything = pd.concat(files.values())
    assert len(everything) == 80 and everything.label.tolist().count(1) == 40
    assert "café society — a delight ." in set(everything.text)  # decoded as cp1252
    assert "a dull film number 3 ." in set(everything.text)  # trailing space stripped
    assert all(shared == 0 for shared in shared_texts(files).values())
    groups = {s: set(f.text.map(suite_data.normal)) for s, f in files.items()}
    assert sum("a fine film number 0 ." in g for g in groups.values()) == 1  # kept together
    # per class, groups of identical texts are dealt 80/10/10: 40 neg -> 32/4/4 and
    # 39 pos groups (pos[0] and pos[7] are one) -> 31/4/4
    for label, expected in ((0, [32, 4, 4]), (1, [31, 4, 4])):
        dealt = [
            files[s][files[s].label == label].text.map(suite_data.normal).nunique()
            for s in suite_data.SPLITS
        ]
        assert dealt == expected

    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "sha256 differs from the checked copy" in readme  # synthetic, not the release
    assert "80 texts read; the published copy has 10,662" in readme
    assert "| validation | " in readme and "2 classes, 80 texts." in readme
    assert "Pang+Lee:05a" in readme and "seed 0" in readme

    again = convert("mr", raw, tmp_path / "again")  # same bytes in, same split out
    for split in suite_data.SPLITS:
        pd.testing.assert_frame_equal(files[split], again[split])

    loaded = load_raw(DataConfig(source=str(tmp_path / "out")))
    assert loaded.label_names == ["neg", "pos"]
    assert len(loaded.splits["validation"]) == len(files["validation"])


def test_official_split_is_kept_and_stale_files_are_removed(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    labels = suite_data.DATASETS["r8"].labels
    train = [f"{label}\t{label} news item {i} reuter" for label in labels for i in range(3)]
    test = [f"{label}\t{label} test item reuter" for label in labels] + [train[0]]
    (raw / "r8-train-all-terms.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (raw / "r8-test-all-terms.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    out.mkdir()
    pd.DataFrame({"text": ["old"], "label": [0]}).to_parquet(out / "validation.parquet")

    files = convert("r8", raw, out)
    assert set(files) == {"train", "test"}  # no validation: textlstm carves one
    assert len(files["train"]) == 24 and len(files["test"]) == 9
    assert shared_texts(files) == {("train", "test"): 1}  # kept as published
    assert files["test"].label.tolist() == [*range(8), 0]
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "Official train/test split kept" in readme
    assert "Texts shared by train and test (after lower-casing and collapsing white space): 1" in (
        readme
    )


def test_one_file_per_document_folders_give_the_official_split(tmp_path):
    raw = tmp_path / "raw"
    for split, docs in (("training", 2), ("test", 1)):
        for label in ("C14", "C01"):  # listed out of order: classes come out sorted
            for i in range(docs):
                doc = raw / split / label / f"{i:07d}"
                doc.parent.mkdir(parents=True, exist_ok=True)
                doc.write_bytes(f"Title {label} {split} {i}.\n Sentence one.\n\n Two.\n".encode())
    files = convert("ohsumed", raw, tmp_path / "out")
    assert set(files) == {"train", "test"}
    assert files["train"].text.tolist() == [
        "Title C01 training 0. Sentence one. Two.",  # a document's lines joined by spaces
        "Title C01 training 1. Sentence one. Two.",
        "Title C14 training 0. Sentence one. Two.",
        "Title C14 training 1. Sentence one. Two.",
    ]
    assert files["train"].label.tolist() == [0, 0, 13, 13]  # C01 -> 0, C14 -> 13
    assert files["test"].label.tolist() == [0, 13]
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "| `training` |" in readme and "6 texts read; the published copy has 7,400" in readme


def test_sentence_tab_score_file_and_a_bad_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = [f"Works great, phone {i}!\t1" for i in range(10)]
    rows += [f"Broke after {i} days.\t0" for i in range(10)]
    (raw / "amazon_cells_labelled.txt").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    files = convert("amazon_cells", raw, tmp_path / "out")
    assert [len(files[s]) for s in suite_data.SPLITS] == [14, 2, 4]  # 70/10/20 per class
    assert "Works great, phone 0!" in set(files["train"].text) | set(files["test"].text) | set(
        files["validation"].text
    )

    (raw / "amazon_cells_labelled.txt").write_text("no score here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        convert("amazon_cells", raw, tmp_path / "bad")


def test_decode_repairs_cp1252_punctuation_left_as_c1_controls():
    assert suite_data.decode("a \x97 b \x85".encode()) == ("a — b …", "utf-8", 2)
    assert suite_data.decode("soufflé".encode("cp1252")) == ("soufflé", "cp1252", 0)
    assert suite_data.decode(b"\x81\xe9")[0] == "\x81é"  # no cp1252 meaning: kept as is


def test_missing_raw_file_names_what_is_expected(tmp_path):
    with pytest.raises(SystemExit, match="plot.tok.gt9.5000"):
        suite_data.convert("subj", tmp_path, tmp_path / "out")
