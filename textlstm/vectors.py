"""Pretrained word vectors (word2vec / GloVe / fastText text format) into the embedding.

`--set model.vectors=PATH` reads a `.vec` / `.txt` file: one `word v1 ... vD` per line,
optionally preceded by a `N D` header line (word2vec, fastText). Every vocabulary entry
found in the file gets that vector as its embedding row; the rest keep their random
initialisation, rescaled to the pretrained rows' standard deviation so that the two
kinds of rows start on the same scale (N(0, 1) rows would dwarf GloVe's ~0.4).

Matching: each file word is passed through the run's own tokenizer normaliser (NFKC,
lower-casing and accent stripping when `data.lowercase` is on), the same function that
produced the vocabulary. With lower-casing, "The" and "the" in the file both map to
"the"; a word that is already in normal form wins, otherwise the first one in the file
(files list frequent words first).

Tokenizers: `word` (the default) matches whole words, the intended case. With
`wordpiece`, only pieces that start a word (no `##` prefix) can match; continuation
pieces ("##ing") stay random. The printed coverage says how much that leaves out.

`model.freeze_vectors = true` freezes the rows found in the file (their gradient is
zeroed; the embedding has no weight decay, so AdamW leaves them bit-for-bit unchanged);
rows for words the file lacks, `[UNK]` included, still learn. Freezing protects the
pretrained geometry on small data; fine-tuning (the default) usually wins with more data.

The file is streamed and only vocabulary words are parsed, so a multi-GB file costs
time (one pass) but not memory. `--resume` reads the file again to rebuild the frozen mask.
"""

from pathlib import Path

import numpy as np

from textlstm import TextlstmError
from textlstm.tokenizer import PAD_ID, UNK_ID


def parse_header(line: str) -> int | None:
    """The dimension from an `N D` header line, or None when the line is a vector."""
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[1])
    return None


def read_vectors(path, vocab: dict[str, int], normalize) -> tuple[dict[int, np.ndarray], int]:
    """{token id: vector} for the vocabulary entries found in the file, and its dimension."""
    path = Path(path)
    if not path.is_file():
        raise TextlstmError(f"model.vectors: {path} does not exist")
    found: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    dim = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n\r")
            if number == 1 and (header := parse_header(line)) is not None:
                dim = header
                continue
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue  # blank line
            if dim is None:
                dim = len(parts) - 1
            if len(parts) <= dim:
                raise TextlstmError(
                    f"model.vectors: {path} line {number} has {len(parts) - 1} numbers, "
                    f"expected {dim} (the file's dimension)"
                )
            # The last `dim` fields are the vector: some GloVe words contain spaces.
            word = " ".join(parts[: len(parts) - dim])
            token = normalize(word)
            index = vocab.get(token)
            if index is None or index in (PAD_ID, UNK_ID):
                continue
            is_exact = token == word
            if index in found and (index in exact or not is_exact):
                continue
            try:
                found[index] = np.asarray(parts[len(parts) - dim :], dtype=np.float32)
            except ValueError as exc:
                raise TextlstmError(f"model.vectors: {path} line {number}: {exc}") from exc
            if is_exact:
                exact.add(index)
    if dim is None:
        raise TextlstmError(f"model.vectors: {path} holds no vectors")
    return found, dim


def token_counts(split, vocab_size: int) -> np.ndarray:
    """How often each token id occurs in a tokenized split (from the Arrow column)."""
    column = split.with_format("arrow")["input_ids"]
    ids = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    return np.bincount(ids.values.to_numpy(zero_copy_only=False), minlength=vocab_size)


def apply_vectors(model, tokenizer, model_cfg, train_split) -> str:
    """Write the found vectors into `model.embedding`; returns the coverage line to print."""
    import torch

    vocab = tokenizer.get_vocab()
    # WordPiece continuation pieces ("##ing") are not words: never match them.
    words = {token: i for token, i in vocab.items() if not token.startswith("##")}
    found, dim = read_vectors(model_cfg.vectors, words, tokenizer.normalizer.normalize_str)
    if dim != model_cfg.emb_dim:
        raise TextlstmError(
            f"model.vectors: {model_cfg.vectors} has {dim}-dimensional vectors but "
            f"model.emb_dim is {model_cfg.emb_dim}; add --set model.emb_dim={dim}"
        )
    weight = model.embedding.weight
    rows = torch.tensor(sorted(found), dtype=torch.long)
    real = len(vocab) - 2  # [PAD] and [UNK] are never looked up
    counts = token_counts(train_split, weight.shape[0])
    covered = counts[rows.numpy()].sum() / max(counts.sum(), 1) if len(rows) else 0.0
    line = (
        f"vectors: {len(found):,} of {real:,} vocabulary entries ({len(found) / max(real, 1):.1%})"
        f" found in {model_cfg.vectors}, covering {covered:.1%} of training tokens"
    )
    if not found:
        return line + "; nothing to load"
    with torch.no_grad():
        pretrained = torch.from_numpy(np.stack([found[i] for i in rows.tolist()]))
        random_rows = torch.ones(weight.shape[0], dtype=torch.bool)
        random_rows[rows] = False
        random_rows[PAD_ID] = False  # stays zero
        if random_rows.sum() > 1:
            weight[random_rows] *= pretrained.std() / weight[random_rows].std().clamp(min=1e-8)
        weight[rows.to(weight.device)] = pretrained.to(weight.device, weight.dtype)
    if model_cfg.freeze_vectors:
        trainable = torch.ones(weight.shape[0], 1, device=weight.device)
        trainable[rows.to(weight.device)] = 0.0
        weight.register_hook(lambda grad: grad * trainable.to(grad.dtype))
        line += "; those rows are frozen"
    return line
