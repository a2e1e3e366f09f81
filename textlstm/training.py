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
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from textlstm import TextlstmError, __version__, checkpoint, distributed, files, guards, runs, tblog
from textlstm.batching import column_array, loader
from textlstm.config import ENCODER_KEYS, coerce
from textlstm.evaluate import evaluate_split, predict_logits
from textlstm.imbalance import loss_weights, train_sampler
from textlstm.learner import POSITION, Learner, frozen_throughout
from textlstm.model import TextLSTM
from textlstm.refit import train_and_validation, train_epochs
from textlstm.tokenizer import PAD_ID, prepare_shared


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


def better(value: float, best: float | None, metric: str) -> bool:
    """A NaN never becomes the best epoch (its weights would answer nothing)."""
    if math.isnan(value):
        return False
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
    cfg.check()
    device = distributed.setup(pick_device(tc.device))  # under torchrun: join the group
    guards.set_deterministic(tc.deterministic, device)  # also sets cudnn.benchmark
    main = distributed.is_main()  # only rank 0 prints and writes files
    say = lambda msg: main and print(msg, file=sys.stderr, flush=True)  # noqa: E731

    # -- data: load, check, tokenize (the tokenizer is the run's own on resume) -----------
    guards.seed_everything(tc.seed)
    tokenizer, init = checkpoint.load_tokenizer(run_dir) if resume else None, None
    if cfg.model.init_from and not resume:  # a pretrained encoder: its tokenizer and shape
        saved, encoder, tokenizer = checkpoint.load_pretrained(cfg.model.init_from)
        init = (encoder, adopt_encoder(cfg, saved, cfg.model.init_from))
    prep = prepare_shared(cfg.data, tc.seed, tokenizer, bag=cfg.model.ngrams > 0)
    if init and prep.tokenizer.to_str() != tokenizer.to_str():
        raise TextlstmError(
            f"{cfg.data.source} was preprocessed with another tokenizer than the encoder in "
            f"{cfg.model.init_from}: pass the raw data with --init-from"
        )
    if init:
        init[1].extend(pretraining_overlap(saved, cfg, prep.notes))
    cfg.data, task = prep.data, prep.task  # task: single- or multi-label (task.py)
    prep.notes.extend(task.check_training(tc, distributed.world_size()))
    say(f"textlstm {__version__}: effective config\n{cfg.describe()}")
    for note in prep.notes + (init[1] if init else []):
        say(note if note.startswith("warning:") else f"note: {note}")
    train_split, val_split = prep.splits["train"], prep.splits["validation"]
    say(prep.describe())

    # -- model, optimiser, schedule ------------------------------------------------------
    vocab, draws = prep.tokenizer.get_vocab_size(), guards.rng_state()  # draws: for a refit
    model, learner, sampler, batches = build(cfg, prep, train_split, device, init, say)
    guard, schedule = learner.guard, learner.schedule
    say(
        f"model: {sum(p.numel() for p in model.parameters()):,} parameters on {device}"
        + (f", {distributed.world_size()} processes" if distributed.active() else "")
    )

    # -- run folder (once the data loaded), resume state, then the bundle's first files --
    if init and run_dir and Path(run_dir).resolve() == Path(cfg.model.init_from).resolve():
        raise TextlstmError(
            "--out must not be the --init-from folder: the pretraining would be lost"
        )
    run_dir, lock = runs.open_run_dir(run_dir, cfg.data.source, resume, overwrite)
    stop, previous = catch_stop_signals()
    writer, step, best, stale = None, 0, None, 0

    def save_state(epoch: int, batches_done: int) -> None:
        if main:
            numbers = (epoch, batches_done, step, best, stale, int(guard.skipped))  # sync
            position = dict(zip(POSITION, numbers, strict=True))
            checkpoint.save_train_state(run_dir, learner.state(position))

    try:  # from here to the result, the run folder is this process's (runs.lock_run)
        state = checkpoint.load_train_state(run_dir) if resume else {}
        start_epoch, skip, step, best, stale = learner.restore(state, run_dir)
        if resume:
            say(f"resuming {run_dir} at epoch {start_epoch + 1}, batch {skip}, step {step}")
            if main:  # a crash after an epoch's row, before its state: that epoch runs again
                runs.keep_metrics_rows(run_dir, start_epoch)
        if main:  # written only now: a --resume whose state does not fit changes nothing
            config = checkpoint.bundle_config(
                cfg.data, cfg.model, tc, vocab, prep.label_names, task
            )
            checkpoint.start_bundle(run_dir, config, prep.tokenizer, prep.label_names)
        scored = learner.scored  # what validation scores and the bundle holds
        writer = tblog.open_writer(run_dir, resume, step) if tc.tensorboard and main else None
        stopped_early = bool(tc.patience) and stale >= tc.patience  # resumed after the end
        for epoch in range(start_epoch, start_epoch if stopped_early else tc.epochs):
            # -- one epoch of training steps -----------------------------------------
            learner.net.train()
            sampler.set_epoch(epoch, skip)
            guard.new_epoch()
            meter = EpochMeter(device, writer)
            bar = progress_bar(
                len(sampler.batches(epoch)), skip, f"epoch {epoch + 1}/{tc.epochs}", main
            )
            done = skip
            for batch in batches:
                loss, keep = learner.step(batch, sampler.global_size(done))
                meter.add(batch, loss, keep)
                done, step = done + 1, step + 1
                bar.update(1)
                if done % tc.log_every == 0:  # sync: every log_every steps
                    bar.set_postfix(meter.log(guard, step, run_dir, schedule.get_last_lr()[0]))
                if distributed.active() and done % tc.log_every:
                    continue  # DDP: ranks agree on stopping every log_every steps only
                if distributed.any_rank(stop["signal"] is not None):  # sync: DDP only
                    save_state(epoch, done)
                    raise Interrupted(stop["signal"] or signal.SIGTERM, run_dir)
            bar.close()
            skip = 0
            train_loss, skipped, tokens, elapsed = meter.finish(guard, step, run_dir)  # sync
            if skipped:
                say(f"warning: {skipped} steps so far skipped for a non-finite loss or gradient")

            # -- validation, metrics.jsonl, best bundle, early stopping ---------------
            report = evaluate_split(
                scored, val_split, prep.label_names, device, task, tc.eval_batch_size, tc.precision
            )
            lr = schedule.get_last_lr()[0]
            row = epoch_row(epoch + 1, step, train_loss, report, task, lr, tokens, elapsed, skipped)
            if main:
                files.append_jsonl(run_dir / "metrics.jsonl", row)
            if writer is not None:
                tblog.log_epoch(writer, row)
            improved = better(report[tc.metric], best, tc.metric)
            say(epoch_line(row, tc.epochs) + ("  *best" if improved else ""))
            if improved:
                best, stale = report[tc.metric], 0
                if main:
                    metrics = {"epoch": epoch + 1, "step": step, "metric": tc.metric, **row}
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
        if best is None:  # every validation metric was NaN: no epoch was worth keeping
            raise TextlstmError(
                f"no epoch reached a finite validation {tc.metric}; the run "
                "diverged (try a lower train.lr): nothing was saved"
            )

        # -- the result: the best epoch's weights, and what the task keeps beside them --
        best_model, _, _ = checkpoint.load_model(run_dir, device)
        if main:
            logits = partial(
                predict_logits, best_model, val_split, device, tc.eval_batch_size, tc.precision
            )  # called only by a task that needs them
            labels = column_array(val_split, "label")
            message = task.finish(run_dir, labels, logits, prep.label_names)
            if message:
                say(message)
        metrics = json.loads((run_dir / "metrics.json").read_text())

        # -- refit: the chosen epochs again, on train + validation (refit.py) ----------
        if tc.refit:
            best_model, metrics = refit(
                cfg, prep, run_dir, metrics, device, (init, draws), stop, say
            )
        if main:
            runs.point_latest(run_dir)
        return FitResult(run_dir, best_model, prep, metrics)
    except guards.OOM_ERRORS as exc:  # evaluation raises its own message (evaluate.py)
        settings = {"train.max_tokens": tc.max_tokens, "train.batch_size": tc.batch_size}
        raise guards.oom_error(exc, "training", settings) from exc
    finally:
        if writer is not None:
            writer.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        distributed.teardown()
        runs.unlock(lock)


def build(cfg, prep, train_split, device, init, say):
    """(model, Learner, sampler, batches) for `train_split`, the encoder `init` if given."""
    tc = cfg.train
    class_weight = loss_weights(
        tc.class_weights, column_array(train_split, "label"), prep.label_names
    )
    if class_weight is not None:  # rare classes count more in the loss
        say(f"class weights: {', '.join(f'{w:.3g}' for w in class_weight)}")
        class_weight = torch.tensor(class_weight, dtype=torch.float32, device=device)
    vocab = prep.tokenizer.get_vocab_size()
    model = TextLSTM(cfg.model, vocab, len(prep.label_names), PAD_ID).to(device)
    if cfg.model.vectors:  # pretrained word vectors into the embedding rows they cover
        from textlstm.vectors import apply_vectors

        say(apply_vectors(model, prep.tokenizer, cfg.model, train_split))
    if init:  # embedding and LSTM from the language model; the classifier starts fresh
        copied = model.load_encoder(init[0])
        say(f"encoder: {copied:,} weights from {cfg.model.init_from}")
    sampler = train_sampler(train_split, tc, distributed.rank(), distributed.world_size())
    steps = tc.epochs * len(sampler.batches(0))
    learner = Learner(model, prep.task, class_weight, tc, device, steps)
    batches = loader(train_split, sampler, PAD_ID, tc.workers, device.type == "cuda", model.bag)
    for name in frozen_throughout(cfg.model, tc):
        say(f"warning: train.unfreeze={tc.unfreeze} leaves {name} frozen all {tc.epochs} epochs")
    return model, learner, sampler, batches


def refit(cfg, prep, run_dir, metrics, device, start, stop, say):
    """The chosen epochs again on train + validation from the first run's `start`."""
    epochs, split = metrics["epoch"], train_and_validation(prep.splits)
    say(f"refit: {epochs} epochs on train + validation ({len(split):,} texts)")
    init, draws = start
    if cfg.model.init_from and not init:  # a resumed run: the encoder is read again
        init = (checkpoint.load_pretrained(cfg.model.init_from)[1], [])
    guards.restore_rng_state(draws)  # the first run's initial weights and draws
    _, learner, sampler, batches = build(cfg, prep, split, device, init, lambda _: None)
    model = train_epochs(learner, sampler, batches, epochs, run_dir, stop, say)
    if model is None:
        raise Interrupted(stop["signal"] or signal.SIGTERM, run_dir)
    metrics = {**metrics, "refit_epochs": epochs, "refit_texts": len(split)}
    if distributed.is_main():
        checkpoint.save_best(run_dir, model, metrics)
    distributed.barrier()
    return model, metrics


def pretraining_overlap(saved: dict, cfg, notes: list[str]) -> list[str]:
    """A warning when this run carves its validation from train otherwise than the
    pretraining did (`saved`: its config.json): the encoder then read (not the labels of)
    some of the texts that validation scores."""
    if not any(note.startswith("no validation split") for note in notes):
        return []
    then = (saved["data"]["source"], saved["train"]["seed"], saved["data"]["validation_fraction"])
    now = (cfg.data.source, cfg.train.seed, cfg.data.validation_fraction)
    same_source = Path(then[0]).expanduser().resolve() == Path(now[0]).expanduser().resolve()
    if same_source and then[1:] == now[1:]:
        return []
    return [
        f"warning: the encoder was pretrained on {then[0]}'s train split as carved with seed "
        f"{then[1]} and validation_fraction {then[2]}; this run carves with {now[1]} and "
        f"{now[2]}, so the encoder has read some validation texts (validation reads high)"
    ]


def adopt_encoder(cfg, saved: dict, where) -> list[str]:
    """Make `cfg` use the encoder settings of a pretrained folder's config.json (`saved`).

    A setting left at its default takes the pretrained value (a note says so); one set to
    anything else is refused with one line, since the weights could not mean the same.
    """
    notes = []
    for section, keys in ENCODER_KEYS.items():
        values, defaults = getattr(cfg, section), type(getattr(cfg, section))()
        for key in keys:
            mine, theirs = getattr(values, key), saved.get(section, {}).get(key)
            if theirs is None or mine == theirs:
                continue
            if mine != getattr(defaults, key):
                raise TextlstmError(
                    f"{section}.{key}={mine!r} does not fit the encoder pretrained in {where} "
                    f"({key} {theirs!r}): drop the setting, or pretrain again with it"
                )
            setattr(values, key, coerce(theirs, type(mine), f"{section}.{key}"))
            notes.append(f"{section}.{key}={theirs!r} from the pretrained encoder in {where}")
    return notes


class EpochMeter:
    """An epoch's running loss (summed on the device), tokens (counted on the CPU) and
    time; read at log steps and at the end of the epoch, the only host syncs."""

    def __init__(self, device, writer=None):
        self.loss_sum, self.tokens = torch.zeros((), device=device), 0
        self.started, self.writer = time.time(), writer
        self.logged = (0.0, 0)  # loss sum and texts at the last log step (TensorBoard)

    def add(self, batch: dict, loss, keep) -> None:
        self.tokens += int(batch["lengths"].sum())  # CPU tensor: no device sync
        self.loss_sum += torch.where(keep > 0, loss, 0.0) * len(batch["labels"])

    def log(self, guard, step: int, run_dir, lr: float) -> dict:
        """The progress bar's fields; TensorBoard gets the mean loss since the last log."""
        avg, skipped = guard.read(self.loss_sum, step, run_dir)  # sync
        if self.writer is not None:
            total, seen = avg * guard.kept_texts, guard.kept_texts
            window = (total - self.logged[0]) / max(seen - self.logged[1], 1)
            tblog.log_step(self.writer, step, window, lr)
            self.logged = (total, seen)
        rate = self.tokens / max(time.time() - self.started, 1e-9)
        return {"loss": f"{avg:.4f}", "tok_s": f"{rate:,.0f}", "skipped": skipped}

    def finish(self, guard, step: int, run_dir) -> tuple[float, int, int, float]:
        """(mean train loss, steps skipped so far, tokens, seconds) of the epoch."""
        # sync: end of epoch, before the clock stops, so queued GPU work is counted
        train_loss, skipped = guard.read(self.loss_sum, step, run_dir)
        elapsed, tokens = time.time() - self.started, self.tokens
        if distributed.active():  # sync: DDP only, the epoch's loss over all ranks' texts
            kept = guard.kept_texts  # read with the loss just above: no extra sync
            total, kept, tokens = distributed.sum_all(train_loss * kept, kept, tokens)
            train_loss = total / max(kept, 1)
        return train_loss, skipped, tokens, elapsed


def epoch_row(epoch, step, train_loss, report, task, lr, tokens, elapsed, skipped) -> dict:
    """One metrics.jsonl row: training loss, the task's validation metrics, throughput."""
    val = {f"val_{k}": report[k] for k in ("loss", "accuracy", "macro_f1", *task.extra_metrics)}
    return {
        "epoch": epoch,
        "step": step,
        "train_loss": train_loss,
        **val,
        "lr": lr,
        "tokens_per_s": tokens / max(elapsed, 1e-9),
        "epoch_s": elapsed,
        "nonfinite_steps": skipped,
    }


def progress_bar(total: int, done: int, desc: str, main: bool):
    """The batch bar of an epoch, on a terminal only (logs and pipes stay clean)."""
    enabled = main and sys.stderr.isatty()
    return tqdm(
        total=total, initial=done, unit="batch", leave=False, desc=desc, disable=not enabled
    )


def epoch_line(row: dict, epochs: int) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f}  val loss "
        f"{row['val_loss']:.4f}  val acc {row['val_accuracy']:.4f}  val macro-F1 "
        f"{row['val_macro_f1']:.4f}  {row['tokens_per_s']:,.0f} tok/s  "
        f"{row['epoch_s']:.1f}s"
    )


def catch_stop_signals() -> tuple[dict, dict]:
    """SIGINT / SIGTERM set `stop["signal"]`: the loop acts on it between steps, never
    inside one. Returns (stop, the previous handlers, for the caller to put back)."""
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    return stop, previous
