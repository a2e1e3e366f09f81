"""BucketBatchSampler sharded over DDP ranks: equal batch counts, each text once."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textlstm import TextlstmError
from textlstm.batching import BucketBatchSampler


def shards(lengths, world, epoch=0, skip=0, **kw):
    samplers = [BucketBatchSampler(lengths, rank=r, world_size=world, **kw) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch, skip)
    return samplers, [[b.tolist() for b in s] for s in samplers]


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 60), min_size=1, max_size=300),
    batch_size=st.integers(1, 40),
    world=st.integers(1, 4),
    max_tokens=st.sampled_from([0, 50, 400]),
    pool_batches=st.integers(1, 5),
    epoch=st.integers(0, 3),
)
def test_every_index_once_and_equal_batch_counts(
    lengths, batch_size, world, max_tokens, pool_batches, epoch
):
    kw = dict(batch_size=batch_size, max_tokens=max_tokens, pool_batches=pool_batches, seed=7)
    if len(lengths) < world:
        with pytest.raises(TextlstmError):
            BucketBatchSampler(lengths, rank=0, world_size=world, **kw)
        return
    samplers, per_rank = shards(lengths, world, epoch, **kw)
    counts = {len(batches) for batches in per_rank}
    assert len(counts) == 1  # every rank takes the same number of steps
    assert all(len(b) > 0 for batches in per_rank for b in batches)  # no empty slice
    used = sorted(i for batches in per_rank for b in batches for i in b)
    assert used == list(range(len(lengths)))  # each text exactly once across ranks
    for step in range(counts.pop()):  # the slices of one step form one global batch
        total = sum(len(batches[step]) for batches in per_rank)
        assert total == samplers[0].global_size(step) == samplers[-1].global_size(step)
        sizes = [len(batches[step]) for batches in per_rank]
        assert max(sizes) - min(sizes) <= 1


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 200), world=st.integers(1, 4), skip=st.integers(0, 5))
def test_resume_skips_the_same_global_batches_on_every_rank(n, world, skip):
    lengths = np.random.default_rng(n).integers(1, 30, n)
    _, full = shards(lengths, world, epoch=2, batch_size=4)
    _, resumed = shards(lengths, world, epoch=2, skip=skip, batch_size=4)
    assert resumed == [batches[skip:] for batches in full]


def test_one_rank_is_the_unsharded_sampler_and_global_batches_match_it():
    lengths = np.random.default_rng(0).integers(1, 50, 500)
    plain = BucketBatchSampler(lengths, batch_size=32, seed=3)
    plain.set_epoch(1)
    _, (single,) = shards(lengths, 1, epoch=1, batch_size=32, seed=3)
    assert [b.tolist() for b in plain] == single
    # Two ranks with 16 each see exactly the batches of one process with 32, split in two.
    _, (r0, r1) = shards(lengths, 2, epoch=1, batch_size=16, seed=3)
    assert [sorted(a + b) for a, b in zip(r0, r1, strict=True)] == [sorted(b) for b in single]


def balanced_shards(labels, lengths, world, epoch=0, **kw):
    from textlstm.imbalance import BalancedBucketSampler

    samplers = [
        BalancedBucketSampler(labels, lengths, rank=r, world_size=world, **kw) for r in range(world)
    ]
    for s in samplers:
        s.set_epoch(epoch)
    return samplers, [[b.tolist() for b in s] for s in samplers]


def test_balanced_sampler_never_leaves_a_rank_empty_handed():
    """A long text under a token budget made a global batch of one text: with three
    processes, two ranks got an empty batch (the balanced sampler lacked merge_small)."""
    lengths, labels = np.array([1] * 7 + [23]), np.arange(8) % 3
    _, per_rank = balanced_shards(labels, lengths, 3, batch_size=8, max_tokens=60, seed=5)
    assert len({len(batches) for batches in per_rank}) == 1
    assert all(len(b) > 0 for batches in per_rank for b in batches)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 60), min_size=8, max_size=200),
    world=st.integers(1, 4),
    max_tokens=st.sampled_from([0, 60, 300]),
    epoch=st.integers(0, 3),
)
def test_balanced_sampler_shards_like_the_bucket_sampler(lengths, world, max_tokens, epoch):
    labels = np.arange(len(lengths)) % 3
    kw = dict(batch_size=8, max_tokens=max_tokens, seed=5)
    samplers, per_rank = balanced_shards(labels, np.array(lengths), world, epoch, **kw)
    assert len({len(batches) for batches in per_rank}) == 1
    assert all(len(b) > 0 for batches in per_rank for b in batches)
    drawn = sorted(i for batches in per_rank for b in batches for i in b)
    assert len(drawn) == len(lengths)  # one epoch draws as many texts as the split has
