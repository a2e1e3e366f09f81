"""Class imbalance: per-class loss weights (`train.class_weights`) and a class-balanced
batch sampler (`train.sampler = "balanced"`).

Two ways to make a rare class count more, with different costs:
- Loss weights keep every epoch's data as it is and scale each text's loss by its
  class weight. Cheap and exact in expectation, but a batch with one spam text among
  63 hams has a noisy, spiky gradient.
- The balanced sampler changes *which* texts an epoch sees: the same number of texts
  as the training split, an equal share from every class. Rare-class texts are repeated
  (each about the same number of times, not drawn independently), common-class texts
  are subsampled afresh each epoch, so over several epochs most of them are still seen.
  Batches stay length-bucketed, so padding stays as low as with the default sampler.
  Using both at once double-counts the correction; that is allowed but rarely wanted.
"""

import numpy as np

from textlstm import TextlstmError
from textlstm.batching import BucketBatchSampler, column_array
from textlstm.config import parse_class_weights


def loss_weights(value, labels, label_names) -> np.ndarray | None:
    """The cross-entropy weight per class id, or None for an unweighted loss.

    "balanced" is n / (k * count_c), scikit-learn's rule: every class contributes the
    same total weight. A list is taken as given, in label id order.
    """
    parsed = parse_class_weights(value)
    num_classes = len(label_names)
    if parsed == "none":
        return None
    if parsed == "balanced":
        counts = np.bincount(np.asarray(labels), minlength=num_classes)
        return len(labels) / (num_classes * np.maximum(counts, 1))
    if len(parsed) != num_classes:
        raise TextlstmError(
            f"train.class_weights has {len(parsed)} weights but the data has {num_classes} "
            f"classes ({', '.join(label_names)}); give one weight per class in that order"
        )
    return np.asarray(parsed, dtype=np.float64)


class BalancedBucketSampler(BucketBatchSampler):
    """Each epoch: len(labels) texts, an equal share per class, then length-bucketed.

    Only the epoch's draw differs from the parent (`epoch_order`); pooling, cutting and
    DDP sharding are the parent's. An epoch's batches depend only on (seed, epoch), so
    resuming a run rebuilds them exactly. Classes absent from the split are skipped.
    """

    def __init__(self, labels, lengths, *args, **kwargs):
        super().__init__(lengths, *args, **kwargs)
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(self.lengths):
            raise ValueError("labels and lengths must have the same length")
        self.members = [np.flatnonzero(labels == c) for c in np.unique(labels)]

    rng_stream = (1,)  # its own RNG stream per epoch, apart from the bucket sampler's

    def epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        n, k = len(self.lengths), len(self.members)
        quotas = np.full(k, n // k)
        quotas[rng.permutation(k)[: n % k]] += 1  # the remainder goes to random classes
        picked = []
        for members, quota in zip(self.members, quotas, strict=True):
            # Whole shuffled copies first, then a random part: every member of a rare
            # class is repeated floor or ceil(quota / count) times.
            copies, rest = divmod(int(quota), len(members))
            picked += [rng.permutation(members) for _ in range(copies)]
            picked.append(rng.permutation(members)[:rest])
        return rng.permutation(np.concatenate(picked))


def train_sampler(split, tc, rank: int = 0, world_size: int = 1) -> BucketBatchSampler:
    """The training batch sampler `train.sampler` (`tc`: a TrainConfig) names.

    Either way batches are length-bucketed and sharded over `world_size` ranks (DDP).
    """
    bucketing = dict(
        batch_size=tc.batch_size,
        max_tokens=tc.max_tokens,
        shuffle=True,
        seed=tc.seed,
        pad_multiple=tc.pad_multiple,
        rank=rank,
        world_size=world_size,
    )
    lengths = column_array(split, "length")
    if tc.sampler == "balanced":  # class-balanced draws
        return BalancedBucketSampler(column_array(split, "label"), lengths, **bucketing)
    return BucketBatchSampler(lengths, **bucketing)
