"""fastText's bag of hashed word n-grams: the model's second branch (`model.ngrams`).

Each text's token ids, from the whole text (up to BAG_CHARS characters, not only the
first `data.max_len` tokens the LSTM reads), give every 1..n-gram a bucket id in
1..`ngram_buckets` (0 pads); the model sums those buckets' vectors over the square root
of their count, or averages them (`model.ngram_pooling`), and joins the result to the
LSTM's pooled features. A topic or keyword task is decided by which words
occur anywhere in a long document, which a bag sees at once; the LSTM adds word order.

The hash is fastText's multiply-add over token ids in unsigned 64-bit arithmetic (it
wraps), seeded with the n-gram's order so "a" and "a a" never share a bucket by
construction. Numpy only (a leaf module): training batches, the numpy engine and the
ONNX recipe all compute the same ids from the same function.
"""

import numpy as np

PRIME = np.uint64(116049371)  # fastText's
BAG_CHARS = 100_000  # characters of a text the bag reads: bounds the work on huge inputs


def hashed(ids, n: int, buckets: int) -> np.ndarray:
    """Bucket ids (1..buckets) of every 1..n-gram of one text's token ids, in order."""
    ids = np.asarray(ids, dtype=np.uint64)
    parts = []
    for k in range(1, min(n, len(ids)) + 1):
        h = np.full(len(ids) - k + 1, k, dtype=np.uint64)
        for j in range(k):
            h = h * PRIME + ids[j : len(ids) - k + 1 + j]
        parts.append(h % np.uint64(buckets) + np.uint64(1))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def bag_matrix(rows, n: int, buckets: int) -> np.ndarray:
    """(B, M) bucket ids of B texts' token-id rows, right-padded with 0."""
    bags = [hashed(row, n, buckets) for row in rows]
    out = np.zeros((len(bags), max((len(b) for b in bags), default=0) or 1), dtype=np.int64)
    for i, bag in enumerate(bags):
        out[i, : len(bag)] = bag
    return out
