"""TensorBoard event files for a run (`train.tensorboard = true`), in `<run>/tb`.

`metrics.jsonl` stays the record the rest of textlstm reads (report curves, tests);
TensorBoard is an optional view of the same numbers plus the per-log-step training loss
and learning rate, which are too many rows for the JSONL. Curves share the global step
as x axis so training loss and validation metrics line up.

Needs the `tensorboard` package (`pip install 'textlstm[tensorboard]'`); torch's
`SummaryWriter` writes the files. Trade-off: each `add_scalar` is a Python call and a
buffered write, so logging happens only at `train.log_every` steps, where the training
loop already synchronises with the device.
"""

import shutil
from pathlib import Path

from textlstm import TextlstmError

TB_DIR = "tb"
HINT = "train.tensorboard needs TensorBoard: pip install 'textlstm[tensorboard]'"


def open_writer(run_dir: Path, resume: bool, step: int):
    """A SummaryWriter on `<run_dir>/tb`, or a one-line error when TensorBoard is missing.

    A fresh run removes an older run's event files. A resumed run purges events after
    `step` (written after the saved state by the interrupted process), so curves do not
    show the same steps twice.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch raises ImportError when `tensorboard` is absent
        raise TextlstmError(HINT) from exc
    log_dir = Path(run_dir) / TB_DIR
    if not resume:
        shutil.rmtree(log_dir, ignore_errors=True)
    return SummaryWriter(str(log_dir), purge_step=step if resume else None)


def log_step(writer, step: int, loss: float, lr: float) -> None:
    """Training loss (mean over the steps since the last log) and learning rate."""
    writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("train/lr", lr, step)


def log_epoch(writer, row: dict) -> None:
    """One metrics.jsonl row: `val_*` as val/*, the epoch's mean train loss, throughput."""
    step = row["step"]
    for key, value in row.items():
        if key.startswith("val_") and isinstance(value, (int, float)):
            writer.add_scalar(f"val/{key[4:]}", value, step)
    writer.add_scalar("train/epoch_loss", row["train_loss"], step)
    writer.add_scalar("perf/tokens_per_s", row["tokens_per_s"], step)
    writer.flush()  # an epoch's numbers are on disk even if the run is killed next
