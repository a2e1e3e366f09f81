"""The training loop, top to bottom in `fit`: one function, a comment per phase.

AdamW with decoupled weight decay on matrices only; cross-entropy (optional label
smoothing); gradient clipping by global norm; linear warm-up then cosine or linear
decay; validation every epoch; the best epoch (by `train.metric`) is what the bundle
holds; early stopping after `patience` epochs without improvement.

Host-device syncs are marked `# sync:`. The step itself has none: the loss is summed on
the device and read every `log_every` steps, token counts come from CPU-side lengths.

Stopping: SIGINT / SIGTERM let the current step finish, then `train_state.pt` is written
with the position inside the epoch, and `textlstm train --resume RUN_DIR` continues
from exactly there (same batches, same RNG streams).
"""

import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from textlstm import TextlstmError, checkpoint, distributed, guards, multilabel, tblog
from textlstm.averaging import WeightAverage
from textlstm.batching import column_array, loader
from textlstm.imbalance import SAMPLERS, loss_weights, parse_class_weights, train_sampler
from textlstm.model import TextLSTM
from textlstm.tokenizer import PAD_ID


@dataclass
class TrainConfig:
    """Optimisation and run control (section `train`)."""

    epochs: int = 10  # epochs at most; early stopping may end the run sooner
    batch_size: int = 64  # texts per batch (an upper bound when max_tokens is set)
    max_tokens: int = 0  # > 0: batches of at most this many padded tokens (GPU)
    lr: float = 2e-3  # AdamW learning rate, reached after warm-up
    weight_decay: float = 0.01  # AdamW (decoupled), on weight matrices only
    warmup_ratio: float = 0.05  # share of all steps spent ramping the LR up from 0
    schedule: str = "cosine"  # after warm-up: "cosine" | "linear" | "constant"
    clip_norm: float = 1.0  # global gradient-norm clip; 0 disables
    label_smoothing: float = 0.0  # cross-entropy label smoothing (single-label runs)
    ema: float = 0.0  # > 0: validate and save a moving average of the weights (averaging.py)
    class_weights: str = "none"  # "none" | "balanced" (n / (k * count)) | "[w0, w1, ...]"
    sampler: str = "bucket"  # "bucket" | "balanced" (equal share of each class per epoch)
    metric: str = "macro_f1"  # picks the best epoch: "macro_f1" | "accuracy" | "loss"
    patience: int = 3  # epochs without improvement before stopping early; 0 = never
    seed: int = 0  # seeds Python, numpy and torch (--seed)
    device: str = "auto"  # "auto" (CUDA when present) | "cpu" | "cuda" | "cuda:N"
    precision: str = "fp32"  # "fp32" | "bf16" (autocast)
    pad_multiple: int = 1  # round batch width up to this (8/16 helps GPU kernels)
    workers: int = 0  # DataLoader processes building batches ahead of the GPU
    log_every: int = 20  # steps between progress updates (each is one host sync)
    eval_batch_size: int = 256  # texts per batch in validation and evaluation
    test: bool = True  # after training, report on the test split when there is one
    max_nonfinite: int = 10  # stop after this many consecutive non-finite steps; 0 = never
    deterministic: bool = False  # deterministic kernels on GPU (see guards.set_deterministic)
    tensorboard: bool = False  # also write TensorBoard events to <run>/tb (see tblog.py)

    def check(self) -> None:
        if self.metric not in ("macro_f1", "accuracy", "loss"):
            raise TextlstmError("train.metric must be macro_f1, accuracy or loss")
        if self.schedule not in ("cosine", "linear", "constant"):
            raise TextlstmError("train.schedule must be cosine, linear or constant")
        parse_class_weights(self.class_weights)
        if self.sampler not in SAMPLERS:
            raise TextlstmError(f"train.sampler must be one of {', '.join(SAMPLERS)}")
        if self.precision not in ("fp32", "bf16"):
            raise TextlstmError("train.precision must be fp32 or bf16")
        if self.epochs < 1 or self.batch_size < 1 or self.log_every < 1:
            raise TextlstmError("train.epochs, batch_size and log_every must be at least 1")
        if self.max_nonfinite < 0:
            raise TextlstmError("train.max_nonfinite must be 0 (never stop) or more")
        if not 0.0 <= self.ema < 1.0:
            raise TextlstmError("train.ema must be 0 (off) or a decay below 1, e.g. 0.999")


class Interrupted(Exception):
    """Training stopped by a signal after saving a resumable state."""

    def __init__(self, signum: int, run_dir: Path):
        super().__init__(signum, run_dir)
        self.signum, self.run_dir = signum, run_dir
        self.exit_code = 128 + signum


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TextlstmError(f"--device {name}: no CUDA GPU is available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise TextlstmError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    warmup = int(cfg.warmup_ratio * total)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress


def better(value: float, best: float | None, metric: str) -> bool:
    return best is None or (value < best if metric == "loss" else value > best)


@dataclass
class FitResult:
    run_dir: Path
    model: TextLSTM
    prepared: object  # tokenizer.Prepared
    best: dict


def fit(cfg, run_dir: Path | None = None, resume: bool = False, overwrite: bool = False):
    """Train per `cfg` (a config.RunConfig) into `run_dir`; returns the best model."""
    tc = cfg.train
    tc.check()
    device = distributed.setup(pick_device(tc.device))  # under torchrun: join the group
    guards.set_deterministic(tc.deterministic, device)  # also sets cudnn.benchmark
    main = distributed.is_main()  # only rank 0 prints and writes files
    say = lambda msg: main and print(msg, file=sys.stderr, flush=True)  # noqa: E731

    # -- run directory: never silently clobber a finished run --------------------------
    run_dir = checkpoint.open_run_dir(run_dir, cfg.data.source, resume, overwrite)

    # -- data: load, check, tokenize (the tokenizer is the run's own on resume) -----------
    guards.seed_everything(tc.seed)
    tokenizer = checkpoint.load_tokenizer(run_dir) if resume else None
    prep = distributed.prepare(cfg.data, tc.seed, tokenizer)
    cfg.data = prep.data
    for note in prep.notes:
        say(note if note.startswith("warning:") else f"note: {note}")
    train_split, val_split = prep.splits["train"], prep.splits["validation"]
    say(
        f"data: {len(train_split)} train / {len(val_split)} validation"
        + (f" / {len(prep.splits['test'])} test" if "test" in prep.splits else "")
        + f" texts, {len(prep.label_names)} classes, vocab {prep.tokenizer.get_vocab_size()}"
    )

    multi = prep.data.multi_label  # sigmoid outputs and BCE; see multilabel.py
    if multi and (tc.class_weights != "none" or tc.sampler != "bucket"):
        raise TextlstmError("train.class_weights and train.sampler apply to single-label data")
    if multi and distributed.active():
        raise TextlstmError("multi-label data trains in one process only (no --nproc/torchrun)")
    class_weight = None if multi else loss_weights(
        tc.class_weights, column_array(train_split, "label"), prep.label_names)  # fmt: skip
    if class_weight is not None:  # rare classes count more in the loss
        say(f"class weights: {', '.join(f'{w:.3g}' for w in class_weight)}")
        class_weight = torch.tensor(class_weight, dtype=torch.float32, device=device)

    # -- model, optimiser, schedule ------------------------------------------------------
    vocab = prep.tokenizer.get_vocab_size()
    model = TextLSTM(cfg.model, vocab, len(prep.label_names), PAD_ID).to(device)
    if cfg.model.vectors:  # pretrained word vectors into the embedding rows they cover
        from textlstm.vectors import apply_vectors

        say(apply_vectors(model, prep.tokenizer, cfg.model, train_split))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embedding" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay}],
        lr=tc.lr,
        weight_decay=0.0,
        fused=True,  # skips a non-finite step on the device (guards.NonFiniteGuard)
    )
    guard = guards.NonFiniteGuard(device, tc.max_nonfinite)
    sampler = train_sampler(train_split, tc, distributed.rank(), distributed.world_size())
    total_steps = tc.epochs * len(sampler.batches(0))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, tc)
    )
    batches = loader(train_split, sampler, PAD_ID, tc.workers, pin_memory=device.type == "cuda")
    config = checkpoint.bundle_config(cfg.data, cfg.model, tc, vocab, prep.label_names)
    if main:
        checkpoint.start_bundle(run_dir, config, prep.tokenizer, prep.label_names)
    net = distributed.wrap(model, device)  # DDP under torchrun; `model` holds the weights
    say(f"model: {sum(p.numel() for p in model.parameters()):,} parameters on {device}"
        + (f", {distributed.world_size()} processes" if distributed.active() else ""))  # fmt: skip

    # -- resume: weights, optimiser, schedule, RNG streams, position --------------------
    start_epoch, skip, step, best, stale = 0, 0, 0, None, 0
    if resume:
        state = checkpoint.load_train_state(run_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch, skip, step = state["epoch"], state["batches_done"], state["step"]
        best, stale = state["best"], state["stale"]
        guard.skipped += state.get("nonfinite_steps", 0)
        guards.restore_rng_state(state)
        say(f"resuming {run_dir} at epoch {start_epoch + 1}, batch {skip}, step {step}")
        if main:  # a crash after an epoch's row, before its state: that epoch runs again
            checkpoint.keep_metrics_rows(run_dir, start_epoch)

    average = WeightAverage(model, tc.ema) if tc.ema else None  # starts from the live weights
    if average and resume and "average" in state:
        average.load_state_dict(state["average"])
    scored = average.model if average else model  # what validation scores and the bundle holds

    def save_state(epoch: int, batches_done: int) -> None:
        if not main:
            return
        checkpoint.save_train_state(
            run_dir,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "epoch": epoch,
                "batches_done": batches_done,
                "step": step,
                "best": best,
                "stale": stale,
                "nonfinite_steps": int(guard.skipped),  # sync: only when saving
                **({"average": average.state_dict()} if average else {}),
                **guards.rng_state(),
            },
        )

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum  # acted on between steps, never inside one

    writer = tblog.open_writer(run_dir, resume, step) if tc.tensorboard and main else None
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for epoch in range(start_epoch, tc.epochs):
            # -- one epoch of training steps -------------------------------------------------
            net.train()
            sampler.set_epoch(epoch, skip)
            guard.new_epoch()
            done, loss_sum, tokens, started = skip, torch.zeros((), device=device), 0, time.time()
            logged = (0.0, 0)  # loss sum and texts at the last log step (TensorBoard)
            bar = tqdm(
                total=len(sampler.batches(epoch)), initial=skip, unit="batch", leave=False,
                desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not (main and sys.stderr.isatty()),
            )  # fmt: skip
            for batch in batches:
                tokens += int(batch["lengths"].sum())  # CPU tensor: no device sync
                ids = batch["input_ids"].to(device, non_blocking=True)
                lengths = batch["lengths"].to(device, non_blocking=True)
                labels = batch["labels"].to(device, non_blocking=True)
                with torch.autocast(device.type, torch.bfloat16, enabled=tc.precision == "bf16"):
                    logits = net(ids, lengths)
                if multi:
                    loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
                else:
                    loss = F.cross_entropy(
                        logits.float(), labels, class_weight, label_smoothing=tc.label_smoothing
                    )
                optimizer.zero_grad(set_to_none=True)
                # DDP: the gradient of the whole global batch's mean loss (see distributed.py)
                (loss * distributed.loss_scale(len(labels), sampler.global_size(done))).backward()
                norm = guards.grad_norm(model.parameters(), tc.clip_norm)
                keep = guard.check(optimizer, loss.detach(), norm, len(labels))
                optimizer.step()  # a no-op when the guard flagged the step
                schedule.step()
                if average:
                    average.update(model)
                loss_sum += torch.where(keep > 0, loss.detach(), 0.0) * len(labels)
                done += 1
                step += 1
                bar.update(1)
                if done % tc.log_every == 0:
                    avg, skipped = guard.read(loss_sum, step, run_dir)  # sync: every log_every
                    if writer is not None:  # mean loss since the previous log step
                        total, seen = avg * guard.kept_texts, guard.kept_texts
                        window = (total - logged[0]) / max(seen - logged[1], 1)
                        tblog.log_step(writer, step, window, schedule.get_last_lr()[0])
                        logged = (total, seen)
                    rate = tokens / max(time.time() - started, 1e-9)
                    bar.set_postfix(loss=f"{avg:.4f}", tok_s=f"{rate:,.0f}", skipped=skipped)
                if distributed.active() and done % tc.log_every:
                    continue  # DDP: ranks agree on stopping every log_every steps only
                if distributed.any_rank(stop["signal"] is not None):  # sync: DDP only
                    save_state(epoch, done)
                    raise Interrupted(stop["signal"] or signal.SIGTERM, run_dir)
            bar.close()
            skip = 0
            # sync: end of epoch, before the clock stops, so queued GPU work is counted
            train_loss, skipped = guard.read(loss_sum, step, run_dir)
            elapsed = time.time() - started
            if skipped:
                say(f"warning: {skipped} steps so far skipped for a non-finite loss or gradient")
            if distributed.active():  # sync: DDP only, the epoch's loss over all ranks' texts
                kept = guard.kept_texts  # read with the loss just above: no extra sync
                total, kept, tokens = distributed.sum_all(train_loss * kept, kept, tokens)
                train_loss = total / max(kept, 1)

            # -- validation, metrics.jsonl, best bundle, early stopping -------------------
            report = distributed.evaluate(
                scored, val_split, prep.label_names, device, tc.eval_batch_size, tc.precision
            )
            row = {
                "epoch": epoch + 1, "step": step, "train_loss": train_loss,
                "val_loss": report["loss"], "val_accuracy": report["accuracy"],
                "val_macro_f1": report["macro_f1"], "lr": schedule.get_last_lr()[0],
                "tokens_per_s": tokens / max(elapsed, 1e-9), "epoch_s": elapsed,
                "nonfinite_steps": skipped,
            }  # fmt: skip
            if multi:
                row["val_micro_f1"] = report["micro_f1"]
            if main:
                with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
            if writer is not None:
                tblog.log_epoch(writer, row)
            value = report[tc.metric]
            improved = better(value, best, tc.metric)
            say(
                f"epoch {epoch + 1}/{tc.epochs}  train loss {train_loss:.4f}  val loss "
                f"{report['loss']:.4f}  val acc {report['accuracy']:.4f}  val macro-F1 "
                f"{report['macro_f1']:.4f}  {row['tokens_per_s']:,.0f} tok/s  {elapsed:.1f}s"
                + ("  *best" if improved else "")
            )
            if improved:
                best, stale = value, 0
                metrics = {"epoch": epoch + 1, "step": step, "metric": tc.metric, **row}
                if main:
                    checkpoint.save_best(run_dir, scored, metrics)
            else:
                stale += 1
            save_state(epoch + 1, 0)
            if tc.patience and stale >= tc.patience:
                say(f"early stop: no {tc.metric} improvement for {stale} epochs")
                break
            if distributed.any_rank(stop["signal"] is not None):
                raise Interrupted(stop["signal"] or signal.SIGTERM, run_dir)
        distributed.barrier()  # rank 0 has written the best weights
    except guards.OOM_ERRORS as exc:  # evaluation raises its own message (evaluate.py)
        settings = {"train.max_tokens": tc.max_tokens, "train.batch_size": tc.batch_size}
        raise guards.oom_error(exc, "training", settings) from exc
    finally:
        if writer is not None:
            writer.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        distributed.teardown()

    # -- the result is the best epoch's weights --------------------------------------------
    best_model, _, _ = checkpoint.load_model(run_dir, device)
    if multi and main:
        thresholds = multilabel.tune_on_validation(run_dir, best_model, val_split,
            prep.label_names, device, tc.eval_batch_size, tc.precision)  # fmt: skip
        say("thresholds tuned on validation: " + ", ".join(
            f"{n} {t:.3f}" for n, t in zip(prep.label_names, thresholds, strict=True)))  # fmt: skip
    if main:
        checkpoint.point_latest(run_dir)
    return FitResult(run_dir, best_model, prep, json.loads((run_dir / "metrics.json").read_text()))
