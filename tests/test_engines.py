"""The numpy engine (predict.numpy_logits) computes TextLSTM's function for every model
shape: each pooling, one or two directions, 1-3 layers, both recurrent kernels.

A new model option (an n-gram branch, say) joins CONFIGS below, so the engine that cold
`classify` and `serve` run is checked against torch wherever the model can go.
"""

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from textlstm.config import ModelConfig
from textlstm.model import TextLSTM
from textlstm.ngrams import bag_matrix
from textlstm.predict import numpy_logits

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


@pytest.mark.parametrize("rnn", ["cudnn", "cell"])
@pytest.mark.parametrize("shape", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_numpy_engine_equals_torch(shape, rnn):
    torch.manual_seed(0)
    cfg = ModelConfig(emb_dim=8, hidden_dim=6, rnn=rnn, **shape)
    model = TextLSTM(cfg, VOCAB, CLASSES).eval()
    ids, lengths = padded_batch()
    bag = (
        bag_matrix([ids[r, :n] for r, n in enumerate(lengths)], cfg.ngrams, 50)
        if cfg.ngrams
        else None
    )
    with torch.no_grad():
        args = [torch.from_numpy(a) for a in (ids, lengths, bag) if a is not None]
        want = model(*args).numpy()
    weights = {name: t.numpy() for name, t in model.state_dict().items()}
    got = numpy_logits(weights, dataclasses.asdict(cfg), ids, lengths, bag)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
