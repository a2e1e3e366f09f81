"""Peak memory and speed at scale: streaming classify, preprocess, one training epoch.

    .venv/bin/python bench/scale.py classify --n 1000000 [--checkpoint DIR]
    .venv/bin/python bench/scale.py memory --factors 1 10

Every measurement runs the real `textlstm` CLI in a child process; its peak RSS is that
child's own `ru_maxrss` (from `os.wait4`), so the numbers include Python, numpy, torch
and datasets as a user would see them. Corpora are synthesised by repeating the bundled
SMS texts (same length distribution at every size). Without `--checkpoint`, `classify`
first trains a tiny model (emb 16, hidden 16, 2 layers, 1 epoch): it measures the
streaming machinery and the numpy engine's per-text overhead, not a big model's FLOPs.
Prints Markdown rows for docs/BENCHMARKS.md ("Scale").
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
SMS = REPO / "data" / "sms_spam"
TINY = ["model.emb_dim=16", "model.hidden_dim=16", "model.num_layers=2", "data.vocab_size=3000"]


def measure(*args: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `textlstm ARGS` in a child process."""
    command = [sys.executable, "-m", "textlstm", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.exit(f"failed: {' '.join(command)}\n{child.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def sets(items):
    return [a for item in items for a in ("--set", item)]


def repeated(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    reps = -(-n // len(frame))
    return pd.concat([frame] * reps, ignore_index=True).head(n)


def bench_classify(args, work: Path) -> None:
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = str(work / "tiny")
        measure("train", "--out", checkpoint, *sets(TINY + ["train.epochs=1", "train.test=false"]))
    texts = pd.read_parquet(SMS / "train.parquet")[["text"]]
    print("| input | output | texts | seconds | texts/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for n in sorted({args.n // 10, args.n}):
        frame = repeated(texts, n)
        sources = {"parquet": work / f"in{n}.parquet", "txt": work / f"in{n}.txt"}
        frame.to_parquet(sources["parquet"], row_group_size=65536)
        # One text per line: newlines inside an SMS would split it, so flatten them.
        sources["txt"].write_text("\n".join(frame.text.str.replace("\n", " ")) + "\n")
        for kind, out in (("parquet", "preds.parquet"), ("txt", "preds.jsonl")):
            seconds, rss = measure(
                "classify",
                "--checkpoint",
                checkpoint,
                "--file",
                str(sources[kind]),
                "--output",
                str(work / out),
                "--batch-size",
                str(args.batch_size),
            )
            print(
                f"| {kind} | {out.split('.')[1]} | {n:,} | {seconds:.1f} | "
                f"{n / seconds:,.0f} | {rss:.0f} |",
                flush=True,
            )


def bench_memory(args, work: Path) -> None:
    splits = {s: pd.read_parquet(SMS / f"{s}.parquet") for s in ("train", "validation")}
    print("| data | train texts | step | seconds | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for factor in args.factors:
        folder = work / f"x{factor}"
        folder.mkdir()
        repeated(splits["train"], factor * len(splits["train"])).to_parquet(
            folder / "train.parquet"
        )
        splits["validation"].to_parquet(folder / "validation.parquet")
        (folder / "labels.json").write_text((SMS / "labels.json").read_text())
        n = factor * len(splits["train"])
        prep = work / f"prep{factor}"
        seconds, rss = measure("preprocess", "--data", str(folder), "--out", str(prep), *sets(TINY))
        print(f"| {factor}x SMS | {n:,} | preprocess | {seconds:.1f} | {rss:.0f} |", flush=True)
        seconds, rss = measure(
            "train",
            "--data",
            str(prep),
            "--out",
            str(work / f"run{factor}"),
            *sets(TINY + ["train.epochs=1", "train.test=false"]),
        )
        print(
            f"| {factor}x SMS | {n:,} | train 1 epoch (+ validation) | {seconds:.1f} | {rss:.0f} |",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("classify")
    c.add_argument("--n", type=int, default=1_000_000)
    c.add_argument("--checkpoint")
    c.add_argument("--batch-size", type=int, default=512)
    m = sub.add_parser("memory")
    m.add_argument("--factors", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    print(
        f"<!-- {' '.join(sys.argv)} | {datetime.datetime.now():%Y-%m-%d %H:%M} | "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f} -->"
    )
    with tempfile.TemporaryDirectory(prefix="textlstm-scale-") as work:
        (bench_classify if args.what == "classify" else bench_memory)(args, Path(work))


if __name__ == "__main__":
    main()
