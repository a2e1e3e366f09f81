"""The bucketed sampler: every example once per epoch, little padding, token budgets."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from textlstm.batching import BucketBatchSampler, PaddedBatches


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 400),
    batch_size=st.integers(1, 70),
    max_tokens=st.sampled_from([0, 50, 500]),
    epoch=st.integers(0, 3),
)
def test_every_index_exactly_once_per_epoch(n, batch_size, max_tokens, epoch):
    lengths = np.random.default_rng(n).integers(1, 40, size=n)
    sampler = BucketBatchSampler(lengths, batch_size, max_tokens, shuffle=True, seed=1)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(n))
    assert all(len(b) <= batch_size for b in batches)
    if max_tokens:  # a batch exceeds the budget only when one text alone does
        assert all(len(b) * lengths[b].max() <= max_tokens or len(b) == 1 for b in batches)


def test_buckets_cut_padding_and_shuffle_between_epochs():
    lengths = np.random.default_rng(0).integers(1, 200, size=5000)
    sampler = BucketBatchSampler(lengths, 64, seed=0)

    def padding(batches):
        return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches) / lengths.sum()

    rng = np.random.default_rng(0)
    random_batches = np.array_split(rng.permutation(5000), 5000 // 64)
    assert padding(sampler.batches(0)) < 0.1 < padding(random_batches)
    first, second = sampler.batches(0), sampler.batches(1)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=False))
    assert all(np.array_equal(a, b) for a, b in zip(first, sampler.batches(0), strict=True))


def test_skip_resumes_inside_an_epoch():
    sampler = BucketBatchSampler(np.arange(1, 101), 8, seed=2)
    full = sampler.batches(1)
    sampler.set_epoch(1, skip=5)
    rest = list(sampler)
    assert len(rest) == len(full) - 5 == len(sampler)
    assert all(np.array_equal(a, b) for a, b in zip(rest, full[5:], strict=True))


def test_padded_batch_is_as_wide_as_its_longest_text():
    from datasets import Dataset

    split = Dataset.from_dict(
        {"input_ids": [[5, 6, 7], [8], [9, 10]], "label": [0, 1, 0], "length": [3, 1, 2]}
    )
    batch = PaddedBatches(split, pad_id=0)[np.array([1, 2])]
    assert batch["input_ids"].tolist() == [[8, 0], [9, 10]]
    assert batch["lengths"].tolist() == [1, 2] and batch["labels"].tolist() == [1, 0]
    wide = PaddedBatches(split, pad_multiple=8)[np.array([0])]
    assert wide["input_ids"].shape == (1, 8)
