"""Exponential moving average of the weights (`train.ema`): validate and ship the average.

Why: with a small or noisy training set the weights after any one step sit wherever the
last few batches pushed them, so validation accuracy jumps from epoch to epoch and from
seed to seed. A running average over the last ~1 / (1 - decay) steps sits nearer the
middle of the region the optimiser wanders in, and usually generalises better
(Polyak averaging; the same trick as EMA in image models and SWA).

Cost: one extra copy of the weights in memory, and one fused lerp over every parameter
per step, queued on the device like the optimiser step (no host sync). The average is
what validation scores, what `model.safetensors` holds and what `classify` runs; the
live weights go on training and are saved only in `train_state.pt` for `--resume`.

`torch.optim.swa_utils.AveragedModel` does the same job but compares a device tensor with
0 on every update (a host sync per step), so this keeps its step count as a Python int.
"""

import copy

import torch


class WeightAverage:
    """An EMA of `model`'s parameters, held in a frozen copy of the module."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def rate(self) -> float:
        """The share of the live weights taken in at this update.

        Early on the average follows the live weights closely ((1 + n) / (10 + n) is the
        warm-up of TensorFlow's ExponentialMovingAverage): an average that still remembers
        the random initialisation would score badly for the first epochs.
        """
        return 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        averaged = list(self.model.parameters())
        live = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(averaged, live, self.rate())  # what swa_utils' EMA uses
        self.updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
