"""Pretrained word vectors: rows set, coverage reported, frozen rows unchanged by training."""

import re

import numpy as np
import pytest
import torch
from conftest import tiny_config

from textlstm import TextlstmError
from textlstm.model import TextLSTM
from textlstm.tokenizer import PAD_ID
from textlstm.training import fit
from textlstm.vectors import apply_vectors, read_vectors, token_counts

WORDS = ["free", "call", "the", "you", "prize", "txt", "zzzunseenword"]


def write_vectors(path, words, dim=16, header=True, seed=0):
    rng = np.random.default_rng(seed)
    table = {w: rng.normal(0, 0.4, dim).astype(np.float32) for w in words}
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [w + " " + " ".join(f"{x:.6f}" for x in v) for w, v in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {w: np.array([float(f"{x:.6f}") for x in v], dtype=np.float32) for w, v in table.items()}


def test_reading_glove_without_header_and_case_folding(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("The 1 2 3\nthe 4 5 6\nNew York 7 8 9\nrun 1 1 1\n", encoding="utf-8")
    vocab = {"[PAD]": 0, "[UNK]": 1, "the": 2, "new york": 3, "walk": 4}
    found, dim = read_vectors(path, vocab, str.lower)
    assert dim == 3 and sorted(found) == [2, 3]
    np.testing.assert_array_equal(found[2], [4, 5, 6])  # the exact "the" beats "The"
    np.testing.assert_array_equal(found[3], [7, 8, 9])  # a word with a space (GloVe 840B)
    path.write_text("2 3\nthe 1 2\n", encoding="utf-8")
    with pytest.raises(TextlstmError, match="line 2 has 2 numbers, expected 3"):
        read_vectors(path, vocab, str.lower)


def test_rows_set_and_coverage_and_dimension_check(tiny_run, tmp_path):
    prep = tiny_run.prepared
    path = tmp_path / "vecs.vec"
    table = write_vectors(path, WORDS + ["FREE"])  # "FREE" folds to "free"; exact one wins
    cfg = tiny_config(f"model.vectors={path}").model
    model = TextLSTM(cfg, prep.tokenizer.get_vocab_size(), 2, PAD_ID)
    line = apply_vectors(model, prep.tokenizer, cfg, prep.splits["train"])
    vocab = prep.tokenizer.get_vocab()
    known = [w for w in WORDS if w in vocab]
    assert len(known) == 6 and "zzzunseenword" not in vocab
    for word in known:
        np.testing.assert_array_equal(model.embedding.weight[vocab[word]].detach(), table[word])
    assert model.embedding.weight[PAD_ID].abs().sum() == 0
    counts = token_counts(prep.splits["train"], len(vocab))
    expected_tokens = sum(counts[vocab[w]] for w in known) / counts.sum()
    match = re.search(r"vectors: (\d+) of ([\d,]+) .*\(([\d.]+)%\).* covering ([\d.]+)%", line)
    assert match and int(match[1]) == 6
    assert int(match[2].replace(",", "")) == len(vocab) - 2
    assert float(match[3]) == pytest.approx(100 * 6 / (len(vocab) - 2), abs=0.051)
    assert float(match[4]) == pytest.approx(100 * expected_tokens, abs=0.051)
    assert expected_tokens > 0.03  # six frequent SMS words: ~4% of training tokens
    wrong = tiny_config(f"model.vectors={path}", "model.emb_dim=8").model
    with pytest.raises(TextlstmError, match="16-dimensional vectors but model.emb_dim is 8"):
        apply_vectors(TextLSTM(wrong, len(vocab), 2), prep.tokenizer, wrong, prep.splits["train"])


def test_frozen_rows_stay_unchanged_while_others_train(tmp_path, capsys, monkeypatch):
    import textlstm.vectors

    path = tmp_path / "vecs.vec"
    table = write_vectors(path, WORDS)
    cfg = tiny_config(
        f"model.vectors={path}", "model.freeze_vectors=true", "train.epochs=1", "train.test=false"
    )
    initial = {}

    def spy(model, *args):  # record the embedding as training starts
        line = apply_vectors(model, *args)
        initial["weight"] = model.embedding.weight.detach().cpu().clone()
        return line

    monkeypatch.setattr(textlstm.vectors, "apply_vectors", spy)
    result = fit(cfg, tmp_path / "run")
    assert "those rows are frozen" in capsys.readouterr().err
    vocab = result.prepared.tokenizer.get_vocab()
    after = result.model.embedding.weight.detach().cpu()
    rows = [vocab[w] for w in WORDS if w in vocab]
    for word in WORDS[:-1]:
        np.testing.assert_array_equal(after[vocab[word]], table[word])
    others = torch.ones(len(after), dtype=torch.bool)
    others[rows] = False
    others[PAD_ID] = False
    changed = (after[others] != initial["weight"][others]).any(dim=1).float().mean()
    assert changed > 0.5  # the rest of the embedding did learn


def test_freeze_without_vectors_is_an_error():
    with pytest.raises(TextlstmError, match="freeze_vectors needs model.vectors"):
        tiny_config("model.freeze_vectors=true").model.check()
