"""The numpy engine (predict.numpy_logits) and the onnx engine's graph (onnx_graph.build)
compute TextLSTM's function for every model shape: each pooling, one or two directions,
1-3 layers, both recurrent kernels, with and without the n-gram branch.

A new model option joins CONFIGS below, so the engines that `classify`, `serve` and the
Python API run are checked against torch wherever the model can go.
"""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from textlstm.config import ModelConfig
from textlstm.model import TextLSTM
from textlstm.ngrams import bag_matrix
from textlstm.predict import ENGINES, numpy_logits

POOLINGS = ["last", "max", "mean", "max+last", "mean+max", "last+max+mean"]
CONFIGS = [
    dict(pooling=pooling, bidirectional=bidirectional, num_layers=layers)
    for pooling, bidirectional, layers in itertools.product(POOLINGS, (True, False), (1, 2, 3))
] + [  # the n-gram branch beside each pooling, one and two directions
    dict(pooling=pooling, bidirectional=bidirectional, num_layers=2, ngrams=n, ngram_buckets=50)
    for pooling, bidirectional, n in itertools.product(POOLINGS, (True, False), (1, 3))
]
VOCAB, CLASSES = 30, 3


def padded_batch(seed: int = 0):
    """Right-padded ids of mixed lengths, a length-1 text among them."""
    rng = np.random.default_rng(seed)
    lengths = np.array([9, 1, 6, 9, 3], dtype=np.int64)
    ids = np.zeros((len(lengths), lengths.max()), dtype=np.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(2, VOCAB, n)
    return ids, lengths


def bag_of(ids, lengths, cfg):
    """The batch's n-gram bucket ids (50 buckets), or None without an n-gram branch."""
    if not cfg.ngrams:
        return None
    return bag_matrix([ids[r, :n] for r, n in enumerate(lengths)], cfg.ngrams, 50)


@pytest.mark.parametrize("rnn", ["cudnn", "cell"])
@pytest.mark.parametrize("shape", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_numpy_engine_equals_torch(shape, rnn):
    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=8, hidden_dim=6, rnn=rnn, **shape)
    model = TextLSTM(cfg, VOCAB, CLASSES).eval()
    ids, lengths = padded_batch()
    bag = bag_of(ids, lengths, cfg)
    with torch.no_grad():
        args = [torch.from_numpy(a) for a in (ids, lengths, bag) if a is not None]
        want = model(*args).numpy()
    weights = {name: t.numpy() for name, t in model.state_dict().items()}
    got = numpy_logits(weights, dataclasses.asdict(cfg), ids, lengths, bag)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_onnx_graph_equals_torch(shape):
    """onnx_graph.build (the onnx engine's graph, no torch): logits and features, every
    shape, and each text's answer the same alone as in its padded batch."""
    pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install '.[onnx]'")
    import onnxruntime as ort

    from textlstm.onnx_graph import build

    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=8, hidden_dim=6, **shape)
    model = TextLSTM(cfg, VOCAB, CLASSES).eval()
    ids, lengths = padded_batch()
    bag = bag_of(ids, lengths, cfg)
    weights = {name: t.numpy() for name, t in model.state_dict().items()}
    graph = build(weights, dataclasses.asdict(cfg)).SerializeToString()
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])

    def run(rows):
        feeds = {"ids": ids[rows, : lengths[rows].max()], "lengths": lengths[rows]}
        if bag is not None:
            feeds["ngram_ids"] = bag[rows]
        return session.run(["logits", "features"], feeds)

    with torch.no_grad():
        args = [torch.from_numpy(a) for a in (ids, lengths, bag) if a is not None]
        want_logits, want_features = model(*args).numpy(), model.features(*args).numpy()
    logits, features = run(np.arange(len(ids)))
    np.testing.assert_allclose(logits, want_logits, atol=1e-5, rtol=0)
    np.testing.assert_allclose(features, want_features, atol=1e-5, rtol=0)
    for row in range(len(ids)):  # alone, padded to its own length only
        np.testing.assert_allclose(run(np.array([row]))[0][0], logits[row], atol=1e-6, rtol=0)


def test_every_engine_gives_the_same_probabilities_on_a_trained_bundle(tiny_run):
    pytest.importorskip("onnxruntime", reason="needs the onnx extra: pip install '.[onnx]'")
    import pyarrow.parquet as pq
    from conftest import SMS

    from textlstm.predict import Predictor

    texts = pq.read_table(SMS / "test.parquet").column("text").to_pylist()[:200]
    probs = {e: Predictor(tiny_run.run_dir, e).probabilities(texts) for e in ENGINES[1:]}
    for engine in ("torch", "onnx"):
        np.testing.assert_allclose(probs[engine], probs["numpy"], atol=1e-5, rtol=0)
    vectors = {e: Predictor(tiny_run.run_dir, e).embeddings(texts) for e in ("numpy", "onnx")}
    np.testing.assert_allclose(vectors["onnx"], vectors["numpy"], atol=1e-5, rtol=0)


def test_auto_picks_the_engine_per_situation(tiny_run, monkeypatch):
    from textlstm import predict

    def picked(workload, device="cpu"):
        return predict.auto_engine(False, device, workload)

    if predict.onnx_available():
        assert [picked(w) for w in ("few", "file", "service")] == ["numpy", "onnx", "onnx"]
        assert predict.Predictor(tiny_run.run_dir).engine == "onnx"  # the API, serve
    monkeypatch.setattr(predict, "onnx_available", lambda: False)
    assert [picked(w) for w in ("few", "file", "service")] == ["numpy", "torch", "numpy"]
    assert picked("file", "cuda") == "torch"
    assert predict.auto_engine(True, "cpu", "few") == "onnx"  # an int8 bundle's only engine
