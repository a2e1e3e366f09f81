"""The tokenizer: special ids, round trip, truncation, and inputs that must not break it."""

import time

import pytest
from datasets import Dataset

from textlstm.config import DataConfig
from textlstm.tokenizer import PAD_ID, UNK_ID, encode, train_tokenizer

TEXTS = ["The film was great", "the film was awful", "Great acting, awful plot!"] * 20


@pytest.fixture(scope="module", params=["wordpiece", "word"])
def tok(request):
    cfg = DataConfig(tokenizer=request.param, vocab_size=200, min_frequency=1)
    return train_tokenizer(Dataset.from_dict({"text": TEXTS}), cfg)


def test_special_ids(tok):
    assert tok.token_to_id("[PAD]") == PAD_ID == 0
    assert tok.token_to_id("[UNK]") == UNK_ID == 1


def test_round_trip_lowercases_and_splits_punctuation(tok):
    ids = encode(tok, ["Great acting, awful plot!"], max_len=50)[0]
    assert UNK_ID not in ids
    assert tok.decode(ids).replace(" ##", "") == "great acting , awful plot !"


def test_truncation_head_and_head_tail(tok):
    text = " ".join(["great"] * 10 + ["awful"] * 10)
    head = encode(tok, [text], max_len=6)[0]
    both = encode(tok, [text], max_len=6, truncation="head+tail")[0]
    great, awful = tok.token_to_id("great"), tok.token_to_id("awful")
    assert head == [great] * 6
    assert both == [great] * 3 + [awful] * 3


def test_empty_and_odd_inputs_never_give_empty_ids(tok):
    for text in ["", "   ", "\u202e\u05e9\u05dc\u05d5\u05dd", "🙂🙂", "\x00\x07\x1b"]:
        ids = encode(tok, [text], max_len=8)[0]
        assert 1 <= len(ids) <= 8


def test_huge_text_is_cheap(tok):
    start = time.time()
    ids = encode(tok, ["great " * 200_000], max_len=64)[0]  # 1.2M characters
    assert len(ids) == 64 and time.time() - start < 2


def test_digits_zero_shares_number_tokens_and_survives_save(tmp_path):
    from tokenizers import Tokenizer

    texts = ["call 08712460324 now", "call 09061701461 today", "ring 2 me"] * 5
    cfg = DataConfig(tokenizer="word", vocab_size=100, min_frequency=2, digits="zero")
    tok = train_tokenizer(Dataset.from_dict({"text": texts}), cfg)
    tok.save(str(tmp_path / "tokenizer.json"))
    loaded = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    a, b = (encode(loaded, [t], max_len=8)[0] for t in ["call 07700900123", "call 08001234567"])
    assert a == b and UNK_ID not in a  # an unseen number maps to the shared "00000000000"
    kept = train_tokenizer(Dataset.from_dict({"text": texts}), DataConfig(vocab_size=100))
    assert UNK_ID in encode(kept, ["call 07700900123"], max_len=8)[0]


def test_digits_option_is_checked():
    from textlstm import TextlstmError

    with pytest.raises(TextlstmError, match="data.digits"):
        train_tokenizer(Dataset.from_dict({"text": TEXTS}), DataConfig(digits="drop"))


def test_a_note_says_when_many_training_texts_are_cut():
    from textlstm.config import DataConfig
    from textlstm.tokenizer import cut_note

    cfg = DataConfig(max_len=8)
    note = cut_note([3, 5, 8, 2] * 5, cfg, bag=False)[0]
    assert note.startswith("25% of the training texts") and "model.ngrams=2" in note
    assert cut_note([3, 5, 7, 2] * 5, cfg, bag=False) == []
    assert cut_note([8] * 5, cfg, bag=True) == []  # the bag reads the whole text
