"""Text -> token ids: a `tokenizers` tokenizer trained on the train split only.

Two vocabularies, chosen with `data.tokenizer`:
- `word` (default): one id per word, anything unseen is `[UNK]`. Fewer tokens (faster),
  lines up with pretrained word vectors, and reproducible: the same data gives the same
  vocabulary and ids in every process.
- `wordpiece`: words split into subword pieces, so an unseen word still maps to known
  pieces (misspellings, "fr33", names). Costs a few more tokens per text. Not
  bit-reproducible: `tokenizers` breaks ties between equally frequent merges in a
  per-process hash order, so two processes can learn slightly different vocabularies
  (measured: 6,889 vs 6,890 pieces on SMS spam). A run's own tokenizer.json is always
  reused by --resume, evaluate and classify, so this only matters between runs.
  On SMS spam the two are tied on validation (docs/BENCHMARKS.md).

Both lower-case (configurable), normalise Unicode (NFKC), drop control characters and
split punctuation. `data.digits = "zero"` writes every digit as 0, so "0871 246 0324"
and "0800 123 4567" share tokens: the model learns "a phone number" rather than memorising
each number (which a word vocabulary would otherwise map to `[UNK]`). The normaliser is
saved in tokenizer.json, so classify applies it too. Ids 0 and 1 are always `[PAD]` and `[UNK]`.

Truncation keeps `max_len` tokens: the head, or head and tail (`data.truncation =
"head+tail"`, useful for reviews whose verdict comes last). Texts are cut to a bounded
number of characters *before* tokenizing, so a 1,000,000-character input costs no more
than a long one. An empty text becomes a single `[UNK]`: the model is defined for every
input (see docs/USAGE.md, "Classify", "Empty input").

Only `tokenizers` is imported here (fast); `datasets` is needed by the functions that
take `Dataset`s and is imported there.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

from textlstm import TextlstmError, __version__, distributed, files
from textlstm.checkpoint import PAD, PAD_ID, UNK, UNK_ID
from textlstm.config import DataConfig
from textlstm.data import PREPROCESSED_MARKER, load_raw
from textlstm.ngrams import BAG_CHARS
from textlstm.task import SingleLabel, task_of

# No token we keep spans more than this many characters on average, so cutting the text
# at max_len * CHARS_PER_TOKEN characters first never changes which tokens are kept in
# practice, and bounds the work on huge inputs.
CHARS_PER_TOKEN = 32


def build_tokenizer(cfg: DataConfig) -> tuple[Tokenizer, trainers.Trainer]:
    if cfg.tokenizer == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=UNK, max_input_chars_per_word=64))
        trainer = trainers.WordPieceTrainer(
            vocab_size=cfg.vocab_size,
            min_frequency=cfg.min_frequency,
            special_tokens=[PAD, UNK],
            show_progress=False,
        )
    elif cfg.tokenizer == "word":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        trainer = trainers.WordLevelTrainer(
            vocab_size=cfg.vocab_size,
            min_frequency=cfg.min_frequency,
            special_tokens=[PAD, UNK],
            show_progress=False,
        )
    else:
        raise TextlstmError(f"data.tokenizer must be 'wordpiece' or 'word', not {cfg.tokenizer!r}")
    steps = [normalizers.NFKC(), normalizers.BertNormalizer(lowercase=cfg.lowercase)]
    if cfg.digits == "zero":
        steps.append(normalizers.Replace(Regex(r"\d"), "0"))
    elif cfg.digits != "keep":
        raise TextlstmError(f"data.digits must be 'keep' or 'zero', not {cfg.digits!r}")
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok, trainer


def train_tokenizer(train_split, cfg: DataConfig) -> Tokenizer:
    """Learn the vocabulary from the train split's texts (never from validation/test)."""
    tok, trainer = build_tokenizer(cfg)

    def batches(size=2000):
        for start in range(0, len(train_split), size):
            yield train_split[start : start + size]["text"]

    tok.train_from_iterator(batches(), trainer=trainer, length=len(train_split))
    assert tok.token_to_id(PAD) == PAD_ID and tok.token_to_id(UNK) == UNK_ID
    return tok


def clip_text(text: str, max_len: int, truncation: str) -> str:
    """`text` cut to the characters that can hold `max_len` tokens, as valid UTF-8 (a lone
    surrogate, e.g. from a non-UTF-8 byte in a command-line argument, is replaced)."""
    limit = max_len * CHARS_PER_TOKEN
    if len(text) > limit:
        half = limit // 2
        text = text[:half] + " " + text[-half:] if truncation == "head+tail" else text[:limit]
    if not text.isascii():  # bytes escaped by Python's argv decoding first, then the rest
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def encode(tok: Tokenizer, texts: list[str], max_len: int, truncation: str = "head"):
    """Token ids for each text, at most `max_len`, never empty."""
    check_truncation(truncation)
    encodings = tok.encode_batch([clip_text(t, max_len, truncation) for t in texts])
    return [cut(enc.ids or [UNK_ID], max_len, truncation) for enc in encodings]


def encode_with_bag(tok: Tokenizer, texts: list[str], max_len: int, truncation: str = "head"):
    """(ids exactly as `encode` gives them, the ids of the whole text) for a model with an
    n-gram bag. Each text is tokenized once, up to ngrams.BAG_CHARS characters; the few
    longer than `encode`'s own character cut are encoded again for the LSTM, so turning
    the bag on never changes what the LSTM reads."""
    check_truncation(truncation)
    limit = BAG_CHARS // CHARS_PER_TOKEN
    clipped = [clip_text(t, limit, "head") for t in texts]
    whole = [enc.ids or [UNK_ID] for enc in tok.encode_batch(clipped)]
    ids = [cut(w, max_len, truncation) for w in whole]
    longer = [i for i, t in enumerate(texts) if len(t) > min(max_len * CHARS_PER_TOKEN, BAG_CHARS)]
    if longer:
        again = encode(tok, [texts[i] for i in longer], max_len, truncation)
        for i, row in zip(longer, again, strict=True):
            ids[i] = row
    return ids, whole


def check_truncation(truncation: str) -> None:
    if truncation not in ("head", "head+tail"):
        raise TextlstmError(f"data.truncation must be 'head' or 'head+tail', not {truncation!r}")


def cut(ids: list[int], max_len: int, truncation: str) -> list[int]:
    """At most `max_len` ids: the head, or the first half and the last tokens."""
    if len(ids) <= max_len:
        return ids
    if truncation == "head+tail":
        head = (max_len + 1) // 2
        return ids[:head] + ids[len(ids) - (max_len - head) :]
    return ids[:max_len]


def tokenize_splits(splits, tok: Tokenizer, cfg: DataConfig, bag: bool = False):
    """Add `input_ids` and `length` with `Dataset.map` (cached by datasets); with `bag`,
    also `bag_ids`, the whole text's ids for the n-gram branch (`model.ngrams`).

    `splits` is a `Dataset` or `DatasetDict` with columns text and label.
    """
    import datasets

    first = splits if isinstance(splits, datasets.Dataset) else next(iter(splits.values()))
    ids_feature = datasets.Sequence(datasets.Value("int32"))
    features = {
        "text": datasets.Value("string"),
        "label": first.features["label"],  # an id, or a 0/1 row (multi-label)
        "input_ids": ids_feature,
        "length": datasets.Value("int32"),
    }
    if bag:
        features["bag_ids"] = ids_feature

    def add_ids(batch):
        if not bag:
            ids = encode(tok, batch["text"], cfg.max_len, cfg.truncation)
            return {"input_ids": ids, "length": [len(i) for i in ids]}
        ids, whole = encode_with_bag(tok, batch["text"], cfg.max_len, cfg.truncation)
        return {"input_ids": ids, "length": [len(i) for i in ids], "bag_ids": whole}

    return splits.map(
        add_ids,
        batched=True,
        batch_size=1000,
        features=datasets.Features(features),
        desc="tokenizing",
    )


@dataclass
class Prepared:
    """Tokenized splits and everything needed to rebuild them for new text."""

    splits: object  # DatasetDict: text, label, input_ids, length
    tokenizer: Tokenizer
    label_names: list[str]
    data: DataConfig
    task: SingleLabel  # single- or multi-label (task.py)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        sizes = " / ".join(
            f"{len(self.splits[s])} {s}"
            for s in ("train", "validation", "test")
            if s in self.splits
        )
        return (
            f"data: {sizes} texts, {len(self.label_names)} classes, "
            f"vocab {self.tokenizer.get_vocab_size()}"
        )


def prepare(
    cfg: DataConfig, seed: int = 0, tokenizer: Tokenizer | None = None, bag: bool = False
) -> Prepared:
    """Load `cfg.source` and tokenize it, or reuse a `textlstm preprocess` folder as is.

    `tokenizer` (a resumed run's own) is used instead of training a new one; `bag` keeps
    each text's whole ids for an n-gram branch.
    """
    source = Path(cfg.source).expanduser()
    if (source / PREPROCESSED_MARKER).is_file():
        return load_preprocessed(source, cfg, bag)
    raw = load_raw(cfg, seed)
    tok = tokenizer or train_tokenizer(raw.splits["train"], cfg)
    splits = tokenize_splits(raw.splits, tok, cfg, bag)
    notes = raw.notes + cut_note(splits["train"]["length"], cfg, bag)
    return Prepared(splits, tok, raw.label_names, cfg, raw.task, notes)


def cut_note(lengths, cfg: DataConfig, bag: bool) -> list[str]:
    """A note when more than 5% of the training texts reach data.max_len (their tail is
    cut), naming what reads more of them; none when the n-gram bag already does."""
    cut = sum(1 for n in lengths if n >= cfg.max_len)
    if bag or not lengths or cut <= 0.05 * len(lengths):
        return []
    return [
        f"{cut / len(lengths):.0%} of the training texts reach data.max_len={cfg.max_len} "
        f"tokens and lose the rest ({cfg.truncation!r} kept); model.ngrams=2 (the default's bag "
        "of the whole text: the largest gain measured on long documents), "
        "data.truncation=head+tail or a larger data.max_len read more of them"
    ]


def prepare_shared(cfg: DataConfig, seed: int, tokenizer=None, bag: bool = False) -> Prepared:
    """`prepare` on every rank of a torchrun job, with rank 0's tokenizer (the wordpiece
    trainer is not bit-reproducible, and ranks must agree on every id); rank 0 fills the
    caches first. One process: `prepare` itself."""
    if not distributed.active() or tokenizer is not None:
        return prepare(cfg, seed, tokenizer, bag)
    prep = prepare(cfg, seed, bag=bag) if distributed.is_main() else None
    text = distributed.share(prep.tokenizer.to_str() if prep else None)
    return prep if prep is not None else prepare(cfg, seed, Tokenizer.from_str(text), bag)


def save_preprocessed(prep: Prepared, out: Path) -> None:
    """Write a `textlstm preprocess` folder into `out`, which must be new or empty (nothing
    of the user's is overwritten); the marker file comes last, so a folder cut short by a
    crash is never taken for a complete one."""
    files.make_folder(files.new_or_empty(out))
    prep.splits.save_to_disk(str(out / "splits"))
    files.atomic_write(out / "tokenizer.json", prep.tokenizer.to_str().encode())
    files.write_json(out / "labels.json", prep.label_names)
    meta = {
        "textlstm_version": __version__,
        "task": prep.task.name,
        "data": asdict(prep.data),
        "notes": prep.notes,
    }
    files.write_json(out / PREPROCESSED_MARKER, meta)


def load_preprocessed(folder: Path, requested: DataConfig, bag: bool = False) -> Prepared:
    """Reuse tokenizer and tokenized splits; their tokenizer settings win over `requested`."""
    import datasets

    meta = json.loads((folder / PREPROCESSED_MARKER).read_text())
    legacy = meta["data"].get("multi_label")  # before `task` was saved, this said it
    run_task = task_of({"task": meta.get("task") or ("multi_label" if legacy else None)})
    saved = DataConfig(**{k: v for k, v in meta["data"].items() if k != "multi_label"})
    notes = list(meta.get("notes", []))
    notes.append(f"using the tokenizer and tokenized splits preprocessed in {folder}")
    for name in (
        "tokenizer",
        "vocab_size",
        "min_frequency",
        "lowercase",
        "digits",
        "max_len",
        "truncation",
    ):
        if getattr(requested, name) != getattr(DataConfig(), name) and getattr(
            requested, name
        ) != getattr(saved, name):
            notes.append(
                f"data.{name}={getattr(requested, name)!r} ignored: the preprocessed data "
                f"used {getattr(saved, name)!r} (run preprocess again to change it)"
            )
    saved.source = str(folder)
    splits = datasets.load_from_disk(str(folder / "splits"))
    if bag and "bag_ids" not in splits["train"].column_names:
        raise TextlstmError(
            f"{folder} was preprocessed without the whole texts' ids an n-gram branch reads: "
            "run preprocess again with the same --set model.ngrams=N"
        )
    return Prepared(
        splits=splits,
        tokenizer=Tokenizer.from_file(str(folder / "tokenizer.json")),
        label_names=json.loads((folder / "labels.json").read_text()),
        data=saved,
        task=run_task,
        notes=notes,
    )
