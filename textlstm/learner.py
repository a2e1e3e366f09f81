"""What one training step changes, and the step itself: the model (and its DDP wrapper),
AdamW, the learning-rate schedule, the non-finite guard, the weight average, and
adversarial training's second pass. training.fit runs the loop around it.

No host sync inside `Learner.step`: the loss stays on the device, the guard's flag
reaches the fused optimizer as a tensor (guards.py).
"""

import math

import torch

from textlstm import TextlstmError, distributed, guards
from textlstm.adversarial import EmbeddedInputs, perturbation
from textlstm.averaging import WeightAverage
from textlstm.config import TrainConfig

# A resumable position inside a run, as train_state.pt stores it.
POSITION = ("epoch", "batches_done", "step", "best", "stale", "nonfinite_steps")


class Learner:
    """What one training step changes: the model (`net`: its DDP wrapper, or itself), the
    optimiser and schedule, the non-finite guard and the weight average."""

    def __init__(self, model, task, class_weight, tc: TrainConfig, device, total_steps: int):
        self.model, self.task, self.class_weight, self.tc, self.device = (
            model,
            task,
            class_weight,
            tc,
            device,
        )
        self.net = distributed.wrap(model, device)  # DDP under torchrun; `model` holds weights
        self.optimizer = make_optimizer(model, tc)
        factors = [
            group_factor(group["depth"], total_steps, tc) for group in self.optimizer.param_groups
        ]
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factors)
        self.guard = guards.NonFiniteGuard(device, tc.max_nonfinite)
        self.average = None  # made by `restore`, from the live (or restored) weights

    @property
    def scored(self):
        """The weights validation scores and the bundle holds: the average when on."""
        return self.average.model if self.average else self.model

    def step(self, batch: dict, global_size: int):
        """One optimiser step on `batch`; (loss, keep: 0/1 on the device). No host sync."""
        tc, device = self.tc, self.device
        ids = batch["input_ids"].to(device, non_blocking=True)
        lengths = batch["lengths"].to(device, non_blocking=True)
        targets = batch["labels"].to(device, non_blocking=True)
        bag = batch["ngram_ids"].to(device, non_blocking=True) if "ngram_ids" in batch else None
        scale = distributed.loss_scale(len(targets), global_size)  # DDP: see distributed.py
        embedded = EmbeddedInputs(self.model.embedding) if tc.adversarial else None
        loss = self.loss(ids, lengths, bag, targets)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * scale).backward()  # the gradient of the whole global batch's mean loss
        checked = loss.detach()
        if embedded:  # and again with the embeddings moved against the model (adversarial.py)
            embedded.remove()
            delta = perturbation(embedded.value.grad, tc.adversarial)
            adversarial_loss = self.loss(ids, lengths, bag, targets, delta)
            (adversarial_loss * scale).backward()
            checked = checked + adversarial_loss.detach()
        if tc.unfreeze:  # frozen layers (LR 0): no say in the clipping norm, moments untouched
            for group in self.optimizer.param_groups:
                if group["lr"] == 0:  # a Python float: no sync
                    for p in group["params"]:
                        p.grad = None
        norm = guards.grad_norm(self.model.parameters(), tc.clip_norm)
        keep = self.guard.check(self.optimizer, checked, norm, len(targets))
        self.optimizer.step()  # a no-op when the guard flagged the step
        self.schedule.step()
        if self.average:
            self.average.update(self.model)
        return loss.detach(), keep

    def loss(self, ids, lengths, bag, targets, delta=None):
        """The task's loss on one batch (`delta`: added to the embedded words).

        With the n-gram bag and `train.lstm_alone_loss` = w: (1 - w) x the loss with the
        bag + w x the loss of the same features with the bag's part zeroed, from one pass
        (model.forward's `alone`). The bag learns from every text, and the LSTM is still
        made to decide alone, so a bag that fits short texts at once does not stop it
        learning (docs/BENCHMARKS.md, "The LSTM-alone loss")."""
        tc = self.tc
        alone = tc.lstm_alone_loss if bag is not None else 0.0
        with torch.autocast(self.device.type, torch.bfloat16, enabled=tc.precision == "bf16"):
            logits = self.net(ids, lengths, bag, delta, alone=bool(alone))
        if not alone:
            return self.task.loss(logits, targets, self.class_weight, tc.label_smoothing)
        both = [
            self.task.loss(part, targets, self.class_weight, tc.label_smoothing)
            for part in logits.chunk(2)
        ]
        return (1 - alone) * both[0] + alone * both[1]

    def state(self, position: dict) -> dict:
        """Everything `--resume` needs: weights, optimiser, schedule, average, RNG, position."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            **position,
            **({"average": self.average.state_dict()} if self.average else {}),
            **guards.rng_state(),
        }

    def restore(self, state: dict, run_dir=None) -> tuple:
        """Load a train_state ({} for a new run); (epoch, batches done, step, best, stale)."""
        position = (0, 0, 0, None, 0)
        if state:
            try:
                self.model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
                self.schedule.load_state_dict(state["schedule"])
                guards.restore_rng_state(state)
                position = tuple(state[k] for k in POSITION[:5])
            except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                raise TextlstmError(
                    f"{run_dir}/train_state.pt does not fit this run's model and config "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
                ) from exc
            self.guard.skipped += state.get("nonfinite_steps", 0)
        if self.tc.ema:
            self.average = WeightAverage(self.model, self.tc.ema)
            if "average" in state:
                self.average.load_state_dict(state["average"])
        return position


def make_optimizer(model, tc: TrainConfig):
    """AdamW with weight decay on the weight matrices only (not biases, not embeddings).

    The n-gram bag's table learns at `train.ngram_lr_scale` x `train.lr`: each bucket is
    updated only by the texts that hold its n-gram, so at the LSTM's rate a rare n-gram's
    vector barely leaves its small initialisation (fastText trains its bag at lr 0.1-1).

    Each parameter group carries its `depth` below the classifier (layer_depth); the
    groups are split by depth only when `train.layer_lr_decay` or `train.unfreeze` treat
    layers differently, and the bag gets its own group only when its rate differs, so a
    run saved before these settings existed gets its old groups (and its train state fits).
    """
    by_layer = tc.layer_lr_decay != 1 or tc.unfreeze > 0
    groups: dict[tuple[int, bool], list] = {}
    bag = []  # the n-gram bag's table, in a group of its own when train.ngram_lr_scale != 1
    for name, p in model.named_parameters():
        if name.startswith("ngram_embedding.") and tc.ngram_lr_scale != 1:
            bag.append(p)
            continue
        depth = layer_depth(name, model.cfg.num_layers) if by_layer else 0
        decay = p.ndim >= 2 and "embedding" not in name
        groups.setdefault((depth, decay), []).append(p)
    return torch.optim.AdamW(
        [
            {"params": params, "depth": depth, "weight_decay": tc.weight_decay if decay else 0.0}
            for (depth, decay), params in sorted(
                groups.items(), key=lambda kv: (not kv[0][1], kv[0][0])
            )
        ]
        + (
            [{"params": bag, "depth": 0, "weight_decay": 0.0, "lr": tc.lr * tc.ngram_lr_scale}]
            if bag
            else []
        ),
        lr=tc.lr,
        weight_decay=0.0,
        fused=True,  # skips a non-finite step on the device (guards.NonFiniteGuard)
    )


def layer_depth(name: str, num_layers: int) -> int:
    """How far below the output a parameter sits: 0 the classifier (and n-gram bag), 1 the
    top LSTM layer, ..., `num_layers` the first, `num_layers + 1` the word embedding."""
    if name.startswith("embedding."):
        return num_layers + 1
    if name.startswith("rnn."):
        layer = int(name.split("_l")[-1].split("_")[0])
        return num_layers - layer
    return 0


def group_factor(depth: int, total: int, tc: TrainConfig):
    """The LR multiplier of the layers at `depth`, as a function of the step: the schedule,
    divided by `layer_lr_decay` per layer below the top (ULMFiT's discriminative rates),
    and 0 until gradual unfreezing reaches the layer (`unfreeze` epochs per layer, an epoch
    counted as total / epochs steps). A frozen layer's gradients are dropped before the
    clip (Learner.step), so it, its optimizer moments and the clip are exactly as if it
    were not there; DDP still reduces them, and resume needs nothing (the step decides)."""
    steps_per_epoch = total / tc.epochs
    scale = tc.layer_lr_decay ** (-depth)
    thaw = depth * tc.unfreeze * steps_per_epoch  # the step this layer starts learning

    def factor(step: int) -> float:
        return 0.0 if step < thaw else scale * lr_factor(step, total, tc)

    return factor


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    warmup = int(cfg.warmup_ratio * total)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress


def frozen_throughout(model_cfg, tc: TrainConfig) -> list[str]:
    """The layers gradual unfreezing never reaches within `train.epochs`, by name."""
    if not tc.unfreeze:
        return []
    names = {model_cfg.num_layers + 1: "the word embedding"}
    names.update(
        {model_cfg.num_layers - k: f"LSTM layer {k + 1}" for k in range(model_cfg.num_layers)}
    )
    return [names[d] for d in sorted(names) if d * tc.unfreeze >= tc.epochs]
