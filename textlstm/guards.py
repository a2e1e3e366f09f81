"""Training guards: non-finite steps, out-of-memory, deterministic mode and RNG state.

Kept apart from training.py so the training loop gains a few calls, not a few screens.

Non-finite steps. A NaN/inf loss or gradient must not reach the weights, and checking
for one must not add a host-device sync to every step (on a GPU that sync stalls the
launch queue). The check therefore stays on the device: a 0/1 `found_inf` tensor is
handed to the *fused* AdamW, which skips the update (weights, both moments and the
step count) when it is 1 -- the same mechanism `torch.amp.GradScaler` uses. The
counters are device tensors too, and are read together with the loss at the log step
that already syncs. Trade-off: a run of `max_nonfinite` bad steps is noticed at the
next log step (at most `log_every - 1` steps later); those later steps either were
skipped as well or were finite, so nothing non-finite is ever applied. The LR schedule
still advances on a skipped step (as with GradScaler).
"""

import os
import random
import warnings

import numpy as np
import torch

from textlstm import TextlstmError

OOM_ERRORS = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),)


class NonFiniteGuard:
    """Per-step finite check with on-device counters (see the module docstring)."""

    def __init__(self, device: torch.device, limit: int):
        self.limit = limit
        zero = torch.zeros((), device=device)
        self.skipped = zero.clone()  # skipped steps of the whole run (restored on resume)
        self.streak = zero.clone()  # consecutive skipped steps, ending now
        self.worst = zero.clone()  # longest streak since the last read
        self.kept = zero.clone()  # texts in this epoch's applied steps (the loss average)

    def new_epoch(self) -> None:
        self.kept.zero_()

    def check(self, optimizer, loss: torch.Tensor, norm: torch.Tensor, n: int) -> torch.Tensor:
        """Arm the fused optimizer with this step's flag; returns 1.0 to keep, 0.0 to skip."""
        bad = (~(torch.isfinite(loss) & torch.isfinite(norm))).float()
        optimizer.found_inf = bad  # fused AdamW reads it in step(): no update when 1
        self.skipped += bad
        self.streak.mul_(bad).add_(bad)  # (streak + bad) * bad: a good step resets it
        torch.maximum(self.worst, self.streak, out=self.worst)
        self.kept += (1 - bad) * n
        return 1 - bad

    def read(self, loss_sum: torch.Tensor, step: int, run_dir) -> tuple[float, int]:
        """Mean loss of the applied steps and skipped steps so far: one host sync.

        Raises when `limit` consecutive steps were skipped since the last read."""
        values = torch.stack([loss_sum, self.kept, self.skipped, self.worst]).tolist()
        self.kept_texts = values[1]  # texts behind the mean, for callers that re-weight it
        self.worst.zero_()
        if self.limit and values[3] >= self.limit:
            raise TextlstmError(
                f"training stopped at step {step}: {int(values[3])} consecutive steps had a "
                f"non-finite loss or gradient (train.max_nonfinite={self.limit}); lower "
                "train.lr, keep train.clip_norm > 0, or use train.precision=fp32. The best "
                f"checkpoint in {run_dir} is intact"
            )
        return values[0] / max(values[1], 1), int(values[2])


def grad_norm(parameters, clip_norm: float) -> torch.Tensor:
    """Global gradient norm (a device tensor), clipping to `clip_norm` when it is > 0."""
    return torch.nn.utils.clip_grad_norm_(parameters, clip_norm if clip_norm > 0 else float("inf"))


def oom_error(exc: BaseException, phase: str, settings: dict) -> TextlstmError:
    """One line for an out-of-memory error, naming the settings to lower."""
    lower = " or ".join(f"{key} (now {value})" for key, value in settings.items())
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return TextlstmError(f"out of GPU memory during {phase}: lower {lower} ({first[:200]})")


def set_deterministic(enabled: bool, device: torch.device) -> None:
    """Deterministic kernels where PyTorch has them (`--deterministic`).

    On CPU, textlstm's training is deterministic already for a fixed seed. On CUDA this
    turns on `torch.use_deterministic_algorithms` (warn_only: operations without a
    deterministic kernel warn instead of failing), `cudnn.deterministic`, turns off
    `cudnn.benchmark` (its autotuner may pick different kernels per run) and sets
    `CUBLAS_WORKSPACE_CONFIG=:4096:8`, which cuBLAS needs for reproducible matrix products
    (it must be set before the first cuBLAS call, so set it in the shell to be sure).
    cuDNN's RNN kernels are only reproducible for the same GPU model, cuDNN version and
    batch shapes; different GPUs or library versions can still differ in the last bits.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CUBLAS reminder is handled above
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = device.type == "cuda" and not enabled


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Python, numpy and torch RNG states as plain values (weights_only=True loads them)."""
    name, key, pos, has_gauss, cached = np.random.get_state()
    return {
        "python_rng": random.getstate(),
        "numpy_rng": (name, key.tolist(), pos, has_gauss, cached),
        "torch_rng": torch.get_rng_state(),
    }


def restore_rng_state(state: dict) -> None:
    """Undo `rng_state`: a resumed run draws the same dropout masks and batches."""
    random.setstate(state["python_rng"])
    np.random.set_state(tuple(state["numpy_rng"]))
    torch.set_rng_state(state["torch_rng"])
