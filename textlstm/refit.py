"""`train.refit`: once validation has chosen the epoch, train again on train + validation
for that many epochs and ship that model (scikit-learn's `refit`). The TF-IDF and
fastText baselines of docs/BENCHMARKS.md learn from those texts too.

Why: the validation split (a tenth of train unless the data brings its own) is text the
shipped model never learns from. Once it has done its one job, choosing the epoch, it
can train the final model as well: on a small dataset a tenth more text shows.

The second run repeats the first one's recipe: the same initial weights and random draws
(the RNG states the first run started from), the same optimiser and schedule over
`train.epochs` passes of the larger split, stopped after the chosen epoch; with
`train.ema` the average is what is saved. Its weights replace the chosen epoch's in
model.safetensors at the end, in one atomic write; until then the bundle is the first
run's. metrics.json keeps the first run's validation scores (the refit model has read
those texts, so its own would read high) and adds `refit_epochs` and `refit_texts`.

Cost: the chosen epochs again, on 1 / (1 - validation_fraction) times the texts: about
best_epoch / (best_epoch + patience) of the first run (+50-70% at the defaults).
Stopped by a signal, the bundle stays the first run's; `--resume` trains the refit again
from its start. Multi-label runs tune their thresholds on validation: they turn it off.
"""

import sys
import time

import torch
from tqdm import tqdm

from textlstm import distributed


def train_and_validation(splits):
    """train + validation as one split, the validation texts after the training ones."""
    import datasets

    train, validation = splits["train"], splits["validation"]
    validation = validation.select_columns(train.column_names).cast(train.features)
    return datasets.concatenate_datasets([train, validation])


def train_epochs(learner, sampler, batches, epochs: int, run_dir, stop: dict, say):
    """`epochs` passes of `batches` with `learner`, no validation; the weights to ship (the
    average with train.ema), or None when a signal stopped it between two steps."""
    guard, tc, step = learner.guard, learner.tc, 0
    for epoch in range(epochs):
        learner.net.train()
        sampler.set_epoch(epoch)
        guard.new_epoch()
        loss_sum, tokens, started = torch.zeros((), device=learner.device), 0, time.time()
        enabled = distributed.is_main() and sys.stderr.isatty()
        bar = tqdm(
            total=len(sampler.batches(epoch)), unit="batch", leave=False, disable=not enabled,
            desc=f"refit {epoch + 1}/{epochs}",
        )  # fmt: skip
        for done, batch in enumerate(batches, 1):
            loss, keep = learner.step(batch, sampler.global_size(done - 1))
            loss_sum += torch.where(keep > 0, loss, 0.0) * len(batch["labels"])
            tokens += int(batch["lengths"].sum())  # CPU tensor: no device sync
            step += 1
            bar.update(1)
            if done % tc.log_every:
                continue
            bar.set_postfix(loss=f"{guard.read(loss_sum, step, run_dir)[0]:.4f}")  # sync
            if distributed.any_rank(stop["signal"] is not None):  # sync: DDP only
                bar.close()
                return None
        bar.close()
        train_loss, _ = guard.read(loss_sum, step, run_dir)  # sync: end of the epoch
        elapsed = time.time() - started
        say(
            f"refit {epoch + 1}/{epochs}  train loss {train_loss:.4f}  "
            f"{tokens / max(elapsed, 1e-9):,.0f} tok/s  {elapsed:.1f}s"
        )
        if distributed.any_rank(stop["signal"] is not None):
            return None
    return learner.scored.eval()
