"""Data for bench/speed.py: the benchmark datasets, subsets of them, and tokenizing once.

Datasets are looked up in `.bench-data/` (copied there for the GPU machine, git-ignored)
and then in `../shared/data/` (the dev machine); their licenses keep them out of the repo.
"""

import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textlstm import config
from textlstm.config import DataConfig
from textlstm.tokenizer import encode, prepare, save_preprocessed

REPO = Path(__file__).resolve().parent.parent
SHAPE = {"emb_dim": 128, "hidden_dim": 256, "num_layers": 2, "bidirectional": True}
QUICK_SHAPE = {"emb_dim": 16, "hidden_dim": 32, "num_layers": 2, "bidirectional": True}
DATA_ROOTS = (REPO / ".bench-data", REPO.parent / "shared" / "data")  # GPU box, then dev box


def find_dataset(name: str) -> Path:
    for root in DATA_ROOTS:
        if (root / name).is_dir():
            return root / name
    if Path(name).is_dir():
        return Path(name)
    raise SystemExit(f"error: dataset {name!r} not found in {', '.join(map(str, DATA_ROOTS))}")


def read_split(folder: Path, names) -> pa.Table | None:
    for name in names:
        if (folder / f"{name}.parquet").is_file():
            return pq.read_table(folder / f"{name}.parquet").select(["text", "label"])
    return None


def data_folder(src: Path, out: Path, train_n: int, eval_n: int, eval_from, seed=0) -> Path:
    """A dataset folder: `train_n` train texts (0: all) and `eval_n` texts of `eval_from`
    (the first split found) as its validation split; reproducible random subsets."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for split, names, n in (("train", ("train",), train_n), ("validation", eval_from, eval_n)):
        table = read_split(src, names)
        if table is None:
            raise SystemExit(f"error: {src} has none of the splits {names}")
        if n and n < table.num_rows:
            table = table.take(np.sort(rng.choice(table.num_rows, n, replace=False)))
        pq.write_table(table, out / f"{split}.parquet")
    if (src / "labels.json").is_file():
        shutil.copy(src / "labels.json", out / "labels.json")
    return out


def tokenize(folder: Path, out: Path) -> tuple:
    """The product's `prepare` (timed) saved for fit to reuse, plus pure encode speed."""
    start = time.perf_counter()
    prep = prepare(DataConfig(source=str(folder)), 0)
    prepare_s = time.perf_counter() - start
    save_preprocessed(prep, out)
    texts = prep.splits["train"]["text"]
    start = time.perf_counter()
    ids = encode(prep.tokenizer, texts, prep.data.max_len, prep.data.truncation)
    encode_s = time.perf_counter() - start
    tokens = sum(map(len, ids))
    info = {
        "prepare_s": prepare_s,
        "train_texts": len(texts),
        "train_tokens": tokens,
        "encode_s": encode_s,
        "encode_texts_per_s": len(texts) / encode_s,
        "mean_tokens_per_text": tokens / len(texts),
    }
    return prep, ids, info


def run_config(opts, device, source: Path, extra=()):
    preset = opts.config or (str(REPO / "configs" / "gpu.toml") if device.type == "cuda" else None)
    shape = QUICK_SHAPE if opts.quick else SHAPE
    # (b) and (c) train the LSTM alone, so both rows do the same work per step: (c) replays
    # no n-gram bag and no adversarial second pass (--set may turn the latter on for (b))
    sets = [f"model.{k}={v}" for k, v in shape.items()] + ["model.ngrams=0", "train.adversarial=0"]
    sets += list(opts.overrides)
    sets += [f"data.source={source}", f"train.device={device}", "train.test=false", *extra]
    cfg = config.build(preset, tuple(sets))
    if cfg.model.ngrams:
        raise SystemExit("bench/speed.py times the LSTM alone: row (c) has no n-gram inputs")
    return cfg, preset
