"""Training and inference speed: textbook recipe vs textlstm vs the hardware's ceiling.

    .venv/bin/python bench/speed.py --dataset sst2 [--device cpu|cuda] [--subsample N]
        [--rounds 3] [--seconds S | --steps K] [--tta] [--out result.json] [--quick]

Rows, same model shape (embedding 128, 256 units each way, 2 layers, bidirectional), same
data, same device, one process (bench/speed_rows.py says what each does):
  (a) textbook   fixed-length padding to 256, random batches of 64, fp32, nn.LSTM
  (b) textlstm   `textlstm.training.fit`, the product's loop and loader, one epoch per round,
                 with its preset: configs/gpu.toml on CUDA, the defaults (or --config) on CPU
  (c) ceiling    the product's model, forward + backward + optimizer step only, on
                 synthetic on-device tensors with (b)'s exact batch shapes
The rows alternate in rounds, in the order b a c, then c a b, and so on: (b) trains one
epoch, (a) and (c) run for as long as (b)'s last epoch took (or --seconds / --steps), so a
busy machine slows all rows alike; ratios are the result, absolute numbers move with the
load. With two or more rounds the first is a warm-up (kernel selection, allocator, oneDNN
primitive caches) and left out of the table; 3 rounds leave a b-a-c / c-a-b pair.

Counted: real tokens (not padding) per second of training; padded tokens per second;
peak memory (GPU: max allocated; CPU: process RSS); tokenization separately (the
product's `prepare`: load + train the tokenizer + tokenize; and pure `encode` speed).
Then batch inference texts/s (evaluate's batched forward; classify's numpy and torch
engines; `textlstm classify --file` as a new process) and, with --tta, the training time
until test accuracy reaches --tta-target (IMDB, 90%: the issue's GPU goal).

Prints a Markdown report; --out FILE also writes everything as JSON (--json: JSON to stdout).
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from speed_data import REPO, SHAPE, data_folder, find_dataset, read_split, run_config, tokenize
from speed_rows import Ceiling, PeakMemory, Textbook, product_shapes, run_slice, sync

from textlstm import config
from textlstm.tokenizer import prepare, save_preprocessed
from textlstm.training import fit, pick_device


def options(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dataset",
        default="sst2",
        help="sst2, imdb (looked up in .bench-data/, then ../shared/data/) or any dataset folder",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--config", help="(b)'s preset; default configs/gpu.toml on CUDA, none on CPU")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="extra section.key=value for (b) (and (c)), e.g. train.max_tokens=4096",
    )
    p.add_argument("--subsample", type=int, default=0, help="train texts (0: all)")
    p.add_argument("--eval-texts", type=int, default=500, help="validation texts (b) scores")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=0.0, help="per (a)/(c) slice; 0: as (b)")
    p.add_argument("--steps", type=int, default=0, help="per (a)/(c) slice instead of seconds")
    p.add_argument("--infer-texts", type=int, default=2000)
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default, one per core)",
    )
    p.add_argument("--tta", action="store_true", help="also measure time to --tta-target")
    p.add_argument("--tta-target", type=float, default=0.90)
    p.add_argument("--tta-epochs", type=int, default=8)
    p.add_argument("--tta-eval-texts", type=int, default=0, help="test texts scored (0: all)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny model and data: checks every path in seconds (tests)",
    )
    p.add_argument("--out", help="write the JSON result here")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    p.add_argument("--workdir", help="keep data folders and runs here (default: temp, removed)")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.subsample = opts.subsample or 200
        opts.eval_texts, opts.rounds = min(opts.eval_texts, 100), 1
        opts.threads = opts.threads or 1  # a 2-thread tiny model crawls on a busy machine
        opts.steps = opts.steps or 3
        opts.infer_texts, opts.tta_epochs = min(opts.infer_texts, 100), min(opts.tta_epochs, 2)
        opts.tta_eval_texts = opts.tta_eval_texts or 200
    return opts


def product_epoch(cfg, run_dir: Path) -> dict:
    """One epoch of (b): `fit` as `textlstm train` runs it; its own tokens/s (train steps
    only: validation and saving are outside its clock)."""
    fit(cfg, run_dir, overwrite=True)
    row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    return {"seconds": row["epoch_s"], "real": row["tokens_per_s"] * row["epoch_s"]}


def training_rows(opts, device, work: Path, result: dict) -> Path:
    src = find_dataset(opts.dataset)
    folder = data_folder(
        src, work / "data", opts.subsample, opts.eval_texts, ("validation", "test")
    )
    prep, ids, result["tokenization"] = tokenize(folder, work / "prep")
    cfg, preset = run_config(opts, device, work / "prep", ["train.epochs=1", "train.patience=0"])
    result["preset"], result["config"] = preset, cfg.as_dict()
    train = prep.splits["train"]
    vocab, classes = prep.tokenizer.get_vocab_size(), len(prep.label_names)
    shapes = product_shapes(train["length"], cfg.train)
    b_padded = sum(
        len(s) * -(-int(s.max()) // cfg.train.pad_multiple) * cfg.train.pad_multiple for s in shapes
    )
    shape = {k: getattr(cfg.model, k) for k in SHAPE}
    rows = {
        "a": Textbook(ids, train["label"], vocab, classes, shape, device),
        "c": Ceiling(cfg.model, cfg.train, vocab, classes, shapes, device),
    }
    for row in rows.values():  # first-call costs (kernel choice, allocator) out of the clock
        row.step()
    memory = {k: PeakMemory(device) for k in "abc"}
    rounds, slice_s = [], opts.seconds
    for r in range(opts.rounds):
        # b, a, c then c, a, b: a load that rises or falls through a pair of rounds hits
        # (b) and (c) alike. A slice lasts as long as (b)'s last epoch, unless --seconds.
        measured = {}
        for key in "bac" if r % 2 == 0 else "cab":
            with memory[key]:
                if key == "b":
                    b = product_epoch(cfg, work / f"run{r}")
                    measured["b"] = {**b, "padded": b_padded, "steps": len(shapes)}
                    slice_s = opts.seconds or b["seconds"]
                else:
                    measured[key] = run_slice(rows[key], device, slice_s, opts.steps)
        rounds.append(measured)
        say(
            f"round {r + 1}/{opts.rounds}: "
            + ", ".join(
                f"({k}) {m['real'] / m['seconds']:,.0f} tok/s" for k, m in sorted(measured.items())
            )
        )
    counted = rounds[1:] if len(rounds) > 1 else rounds
    table = {}
    for key in "abc":
        total = {f: sum(m[key][f] for m in counted) for f in ("seconds", "real", "padded", "steps")}
        table[key] = {
            **total,
            "real_tokens_per_s": total["real"] / total["seconds"],
            "padded_tokens_per_s": total["padded"] / total["seconds"],
            "padding": 1 - total["real"] / total["padded"],
            "peak_memory_mb": memory[key].peak_mb,
        }
    result["rows"], result["per_round"] = table, rounds
    result["b_over_a"] = table["b"]["real_tokens_per_s"] / table["a"]["real_tokens_per_s"]
    result["b_over_c"] = table["b"]["real_tokens_per_s"] / table["c"]["real_tokens_per_s"]
    return work / f"run{opts.rounds - 1}", cfg.train


def inference(opts, device, run_dir: Path, tc, work: Path, result: dict) -> None:
    """texts/s of evaluate's batched forward and of classify's engines, on (b)'s model."""
    from textlstm import checkpoint
    from textlstm.evaluate import evaluate_split
    from textlstm.predict import Predictor
    from textlstm.task import task_of
    from textlstm.tokenizer import tokenize_splits

    table = read_split(find_dataset(opts.dataset), ("train",))
    texts = table.column("text").to_pylist()[: opts.infer_texts]
    labels = table.column("label").to_pylist()[: opts.infer_texts]
    model, saved, names = checkpoint.load_model(run_dir, device)
    rates = {}

    def timed(name, fn, where):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        rates[name] = {"texts_per_s": len(texts) / (time.perf_counter() - start), "device": where}

    import datasets

    split = datasets.Dataset.from_dict({"text": texts, "label": labels})
    data = config.from_dict(saved).data
    tok = checkpoint.load_tokenizer(run_dir)
    timed(
        "evaluate (tokenize + batched forward, torch)",
        lambda: evaluate_split(
            model,
            tokenize_splits(split, tok, data),
            names,
            device,
            task_of(saved),
            tc.eval_batch_size,
            tc.precision,
        ),
        str(device),
    )
    numpy_engine = Predictor(run_dir, "numpy")
    timed("classify, numpy engine (in process)", lambda: numpy_engine.probabilities(texts), "cpu")
    torch_engine = Predictor(run_dir, "torch", str(device))
    timed(
        "classify, torch engine (in process)",
        lambda: torch_engine.probabilities(texts),
        str(device),
    )
    text_file = work / "texts.txt"
    text_file.write_text("".join(t.replace("\n", " ").replace("\r", " ") + "\n" for t in texts))
    command = [
        sys.executable,
        "-m",
        "textlstm",
        "classify",
        "--checkpoint",
        str(run_dir),
        "--file",
        str(text_file),
        "--output",
        str(work / "preds.txt"),
    ]
    # The repo on the child's path too: on the GPU machine textlstm is not pip-installed.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    timed(
        "`textlstm classify --file` (new process, numpy engine)",
        lambda: subprocess.run(command, check=True, capture_output=True, env=env),
        "cpu",
    )
    result["inference"] = {"texts": len(texts), "rates": rates}


def time_to_accuracy(opts, device, work: Path, result: dict) -> None:
    """Train (b)'s preset on all of train, score the test split each epoch, and report the
    training seconds (epochs' step time, validation excluded) until accuracy >= target.

    The test split sits in the bench's data folder as the validation split: it decides
    nothing but when the clock stops (the bundle's 'best epoch' is a by-product)."""
    src = find_dataset(opts.dataset)
    folder = data_folder(
        src, work / "tta-data", opts.subsample, opts.tta_eval_texts, ("test", "validation")
    )
    cfg, preset = run_config(
        opts,
        device,
        work / "tta-prep",
        [f"train.epochs={opts.tta_epochs}", "train.patience=0", "train.metric=accuracy"],
    )
    prep_start = time.perf_counter()  # the preset's data settings (max_len, truncation) apply
    prepared = prepare(dataclasses.replace(cfg.data, source=str(folder)), cfg.train.seed)
    save_preprocessed(prepared, work / "tta-prep")
    prep_s = time.perf_counter() - prep_start
    start = time.perf_counter()
    fit(cfg, work / "tta-run", overwrite=True)
    wall = time.perf_counter() - start
    epochs = [
        json.loads(x) for x in (work / "tta-run" / "metrics.jsonl").read_text().split("\n") if x
    ]
    clock, reached = 0.0, None
    for e in epochs:
        clock += e["epoch_s"]
        e["train_s_cumulative"] = clock
        if reached is None and e["val_accuracy"] >= opts.tta_target:
            reached = e
    result["time_to_accuracy"] = {
        "target": opts.tta_target,
        "preset": preset,
        "tokenize_s": prep_s,
        "fit_wall_s": wall,
        "reached": reached is not None,
        "train_s": reached["train_s_cumulative"] if reached else None,
        "epoch": reached["epoch"] if reached else None,
        "best_accuracy": max(e["val_accuracy"] for e in epochs),
        "epochs": epochs,
    }


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv=None) -> dict:
    threads = torch.get_num_threads()
    try:
        return measure(options(argv), argv)
    finally:  # callers in the same process (tests) keep their own setting
        torch.set_num_threads(threads)


def measure(opts, argv) -> dict:
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = pick_device(opts.device)
    work = Path(opts.workdir) if opts.workdir else Path(tempfile.mkdtemp(prefix="textlstm-speed-"))
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bench/speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "dataset": opts.dataset,
        "device": str(device),
        "machine": machine(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": opts.quick,
        "rounds": opts.rounds,
    }
    if device.type == "cuda":
        result["cudnn"] = torch.backends.cudnn.version()
    try:
        run_dir, tc = training_rows(opts, device, work, result)
        inference(opts, device, run_dir, tc, work, result)
        if opts.tta:
            time_to_accuracy(opts, device, work, result)
    finally:
        if not opts.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if opts.out:
        Path(opts.out).write_text(json.dumps(result, indent=2) + "\n")
    from speed_report import markdown

    print(json.dumps(result, indent=2) if opts.json else markdown(result))
    return result


def machine(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
