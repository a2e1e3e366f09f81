"""Shared fixtures: offline hub, a throw-away HF cache, and one tiny trained model.

The tiny model (2-layer BiLSTM, 16 units, 2 epochs on the bundled SMS spam data) trains
in a few seconds once per session; tests that need a checkpoint share it.
"""

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="textlstm-hf-"))

REPO = Path(__file__).resolve().parent.parent
SMS = REPO / "data" / "sms_spam"
SHARED_DATA = REPO.parent / "shared" / "data"

TINY = [
    "model.emb_dim=16",
    "model.hidden_dim=16",
    "model.num_layers=2",
    "data.vocab_size=3000",
    "train.epochs=2",
    "train.batch_size=32",
    "train.lr=5e-3",
    "model.ngram_buckets=2000",  # the default bag, small
    "model.ngram_dim=8",
    "train.adversarial=0",  # the default's second pass is tested in test_adversarial.py
    "train.refit=false",  # the default's second run is tested in test_refit.py
]


def tiny_config(*extra: str, source: Path = SMS):
    from textlstm import config

    cfg = config.build(None, tuple(TINY) + extra)
    cfg.data.source = str(source)
    return cfg


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """FitResult of the shared tiny model; its run folder lives under a temp checkpoints/."""
    from textlstm.training import fit

    run_dir = tmp_path_factory.mktemp("checkpoints") / "tiny"
    return fit(tiny_config(), run_dir)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run with an empty working directory (no checkpoints/latest)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
