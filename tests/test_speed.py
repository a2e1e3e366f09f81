"""bench/speed.py in its tiny --quick mode (every path, CPU), and the loader it measures."""

import json
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, SMS, tiny_config

sys.path.insert(0, str(REPO / "bench"))


def test_speed_bench_quick_runs_every_row_and_counts_tokens(tmp_path, capsys):
    import speed

    out = tmp_path / "speed.json"
    argv = ["--dataset", str(SMS), "--quick", "--tta", "--tta-target", "0.0", "--out", str(out)]
    result = speed.main([*argv, "--workdir", str(tmp_path / "work")])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    rows = result["rows"]
    # (b) is one epoch of fit: its token count must be exactly the train split's tokens.
    assert rows["b"]["real"] == pytest.approx(result["tokenization"]["train_tokens"], rel=1e-6)
    # (a) pads every text to 256: padded tokens are whole rows, and mostly padding on SMS.
    assert rows["a"]["padded"] % 256 == 0 and rows["a"]["padding"] > 0.8
    assert rows["b"]["padding"] < rows["a"]["padding"]
    for row in rows.values():
        assert row["steps"] >= 1 and 0 < row["real"] <= row["padded"]
    ratio = rows["b"]["real_tokens_per_s"] / rows["a"]["real_tokens_per_s"]
    assert result["b_over_a"] == pytest.approx(ratio)
    assert len(result["inference"]["rates"]) == 4
    assert all(r["texts_per_s"] > 0 for r in result["inference"]["rates"].values())
    # the `classify --file` process really classified every text
    preds = (tmp_path / "work" / "preds.txt").read_text().splitlines()
    assert len(preds) == result["inference"]["texts"]
    # time to accuracy: a target of 0 is reached after the first epoch's training time
    tta = result["time_to_accuracy"]
    assert tta["reached"] and tta["epoch"] == 1
    assert tta["train_s"] == pytest.approx(tta["epochs"][0]["epoch_s"])
    assert len(tta["epochs"]) == 2
    assert tta["epochs"][1]["train_s_cumulative"] > tta["train_s"]
    printed = capsys.readouterr().out
    assert "b/a = " in printed and "reached after" in printed


def test_textbook_pads_or_cuts_to_fixed_length():
    from speed_rows import fixed_length

    block, lengths = fixed_length([[5, 6, 7], [8] * 10, []], 4)
    assert block.tolist() == [[5, 6, 7, 0], [8, 8, 8, 8], [0, 0, 0, 0]]
    assert lengths.tolist() == [3, 4, 0]


def test_ceiling_replays_the_product_batch_shapes():
    from speed_rows import Ceiling, product_shapes

    from textlstm.config import ModelConfig

    cfg = tiny_config("train.pad_multiple=8", "train.max_tokens=256", "train.batch_size=16")
    lengths = np.random.default_rng(0).integers(1, 60, size=100)
    shapes = product_shapes(lengths, cfg.train)
    assert sorted(np.concatenate(shapes).tolist()) == sorted(lengths.tolist())
    model = ModelConfig(emb_dim=8, hidden_dim=8, ngrams=0)  # (c) replays the LSTM alone
    ceiling = Ceiling(model, cfg.train, 50, 2, shapes, torch.device("cpu"))
    for lengths_of_batch in shapes[:3]:
        real, padded = ceiling.step()
        width = -(-int(lengths_of_batch.max()) // 8) * 8
        assert (real, padded) == (int(lengths_of_batch.sum()), len(lengths_of_batch) * width)
        assert padded <= max(256, width)


def test_loader_workers_persist_and_follow_set_epoch(tiny_run):
    from textlstm.batching import BucketBatchSampler, loader

    split = tiny_run.prepared.splits["validation"]
    sampler = BucketBatchSampler(split["length"], 16, seed=3)
    batches = loader(split, sampler, workers=1)
    assert batches.persistent_workers
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        got = [b["index"].tolist() for b in batches]
        assert got == [b.tolist() for b in sampler.batches(epoch)]
    assert got != [b.tolist() for b in sampler.batches(0)]
