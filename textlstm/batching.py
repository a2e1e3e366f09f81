"""Length-bucketed batches, each padded only to its own longest text.

Random batches of mixed lengths make the LSTM run over padding: on SMS Spam a random
batch of 64 is ~75% padding, a bucketed one ~5%. The sampler keeps training stochastic
anyway: each epoch it shuffles all texts, cuts them into pools of ~`pool_batches`
batches, sorts each pool by length, cuts it into batches, and shuffles the batches.

A batch holds `batch_size` texts, or, with `max_tokens`, as many texts as fit in a
padded `(B, T)` block of that many tokens: long texts come in small batches and short
ones in large batches, so every step does a similar amount of work (what a GPU wants).

Every index appears exactly once per epoch. The batches of an epoch depend only on
(seed, epoch), so a resumed run can rebuild them and skip the ones already done. Which
texts an epoch holds, and in which order, is one hook (`epoch_order`); everything after
it (pools, sorting, cutting, DDP sharding) is shared by every sampler.

Sharding for DistributedDataParallel (`rank`, `world_size` = W > 1): every rank builds
the same list of *global* batches, as a single process would with `batch_size * W`
texts (or `max_tokens * W` tokens) per batch, and takes every W-th text of each
(`batch[rank::W]`). So every rank has the same number of batches (one slice of each
global batch) and every text is used exactly once per epoch across ranks, with no
padding by repetition and nothing dropped. Strided slices of a length-sorted batch
have nearly equal widths, so no rank waits long for another. A global batch with fewer
than W texts (the tail of a pool, or one very long text under `max_tokens`) would leave
a rank empty-handed: it is merged into its neighbour, which may then exceed the
global size by at most W - 1 texts. A split with fewer than W texts cannot be sharded
and is refused. With W = 1 nothing changes. Slices differ in size by at most one, so
the training loop scales each rank's loss by `W * local / global` to get exactly the
gradient of the global batch (`training.py`). Skipping k batches on resume skips k global
batches on every rank.
"""

import numpy as np
import torch

from textlstm import TextlstmError
from textlstm.ngrams import bag_matrix


class BucketBatchSampler:
    """Yields arrays of example indices; see the module docstring."""

    def __init__(
        self,
        lengths,
        batch_size: int = 64,
        max_tokens: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        pad_multiple: int = 1,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if world_size > 1 and len(self.lengths) < world_size:
            raise TextlstmError(
                f"{len(self.lengths)} training texts cannot be shared by {world_size} processes"
            )
        self.rank, self.world_size = rank, world_size
        # Global batches: what one process would build with W times the per-rank budget.
        self.batch_size = batch_size * world_size
        self.max_tokens = max_tokens * world_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.pad_multiple = pad_multiple
        self.epoch = 0
        self.skip = 0  # batches of the current epoch already consumed (resume)
        self._cached_epoch, self._cached = None, []

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def padded_len(self, n: int) -> int:
        m = self.pad_multiple
        return -(-n // m) * m

    def cut(self, order: np.ndarray) -> list[np.ndarray]:
        """Cut indices (already sorted by length within runs) into batches."""
        if not self.max_tokens:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches, start, longest = [], 0, 0
        for pos, idx in enumerate(order):
            longest_with = max(longest, self.padded_len(int(self.lengths[idx])))
            size = pos - start + 1
            if pos > start and (size * longest_with > self.max_tokens or size > self.batch_size):
                batches.append(order[start:pos])
                start, longest_with = pos, self.padded_len(int(self.lengths[idx]))
            longest = longest_with
        if start < len(order):
            batches.append(order[start:])
        return batches

    def batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's batches; memoised, since the loop asks for them more than once."""
        if self._cached_epoch != epoch:
            self._cached = self.build(epoch)
            self._cached_epoch = epoch
        return self._cached

    # Extra words for the epoch's RNG seed: a subclass with its own draws gets its own stream.
    rng_stream: tuple[int, ...] = ()

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        """The texts of an epoch, in the order they are pooled: the hook a subclass overrides
        to draw another epoch (imbalance.BalancedBucketSampler); here, a permutation."""
        return rng.permutation(len(self.lengths))

    def build(self, epoch: int) -> list[np.ndarray]:
        if not self.shuffle:
            # Evaluation: one global sort gives the least padding; order is restored later.
            return self.cut(np.argsort(-self.lengths, kind="stable"))
        rng = np.random.default_rng([self.seed, epoch, *self.rng_stream])
        order = self.epoch_order(rng)
        pool = self.pool_batches * self.batch_size
        runs = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            runs.extend(self.cut(chunk[np.argsort(-self.lengths[chunk], kind="stable")]))
        if self.world_size > 1:
            runs = self.merge_small(runs)
        return [runs[i] for i in rng.permutation(len(runs))]

    def merge_small(self, runs: list[np.ndarray]) -> list[np.ndarray]:
        """Merge batches of fewer than W texts into a neighbour, so no rank's slice is empty."""
        merged = []
        for batch in runs:
            if merged and (len(batch) < self.world_size or len(merged[-1]) < self.world_size):
                both = np.concatenate([merged[-1], batch])
                merged[-1] = both[np.argsort(-self.lengths[both], kind="stable")]
            else:
                merged.append(batch)
        return merged

    def global_size(self, position: int) -> int:
        """Texts in the current epoch's global batch number `position` (all ranks)."""
        return len(self.batches(self.epoch)[position])

    def __iter__(self):
        for batch in self.batches(self.epoch)[self.skip :]:
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.batches(self.epoch)) - self.skip


def column_array(split, name: str) -> np.ndarray:
    """One column of a `datasets` split as a numpy array, read through Arrow.

    `split[name]` would create one Python object per row (10M of them for a 10M-text
    corpus); the Arrow column of a memory-mapped split converts without that.
    """
    values = np.asarray(split.with_format("arrow")[name])
    if values.dtype == object and len(values):  # a list column (multi-hot labels): 2-D
        values = np.stack(values)
    return values


def arrow_lists(split, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of a list column, straight from Arrow (memory-mapped on disk)."""
    column = split.with_format("arrow")[name]
    lists = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    return lists.values.to_numpy(zero_copy_only=False), lists.offsets.to_numpy(zero_copy_only=False)


class PaddedBatches:
    """Turns a tokenized split into padded tensor batches for given index arrays.

    The token ids are read straight from the Arrow column (values + offsets, memory-mapped
    when the split is on disk), so building a batch costs a few numpy slices. With `bag`
    = (n, buckets) (a model with an n-gram branch), each batch also carries `ngram_ids`:
    the hashed 1..n-grams of each whole text (`bag_ids` column), 0-padded (ngrams.py).
    """

    def __init__(self, split, pad_id: int = 0, pad_multiple: int = 1, bag=None):
        self.values, self.offsets = arrow_lists(split, "input_ids")
        self.labels = column_array(split, "label").astype(np.int64)
        self.lengths = np.diff(self.offsets).astype(np.int64)
        self.pad_id = pad_id
        self.pad_multiple = pad_multiple
        self.bag = bag
        if bag:
            if "bag_ids" not in split.column_names:
                raise TextlstmError("an n-gram model needs the texts' bag_ids (tokenize with bag)")
            self.bag_values, self.bag_offsets = arrow_lists(split, "bag_ids")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: np.ndarray) -> dict:
        index = np.asarray(index)
        lengths = self.lengths[index]
        width = int(lengths.max())
        width = -(-width // self.pad_multiple) * self.pad_multiple
        block = np.full((len(index), width), self.pad_id, dtype=np.int64)
        for row, i in enumerate(index):
            block[row, : lengths[row]] = self.values[self.offsets[i] : self.offsets[i + 1]]
        batch = {
            "input_ids": torch.from_numpy(block),
            "lengths": torch.from_numpy(lengths),
            "labels": torch.from_numpy(self.labels[index]),
            "index": torch.from_numpy(index.astype(np.int64)),
        }
        if self.bag:
            rows = [self.bag_values[self.bag_offsets[i] : self.bag_offsets[i + 1]] for i in index]
            batch["ngram_ids"] = torch.from_numpy(bag_matrix(rows, *self.bag))
        return batch


def loader(split, sampler: BucketBatchSampler, pad_id=0, workers=0, pin_memory=False, bag=None):
    """A DataLoader whose items are whole padded batches (built in worker processes)."""
    batches = PaddedBatches(split, pad_id, sampler.pad_multiple, bag)
    return torch.utils.data.DataLoader(
        batches,
        sampler=sampler,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        # Workers live across epochs: otherwise each epoch starts them again (a fork and
        # a copy of the dataset's arrays each), while a GPU epoch can take seconds. The
        # sampler runs in this process, so set_epoch still decides each epoch's batches.
        persistent_workers=workers > 0,
        # Its own generator: otherwise each epoch's iterator draws a seed from torch's
        # global RNG (which dropout uses), and a resumed run would drift from the original.
        generator=torch.Generator().manual_seed(0),
    )
