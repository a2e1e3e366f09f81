"""Property-based tests (hypothesis): classify never crashes on arbitrary Unicode, and
padding never changes logits, for any lengths."""

import numpy as np
import pytest
import torch
from conftest import tiny_config

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from textlstm.config import ModelConfig  # noqa: E402
from textlstm.model import TextLSTM  # noqa: E402
from textlstm.predict import Predictor  # noqa: E402

PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    """The numpy engine on a freshly trained one-epoch model (a few hundred texts)."""
    import pandas as pd

    from textlstm.training import fit

    folder = tmp_path_factory.mktemp("prop-data")
    cues = (("good", "p"), ("bad", "n"))
    rows = [(f"{w} film {i % 7}", lb) for i in range(150) for w, lb in cues]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(folder / "train.csv", index=False)
    cfg = tiny_config(
        "train.epochs=1",
        "model.num_layers=1",
        "model.hidden_dim=8",
        "model.emb_dim=8",
        source=folder,
    )
    run = fit(cfg, tmp_path_factory.mktemp("prop-run") / "run")
    return Predictor(run.run_dir, engine="numpy")


@PROPERTY
@given(st.lists(st.text(), min_size=1, max_size=6))
def test_classify_never_crashes_on_arbitrary_unicode(predictor, texts):
    probs = predictor.probabilities(texts, batch_size=4)
    assert probs.shape == (len(texts), 2) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert all(isinstance(label, str) for row in predictor.classify(texts, 2) for label, _ in row)


MODELS = {
    (rnn, pooling): TextLSTM(
        ModelConfig(emb_dim=6, hidden_dim=5, num_layers=2, rnn=rnn, pooling=pooling, ngrams=0),
        50,
        3,
        0,
    ).eval()
    for rnn in ("cudnn", "cell")
    for pooling in ("last", "max+mean")
}


@PROPERTY
@given(
    key=st.sampled_from(sorted(MODELS)),
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    extra=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_padding_never_changes_logits(key, lengths, extra, seed):
    model = MODELS[key]
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths) + extra  # extra all-padding columns on top of the ragged ends
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, 50, (n,), generator=gen)
    with torch.no_grad():
        batched = model(ids, torch.tensor(lengths))
        for row, n in enumerate(lengths):
            alone = model(ids[row : row + 1, :n], torch.tensor([n]))
            torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=1e-5)
