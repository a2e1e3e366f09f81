"""Ablation sweep: train one preset with variations over several seeds, select on validation.

    python bench/sweep.py --config configs/sms_spam.toml --seeds 0 1 2 \
        --variant base= --variant "wd0.1=train.weight_decay=0.1" --out sweep.jsonl

Each `--variant NAME=KEY=VALUE[,KEY=VALUE...]` is trained once per seed (in this process,
one after another). A row per run goes to `--out` (JSON lines) with the best epoch's
validation metrics and, for the record only, the test metrics of that same checkpoint.
The summary table ranks variants by mean validation macro-F1 (then validation loss):
choices are made on validation, never on test. The test columns are printed so that the
cost of a choice can be seen afterwards, not to make it.

`--holdout` scores a stratified tenth of the train split instead of test (a second
validation, drawn with HOLDOUT_SEED, for a choice the validation split cannot judge:
`train.refit` trains on it). The run trains on the other nine tenths; the "test" keys
and columns then hold the held-out scores, and the row says `"scored": "holdout"`. A run
with `train.refit` also records `first_test_accuracy` / `first_test_macro_f1`: the first
run's scores on the same split, read just before the refit replaces its weights (that
first run is the run without refit: tests/test_refit.py).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, sets = text.partition("=")
    return name, [s for s in sets.split(",") if s]


HOLDOUT_SEED = 1234


def holdout_view(source: str, folder: Path) -> Path:
    """`source`'s train split cut into nine tenths (train) and a stratified tenth (test);
    its validation split and labels.json as they are. The test split is never read."""
    import shutil

    import pandas as pd
    from sklearn.model_selection import train_test_split

    train = pd.read_parquet(Path(source) / "train.parquet")
    kept, held = train_test_split(
        train, test_size=0.1, random_state=HOLDOUT_SEED, stratify=train.label
    )
    folder.mkdir(parents=True)
    kept.to_parquet(folder / "train.parquet", index=False)
    held.to_parquet(folder / "test.parquet", index=False)
    for name in ("labels.json", "validation.parquet"):
        if (Path(source) / name).is_file():
            shutil.copy(Path(source) / name, folder / name)
    return folder


def run_one(config_path, overrides, seed):
    import torch

    from textlstm import config
    from textlstm.evaluate import evaluate_split

    def score(model, prepared):
        return evaluate_split(
            model, prepared.splits["test"], prepared.label_names, torch.device("cpu"),
            prepared.task, 256, "fp32",
        )  # fmt: skip

    cfg = config.build(config_path, (*overrides, f"train.seed={seed}"))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        result, first = fit_scoring_first(cfg, Path(tmp) / "run", score)
        seconds = time.time() - started
        row = {"seed": seed, "train_s": seconds, **{f"val_{k}": v for k, v in best(result)}}
        if "test" in result.prepared.splits:
            rep = score(result.model, result.prepared)
            row.update(test_accuracy=rep["accuracy"], test_macro_f1=rep["macro_f1"])
            row["test_f1_per_class"] = [c["f1"] for c in rep["per_class"].values()]
            if first:
                row.update(
                    first_test_accuracy=first["accuracy"], first_test_macro_f1=first["macro_f1"]
                )
    return row


def fit_scoring_first(cfg, run_dir: Path, score):
    """`training.fit`, and with `train.refit` also `score(model, prepared)` of the first run's
    model, loaded on the CPU from its bundle just before the refit replaces its weights (that
    first run is the run without refit: tests/test_refit.py). Returns (result, first report
    or None); nothing is scored where the data has no test split."""
    from textlstm import checkpoint, training

    first, refit = {}, training.refit

    def scored_refit(cfg, prep, run_dir, *args):
        if "test" in prep.splits:
            first["report"] = score(checkpoint.load_model(run_dir, "cpu")[0], prep)
        return refit(cfg, prep, run_dir, *args)

    training.refit = scored_refit
    try:
        result = training.fit(cfg, run_dir)
    finally:
        training.refit = refit
    return result, first.get("report")


def best(result):
    b = result.best
    return [
        ("accuracy", b["val_accuracy"]),
        ("macro_f1", b["val_macro_f1"]),
        ("loss", b["val_loss"]),
        ("epoch", b["epoch"]),
    ]


def summarise(rows):
    def stat(key):
        values = [r[key] for r in rows if key in r]
        if not values:
            return float("nan"), float("nan")
        return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    return {
        k: stat(k)
        for k in (
            "val_macro_f1",
            "val_accuracy",
            "val_loss",
            "test_accuracy",
            "test_macro_f1",
            "train_s",
        )
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variant", action="append", default=[], help="NAME=KEY=VALUE[,KEY=VALUE]")
    ap.add_argument("--set", action="append", default=[], help="applied to every variant")
    ap.add_argument("--out", default="sweep.jsonl")
    ap.add_argument("--holdout", action="store_true", help="score a tenth of train, not test")
    args = ap.parse_args()
    variants = [parse_variant(v) for v in args.variant] or [("base", [])]
    results, views = {}, tempfile.TemporaryDirectory()
    if args.holdout:  # data.source=DIR among --set: its train split, cut (holdout_view)
        sources = [s for s in args.set if s.startswith("data.source=")]
        if not sources:
            sys.exit("--holdout needs --set data.source=DIR (a folder with train.parquet)")
        view = holdout_view(sources[-1].partition("=")[2], Path(views.name) / "view")
        args.set = [s for s in args.set if s not in sources] + [f"data.source={view}"]
    with open(args.out, "a", encoding="utf-8") as out:
        for name, sets in variants:
            for seed in args.seeds:
                row = {"variant": name, "sets": sets, **run_one(args.config, args.set + sets, seed)}
                if args.holdout:
                    row["scored"] = "holdout"
                out.write(json.dumps(row) + "\n")
                out.flush()
                results.setdefault(name, []).append(row)
                print(json.dumps(row), file=sys.stderr)
    table = sorted(results.items(), key=lambda kv: -summarise(kv[1])["val_macro_f1"][0])
    print("| variant | val macro-F1 | val acc | val loss | test acc | test macro-F1 | s/run |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in table:
        s = summarise(rows)
        cells = [
            f"{s[k][0] * 100:.2f} ± {s[k][1] * 100:.2f}" for k in ("val_macro_f1", "val_accuracy")
        ]
        cells.append(f"{s['val_loss'][0]:.4f}")
        cells += [
            f"{s[k][0] * 100:.2f} ± {s[k][1] * 100:.2f}" for k in ("test_accuracy", "test_macro_f1")
        ]
        cells.append(f"{s['train_s'][0]:.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
