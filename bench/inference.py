"""CPU inference: every engine against the bare forward pass, fp32 and int8, short and long texts.

    .venv/bin/python bench/inference.py --checkpoint RUN --texts FILE.parquet [--n 20000]
        [--threads 2] [--rounds 3] [--out result.json]

RUN is a trained bundle; its int8 twin is written with `textlstm.quantize` into a temporary
folder. FILE holds the texts (column `text`); --accuracy-on a held-out split (`text`,
`label`) for fp32 against int8 accuracy. Rows, all
on the same N texts, in this process unless marked "new process":
  ceiling         the fp32 TextLSTM's forward on the texts' pre-tokenized, length-sorted,
                  pre-padded batches of 128 (no tokenizing, no copying out): the pace of the
                  hardware for this model
  ceiling int8    the same batches through the int8 graph's ONNX Runtime session alone
  <engine> engine  torch, numpy, onnx, onnx (int8): `Predictor(...).probabilities(texts)`:
                  tokenize, bucket, forward, softmax, as classify, embed, serve, the API run
  classify --file (new process)  `textlstm classify --file F --output preds.parquet` with
                  the default engine (and each engine explicitly), start-up included
  cold single text (new process)  `textlstm classify "text"`, median of 3
  warm single text  one `probabilities([text])` call, median of 200
Each throughput row is the best of --rounds (rows alternate within a round, so a busy
machine slows all alike). torch and ONNX Runtime use --threads threads; numpy OpenBLAS one
(as classify sets it). Also: bundle sizes and, with labels, fp32 vs int8 accuracy.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def best_rate(fn, n_texts: int, rounds: int) -> float:
    """Texts per second of `fn()`, best of `rounds`."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return n_texts / min(times)


def ceiling_batches(predictor, texts, batch_size=128):
    """The padded batches Predictor would build, built once, as numpy arrays."""
    return [(ids, lengths, bag) for _, ids, lengths, bag in predictor.batches(texts, batch_size)]


def run_cli(args, env) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "textlstm", *args], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"textlstm {' '.join(args)} failed: {done.stderr[-500:]}")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--texts", required=True, help=".parquet with a text (and label) column")
    ap.add_argument("--n", type=int, default=20000, help="texts (repeated if the file is short)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="also write the results as JSON here")
    ap.add_argument("--accuracy-on", help="a held-out .parquet (text, label): fp32 vs int8")
    args = ap.parse_args()

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as classify sets it, before numpy
    import numpy as np
    import pandas as pd
    import torch

    from textlstm.onnx_engine import Session
    from textlstm.predict import Predictor
    from textlstm.quantize import quantize

    torch.set_num_threads(args.threads)
    frame = pd.read_parquet(args.texts)
    frame = pd.concat([frame] * -(-args.n // len(frame)), ignore_index=True).iloc[: args.n]
    texts = frame.text.tolist()
    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    int8 = quantize(args.checkpoint, tmp / "int8")
    run = Path(args.checkpoint)

    engines = {
        "torch": Predictor(run, "torch"),
        "numpy": Predictor(run, "numpy"),
        "onnx": Predictor(run, "onnx"),
        "onnx (int8)": Predictor(int8["path"]),
    }
    # the same thread count as torch (a Predictor's session takes one per core)
    engines["onnx"].session = Session(
        run, engines["onnx"].config, args.threads, weights=engines["numpy"].weights
    )
    engines["onnx (int8)"].session = Session(
        int8["path"], engines["onnx (int8)"].config, args.threads
    )
    batches = ceiling_batches(engines["torch"], texts)
    model, session = engines["torch"].model, engines["onnx (int8)"].session

    def ceiling():
        with torch.no_grad():
            for ids, lengths, bag in batches:
                model(
                    torch.from_numpy(ids),
                    torch.from_numpy(lengths),
                    None if bag is None else torch.from_numpy(bag),
                )

    def ceiling_int8():
        for ids, lengths, bag in batches:
            session.run(ids, lengths, bag)

    numpy_n = min(len(texts), 2000)  # the numpy engine is slow on big inputs: a subset
    rows = {"ceiling (fp32 torch forward)": [], "ceiling int8 (ONNX Runtime session)": []}
    rows.update({f"{name} engine": [] for name in engines})
    for _ in range(args.rounds):
        rows["ceiling (fp32 torch forward)"].append(best_rate(ceiling, len(texts), 1))
        rows["ceiling int8 (ONNX Runtime session)"].append(best_rate(ceiling_int8, len(texts), 1))
        for name, predictor in engines.items():
            subset = texts[:numpy_n] if name == "numpy" else texts
            rate = best_rate(lambda p=predictor, s=subset: p.probabilities(s), len(subset), 1)
            rows[f"{name} engine"].append(rate)
    result = {name: max(rates) for name, rates in rows.items()}

    # new processes: classify --file (default engine, then each) and one cold text
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    file = tmp / "texts.parquet"
    frame[["text"]].to_parquet(file)
    cli = {}
    for label, bundle, extra in [
        ("classify --file, default engine", run, []),
        ("classify --file --engine torch", run, ["--engine", "torch"]),
        ("classify --file --engine numpy", run, ["--engine", "numpy"]),
        ("classify --file, int8 bundle", int8["path"], []),
    ]:
        seconds = min(
            run_cli(
                [
                    "classify",
                    "--checkpoint",
                    str(bundle),
                    "--file",
                    str(file),
                    "--output",
                    str(tmp / "preds.parquet"),
                    *extra,
                ],
                env,
            )
            for _ in range(2)
        )
        cli[label] = len(texts) / seconds
    cold = {}
    for label, bundle in [("fp32 bundle", run), ("int8 bundle", int8["path"])]:
        cold[label] = statistics.median(
            run_cli(["classify", "--checkpoint", str(bundle), texts[0]], env) for _ in range(3)
        )
    warm = {}
    for name, predictor in engines.items():
        predictor.probabilities([texts[0]])
        times = []
        for i in range(200):
            started = time.perf_counter()
            predictor.probabilities([texts[i % len(texts)]])
            times.append(time.perf_counter() - started)
        warm[name] = statistics.median(times) * 1000

    accuracy = {}
    if args.accuracy_on:
        truth = pd.read_parquet(args.accuracy_on)
        for name in ("torch", "onnx (int8)"):
            probs = engines[name].probabilities(truth.text.tolist())
            accuracy[name] = float((probs.argmax(1) == truth.label.to_numpy()).mean() * 100)

    words = np.mean([len(t.split()) for t in texts])
    print(
        f"\n{len(texts)} texts ({words:.0f} words on average), {args.threads} threads, "
        f"{platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.1f}\n"
    )
    print("| what | texts/s | of ceiling |\n|---|---|---|")
    ceiling_rate = result["ceiling (fp32 torch forward)"]
    for name, rate in {**result, **cli}.items():
        print(f"| {name} | {rate:,.0f} | {rate / ceiling_rate:.2f} |")
    print("\n| single text | fp32 | int8 |\n|---|---|---|")
    print(f"| cold, new process (s) | {cold['fp32 bundle']:.2f} | {cold['int8 bundle']:.2f} |")
    print(
        f"| warm, in process (ms): numpy {warm['numpy']:.2f}, torch {warm['torch']:.2f}, "
        f"onnx {warm['onnx']:.2f} | onnx {warm['onnx (int8)']:.2f} |"
    )
    print(
        f"\nbundle: fp32 {int8['fp32_bytes'] / 1e6:.2f} MB, int8 {int8['int8_bytes'] / 1e6:.2f} "
        f"MB ({int8['fp32_bytes'] / int8['int8_bytes']:.2f}x smaller)"
    )
    if accuracy:
        print(
            f"accuracy on {args.accuracy_on}: fp32 {accuracy['torch']:.2f}, int8 "
            f"{accuracy['onnx (int8)']:.2f}"
        )
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                dict(
                    throughput=result,
                    cli=cli,
                    cold_s=cold,
                    warm_ms=warm,
                    accuracy=accuracy,
                    fp32_bytes=int8["fp32_bytes"],
                    int8_bytes=int8["int8_bytes"],
                    texts=len(texts),
                    threads=args.threads,
                    load=os.getloadavg()[0],
                ),
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
