"""bench/accuracy.py's SST-2 validation: whole sentences, with none of their phrases left
in train (else validation would read the training set back)."""

import sys

import pandas as pd
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from accuracy import sentence_validation  # noqa: E402


def test_sst2_validation_holds_whole_sentences_and_train_none_of_their_phrases():
    sentences = [f"the film number {i} is a quiet , moving and well acted drama" for i in range(8)]
    rows = []
    for i, s in enumerate(sentences):  # each sentence with some of its parsed sub-phrases
        words = s.split()
        rows += [(s, i % 2), (" ".join(words[:4]), i % 2), (" ".join(words[5:]), i % 2)]
    rows += [("an unrelated short phrase", 0), ("moving", 1)]
    train = pd.DataFrame(rows, columns=["text", "label"])

    kept, held = sentence_validation(train, n=3, seed=0)
    assert len(held) == 3 and set(held.text) <= set(sentences)  # maximal texts only
    for sentence in held.text:
        assert not any(t in sentence for t in kept.text), "a held-out phrase stayed in train"
    assert "an unrelated short phrase" in set(kept.text)
    assert set(kept.text) | set(held.text) | {
        t for t in train.text if any(t in s for s in held.text)
    } == set(train.text)
