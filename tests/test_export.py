"""`textlstm export --format onnx`: onnxruntime reproduces the PyTorch logits on real texts."""

import json
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from conftest import SMS

from textlstm.cli import main
from textlstm.ngrams import bag_matrix
from textlstm.tokenizer import PAD_ID

ort = pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install '.[onnx]'")


def padded(token_ids):
    lengths = np.array([len(t) for t in token_ids], dtype=np.int64)
    ids = np.full((len(token_ids), lengths.max()), PAD_ID, dtype=np.int64)
    for row, t in enumerate(token_ids):
        ids[row, : len(t)] = t
    return ids, lengths


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    result = CliRunner().invoke(
        main, ["export", "--checkpoint", str(tiny_run.run_dir), "--format", "onnx", "--out", out]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    return out


def test_export_writes_the_bundle_files(exported, tiny_run):
    for name in ("model.onnx", "tokenizer.json", "labels.json", "config.json"):
        assert (exported / name).is_file(), name
    labels = json.loads((exported / "labels.json").read_text())
    assert labels == json.loads((tiny_run.run_dir / "labels.json").read_text())
    session = ort.InferenceSession(str(exported / "model.onnx"))
    inputs = {i.name: i for i in session.get_inputs()}
    assert inputs["ids"].type == inputs["lengths"].type == "tensor(int64)"
    assert inputs["ids"].shape == ["batch", "steps"] and inputs["lengths"].shape == ["batch"]


def test_onnxruntime_matches_torch_on_real_texts_with_padding(exported, tiny_run):
    from textlstm.predict import Predictor

    texts = pq.read_table(SMS / "test.parquet", columns=["text"])["text"].to_pylist()[:48]
    token_ids, whole = Predictor(tiny_run.run_dir).encoded(texts)
    n, buckets = tiny_run.model.cfg.ngrams, tiny_run.model.cfg.ngram_buckets
    assert n and whole is not None  # the default model: LSTM and n-gram bag

    def feed(rows):  # padded ids, lengths and the rows' 0-padded n-gram buckets
        ids, lengths = padded([token_ids[i] for i in rows])
        return {
            "ids": ids,
            "lengths": lengths,
            "ngram_ids": bag_matrix([whole[i] for i in rows], n, buckets),
        }

    session = ort.InferenceSession(str(exported / "model.onnx"))
    model = tiny_run.model.cpu().eval()
    # Batches of 16 unsorted texts: most rows are padded, and widths differ per batch.
    for start in range(0, len(texts), 16):
        inputs = feed(range(start, start + 16))
        assert (inputs["lengths"] < inputs["ids"].shape[1]).any()
        got = session.run(None, inputs)[0]
        with torch.no_grad():
            want = model(*(torch.from_numpy(a) for a in inputs.values())).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # A short text alone gives the logits it gets inside the padded batch.
    shortest = int(np.argmin([len(t) for t in token_ids[:16]]))
    together = session.run(None, feed(range(16)))[0][shortest]
    alone = session.run(None, feed([shortest]))[0][0]
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)


def test_missing_onnx_extra_is_one_line(tiny_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    result = CliRunner().invoke(
        main, ["export", "--checkpoint", str(tiny_run.run_dir), "--format", "onnx"]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: ONNX export needs onnx and onnxruntime (onnxruntime is missing): "
        "pip install 'textlstm[onnx]'"
    ]


def test_the_documented_recipe_matches_classify_on_empty_and_long_texts(exported, tiny_run):
    """docs/USAGE.md's ONNX recipe, run as written, gives classify's probabilities."""
    from textlstm.metrics import softmax
    from textlstm.predict import Predictor

    usage = (SMS.parent.parent / "docs" / "USAGE.md").read_text()
    recipe = usage.split("### ONNX export", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    texts = ["", "free prize " * 400, "see you at lunch"]  # empty; past data.max_len
    scope = {"texts": texts}
    recipe = recipe.replace('"exported/', f'"{exported}/')
    exec(recipe, scope)  # noqa: S102 - the documentation's own code
    expected = Predictor(tiny_run.run_dir).probabilities(texts)
    np.testing.assert_allclose(softmax(scope["logits"]), expected, atol=1e-5)
