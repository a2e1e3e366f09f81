"""In-domain language-model pretraining against the same model from scratch, same splits.

    python bench/pretrain.py --dataset ag_news --seeds 0 1 2
    python bench/pretrain.py --dataset sst2 --variant plain --variant ulmfit
    python bench/pretrain.py --dataset imdb --quick --unsup 7000 --pretrain-set pretrain.epochs=2

Splits are those of bench/accuracy.py (make_view: the AG News carve, SST-2's sentence
validation, IMDB quick subsamples). The encoder is pretrained once (train.seed=0) on the
view's training texts, plus the first --unsup reviews of IMDB's unsup.parquet; then each
variant is fine-tuned from it with each seed, next to a from-scratch run with the same
config. Variants (fine-tuning aids, chosen on validation):
- plain: the dataset's preset (or the defaults), started from the encoder;
- discriminative: plus discriminative rates alone (train.layer_lr_decay=2.6);
- ulmfit: plus discriminative rates (train.layer_lr_decay=2.6), gradual unfreezing
  (train.unfreeze=1) and a slanted triangular schedule (linear, 10% warm-up).
Every run's numbers go to --json as they finish (one line each); the table at the end
holds validation (what decides) and the evaluation split (the final report). With
`train.refit` (the default) each row also holds `first_accuracy`: the evaluation split
read from the first run's chosen epoch, before its refit.

`--pretrained DIR` reuses the language model in DIR as it is, or makes it there when DIR
does not exist yet (so it outlives the run); `--pretrain-only` stops once it is saved.
"""

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from accuracy import DATASETS, dataset_root, make_view, write_into  # noqa: E402
from sweep import fit_scoring_first  # noqa: E402

VARIANTS = {
    "plain": (),
    "discriminative": ("train.layer_lr_decay=2.6",),
    "ulmfit": (
        "train.layer_lr_decay=2.6",
        "train.unfreeze=1",
        "train.schedule=linear",
        "train.warmup_ratio=0.1",
    ),
}


def base_config(name: str, seed: int, extra):
    from textlstm import config

    preset = REPO / "configs" / f"{name}.toml"
    return config.build(str(preset) if preset.exists() else None, (f"train.seed={seed}", *extra))


def run_fit(cfg, view: Path, run_dir: Path) -> dict:
    from textlstm.evaluate import evaluate_split

    def score(model, prepared):
        device = next(model.parameters()).device
        split = prepared.splits["test"]
        return evaluate_split(
            model, split, prepared.label_names, device, prepared.task, cfg.train.eval_batch_size
        )

    cfg.data.source = str(view)
    started = time.time()
    result, first = fit_scoring_first(cfg, run_dir, score)
    seconds = time.time() - started
    report = score(result.model, result.prepared)
    return {
        **(
            {"first_accuracy": first["accuracy"], "first_macro_f1": first["macro_f1"]}
            if first
            else {}
        ),
        "val_accuracy": result.best["val_accuracy"],
        "val_macro_f1": result.best["val_macro_f1"],
        "val_loss": result.best["val_loss"],
        "epoch": result.best["epoch"],
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "train_s": seconds,
    }


def pct(values) -> str:
    if len(values) == 1:
        return f"{values[0] * 100:.2f}"
    return f"{statistics.mean(values) * 100:.2f} ± {statistics.stdev(values) * 100:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=list(DATASETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="bench/accuracy.py's subsamples")
    ap.add_argument("--variant", action="append", choices=list(VARIANTS), help="default: plain")
    ap.add_argument("--no-scratch", action="store_true", help="skip the from-scratch runs")
    ap.add_argument("--unsup", type=int, default=0, help="imdb: also pretrain on N unsup texts")
    ap.add_argument("--pretrained", help="reuse this pretraining (same view), or make it here")
    ap.add_argument("--pretrain-only", action="store_true", help="stop once it is saved")
    ap.add_argument("--set", action="append", default=[], help="override for every run")
    ap.add_argument("--pretrain-set", action="append", default=[], help="override, pretraining")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--json", help="append every run's numbers here")
    ap.add_argument("--write", help="put the table into this markdown file (between markers)")
    ap.add_argument("--block", help="name of the table in --write")
    args = ap.parse_args()

    import torch

    from textlstm.pretraining import pretrain

    if args.threads:
        torch.set_num_threads(args.threads)
    variants = args.variant or ["plain"]
    tmp = Path(tempfile.mkdtemp(prefix="textlstm-pretrain-bench-"))
    view = make_view(args.dataset, dataset_root(args.dataset, Path(args.shared)), args.quick, tmp)
    unlabeled = []
    if args.unsup:
        import pandas as pd

        unsup = pd.read_parquet(Path(args.shared) / "imdb" / "unsup.parquet").head(args.unsup)
        unsup[["text"]].to_parquet(tmp / "unsup.parquet")
        unlabeled = [str(tmp / "unsup.parquet")]

    def record(row: dict) -> None:
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    # -- pretrain once ---------------------------------------------------------------
    cfg = base_config(args.dataset, 0, [*args.set, *args.pretrain_set])
    cfg.data.source = str(view)
    encoder = Path(args.pretrained) if args.pretrained else tmp / "pretrained"
    reused = encoder.exists()  # a folder that is there is taken as it is
    started = time.time()
    if not reused:
        pretrain(cfg, encoder, unlabeled)
    rows = [json.loads(line) for line in (encoder / "metrics.jsonl").open()]
    best = json.loads((encoder / "metrics.json").read_text())
    pre_row = {
        "dataset": args.dataset,
        "run": "pretrain",
        "texts": best["texts"],
        "seconds": sum(r["epoch_s"] for r in rows) if reused else time.time() - started,
        "epochs": len(rows),
        "heldout_ppl": best["heldout_ppl"],
        "tokens_per_s": statistics.mean(r["tokens_per_s"] for r in rows),
    }
    record(pre_row)
    if args.pretrain_only:
        return

    # -- fine-tune each variant, and from scratch, per seed --------------------------
    runs = {}
    systems = ([] if args.no_scratch else ["scratch"]) + variants
    for seed in args.seeds:
        for system in systems:
            extra = [*args.set] + ([] if system == "scratch" else [*VARIANTS[system]])
            cfg = base_config(args.dataset, seed, extra)
            if system != "scratch":
                cfg.model.init_from = str(encoder)
            result = run_fit(cfg, view, tmp / f"{system}-{seed}")
            record({"dataset": args.dataset, "run": system, "seed": seed, **result})
            runs.setdefault(system, []).append(result)

    # -- the table --------------------------------------------------------------------
    eval_split = DATASETS[args.dataset][1]
    command = "python bench/pretrain.py " + " ".join(sys.argv[1:])
    lines = [
        f"{datetime.date.today()}, CPU, torch threads {torch.get_num_threads()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}; seeds "
        f"{' '.join(map(str, args.seeds))}; pretraining: {pre_row['texts']:,} texts, "
        f"{pre_row['epochs']} epochs, {pre_row['seconds'] / 60:.1f} min, "
        f"{pre_row['tokens_per_s']:,.0f} tokens/s, held-out perplexity "
        f"{pre_row['heldout_ppl']:.1f}.",
        "",
        f"    {command}",
        "",
        f"| {args.dataset} | val macro-F1 % | val acc % | {eval_split} acc %, first run | "
        f"{eval_split} acc % | {eval_split} macro-F1 % | epochs picked | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system, results in runs.items():
        name = "from scratch" if system == "scratch" else f"pretrained, {system}"
        first = [r["first_accuracy"] for r in results if "first_accuracy" in r]
        lines.append(
            f"| {name} | {pct([r['val_macro_f1'] for r in results])} "
            f"| {pct([r['val_accuracy'] for r in results])} "
            f"| {pct(first) if len(first) == len(results) else '– (no refit)'} "
            f"| {pct([r['accuracy'] for r in results])} "
            f"| {pct([r['macro_f1'] for r in results])} "
            f"| {', '.join(str(r['epoch']) for r in results)} "
            f"| {statistics.mean(r['train_s'] for r in results):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        write_into(Path(args.write), text, args.block or f"pretrain {args.dataset}")


if __name__ == "__main__":
    main()
