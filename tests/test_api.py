"""The Python API (`textlstm.load`, `textlstm.train`) and `textlstm embed`."""

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import SMS, TINY

import textlstm
from textlstm import TextlstmError
from textlstm.cli import main

TEXTS = ["WINNER!! You have won a free prize, call now", "see you at lunch", "", "ok " * 300]


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("checkpoints") / "api"
    settings = dict(item.split("=") for item in TINY) | {"train.test": "false"}
    return textlstm.train(SMS, overrides=settings, out=out)


def test_import_is_cheap_and_loads_nothing_heavy():
    code = "import sys, textlstm; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_train_load_predict_equals_the_cli(api_run):
    clf = textlstm.load(api_run)
    assert clf.labels == ["ham", "spam"] and not clf.multi_label
    picks = clf.predict(TEXTS, top_k=2)
    cli = CliRunner().invoke(
        main,
        ["classify", "--checkpoint", str(api_run), "--top-k", "2", "--format", "jsonl", *TEXTS],
    )
    records = [json.loads(line) for line in cli.stdout.splitlines()]
    from_cli = [[(x["label"], x["probability"]) for x in r["labels"]] for r in records]
    assert [[(label, round(p, 6)) for label, p in pick] for pick in picks] == from_cli
    assert clf.predict(TEXTS[0]) == picks[0][:1]  # one string, one answer
    probs = clf.predict_proba(TEXTS)
    assert probs.shape == (4, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    torch_probs = textlstm.load(api_run, engine="torch").predict_proba(TEXTS)
    np.testing.assert_allclose(probs, torch_probs, atol=1e-5)


def test_embed_shapes_determinism_and_padding(api_run):
    clf = textlstm.load(api_run)
    vectors = clf.embed(TEXTS)
    # BiLSTM 16, max+last pooled (64), then the n-gram bag (8)
    assert vectors.shape == (4, 72) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, clf.embed(TEXTS))
    np.testing.assert_allclose(clf.embed(TEXTS[1]), vectors[1], atol=1e-6)  # alone = batched
    torch_vectors = textlstm.load(api_run, engine="torch").embed(TEXTS)
    # relative too: a bag over sqrt(count) reaches |x| ~ 4, where float32 sums differ ~1e-5
    np.testing.assert_allclose(vectors, torch_vectors, rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_clear(api_run):
    clf = textlstm.load(api_run)
    with pytest.raises(TextlstmError, match="threshold"):
        clf.predict(TEXTS, threshold=float("nan"))
    with pytest.raises(TextlstmError, match="list of strings"):
        clf.predict([1, 2])


@pytest.mark.parametrize("suffix", ["npy", "parquet", "jsonl"])
def test_embed_verb_writes_each_format(api_run, tmp_path, suffix):
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / f"vectors.{suffix}"
    args = ["embed", "--checkpoint", str(api_run), "--file", str(source), "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    expected = textlstm.load(api_run).embed(TEXTS)
    if suffix == "npy":
        got = np.load(out)
    elif suffix == "parquet":
        table = pq.read_table(out)
        assert table["index"].to_pylist() == [0, 1, 2, 3]
        got = np.array(table["vector"].to_pylist(), dtype=np.float32)
    else:
        got = np.array([json.loads(line)["vector"] for line in out.read_text().splitlines()])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_embed_from_stdin_to_stdout(api_run):
    result = CliRunner().invoke(
        main, ["embed", "--checkpoint", str(api_run), "-"], input="hello there\nfree prize\n"
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["index"] for r in rows] == [0, 1] and len(rows[0]["vector"]) == 72
