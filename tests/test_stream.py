"""Streaming classification of .txt / .jsonl / .parquet files, chunk by chunk."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from textlstm import stream
from textlstm.cli import main
from textlstm.predict import Predictor

TEXTS = [
    "WINNER!! You have won a free prize, call now",
    "see you at lunch",
    "",
    "URGENT your mobile number has won 2000 pounds txt CLAIM to 81010",
    "ok",
    "are we still on for tonight? bring the charger pls",
    "FREE entry in 2 a wkly comp to win FA Cup final tkts",
    "sorry, i'll call later",
    "had your mobile 11 months or more? update to the latest colour camera phone for free",
    "lol",
]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 4 texts, so 10 texts cross two chunk boundaries."""
    monkeypatch.setattr(stream, "CHUNK", 4)


@pytest.fixture(scope="module")
def expected(tiny_run):
    return Predictor(tiny_run.run_dir).probabilities(TEXTS)


def write_inputs(tmp_path):
    txt = tmp_path / "in.txt"
    txt.write_text("\n".join(TEXTS) + "\n")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(TEXTS)))
    parquet = tmp_path / "in.parquet"
    # Row groups of 3 texts: reading by record batch must still see them in order.
    pq.write_table(pa.table({"body": TEXTS, "n": list(range(10))}), parquet, row_group_size=3)
    return txt, jsonl, parquet


@pytest.mark.parametrize("kind", ["txt", "jsonl", "parquet"])
def test_each_input_type_streams_to_jsonl_in_order(
    tiny_run, expected, tmp_path, small_chunks, kind
):
    path = dict(zip(["txt", "jsonl", "parquet"], write_inputs(tmp_path), strict=True))[kind]
    out = tmp_path / "preds.jsonl"
    column = [] if kind == "txt" else ["--text-column", "body"]
    result = run(
        "classify",
        "--checkpoint",
        tiny_run.run_dir,
        "--file",
        path,
        *column,
        "--output",
        out,
        "-k",
        2,
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(len(TEXTS)))
    assert [r["text"] for r in records] == TEXTS
    labels = Predictor(tiny_run.run_dir).labels
    for record, row in zip(records, expected, strict=True):
        got = {x["label"]: x["probability"] for x in record["labels"]}
        want = {lb: float(p) for lb, p in zip(labels, row, strict=True)}
        assert got == pytest.approx(want, abs=1e-5)
    assert records[2]["empty"] is True


def test_parquet_output_has_index_label_and_every_class(tiny_run, expected, tmp_path, small_chunks):
    txt, _, parquet = write_inputs(tmp_path)
    out = tmp_path / "preds.parquet"
    result = run(
        "classify",
        "--checkpoint",
        tiny_run.run_dir,
        "--file",
        parquet,
        "--text-column",
        "body",
        "--output",
        out,
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    labels = Predictor(tiny_run.run_dir).labels
    columns = ["index", "label", "probability", "labels"] + [f"prob_{x}" for x in labels]
    assert table.column_names == columns
    assert table.num_rows == len(TEXTS) and pq.ParquetFile(out).num_row_groups == 3  # 4+4+2
    assert table["index"].to_pylist() == list(range(len(TEXTS)))
    probs = np.stack([table[f"prob_{x}"].to_numpy() for x in labels], axis=1)
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert table["label"].to_pylist() == [labels[i] for i in expected.argmax(axis=1)]
    assert table["labels"].to_pylist() == [[labels[i]] for i in expected.argmax(axis=1)]
    assert not list(tmp_path.glob(".preds.parquet.*"))  # the temporary file was renamed


def test_parquet_threshold_leaves_label_empty(tiny_run, tmp_path):
    txt, _, _ = write_inputs(tmp_path)
    out = tmp_path / "preds.parquet"
    result = run(
        "classify", "--checkpoint", tiny_run.run_dir, "--file", txt, "-o", out, "--threshold", 1.0
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(out)["label"].to_pylist() == [None] * len(TEXTS)


def test_streaming_errors_are_one_line(tiny_run, tmp_path):
    txt, jsonl, parquet = write_inputs(tmp_path)
    ckpt = tiny_run.run_dir
    for path in (jsonl, parquet):
        bad = run("classify", "--checkpoint", ckpt, "--file", path)  # default column "text"
        assert bad.exit_code == 1 and "--text-column" in bad.output, bad.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\nnot json\n')
    bad = run("classify", "--checkpoint", ckpt, "--file", broken)
    assert bad.exit_code == 1 and "line 2" in bad.output
    bad = run("classify", "--checkpoint", ckpt, "--file", txt, "--format", "parquet")
    assert bad.exit_code == 1 and "--output" in bad.output
    missing = run("classify", "--checkpoint", ckpt, "--file", tmp_path / "nope.parquet")
    assert missing.exit_code == 1 and "no such file" in missing.output
    # a failed run leaves neither a partial output nor its temporary file behind
    failed = run("classify", "--checkpoint", ckpt, "--file", jsonl, "-o", tmp_path / "p.parquet")
    assert failed.exit_code == 1 and not list(tmp_path.glob("*p.parquet*"))
