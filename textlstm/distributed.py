"""Multi-process training with torchrun + DistributedDataParallel, kept out of train.py.

`torchrun --nproc-per-node N -m textlstm train ...` (or `textlstm train --nproc N`,
which runs `python -m torch.distributed.run --standalone` for you) starts N copies of
the same command. Each reads RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT
from the environment torchrun sets, joins the process group (NCCL on CUDA, one GPU per
process: cuda:LOCAL_RANK; gloo on CPU) and trains its shard of every batch (see
batching.py). Without those variables every function here is a no-op for one process,
so train.py runs unchanged.

Choices, and what they cost:
- Validation is sharded and reduced: each rank predicts every W-th validation text and
  one all-reduce assembles the full logits on every rank, so all ranks compute the same
  metrics and take the same early-stopping decision with no extra broadcast.
- Only rank 0 writes (bundle, metrics.jsonl, train_state.pt, `latest`) and prints. The
  checkpoint holds the unwrapped model's state dict, so it is the single-process format
  (no `module.` prefix) and `classify` / `evaluate` / `--resume` read it as is.
- Rank 0 trains the tokenizer and sends it to the others: the wordpiece trainer is not
  bit-reproducible, and ranks must agree on every token id.
- Every rank starts from the same seed, so dropout masks on equal-shaped inputs repeat
  across ranks. That keeps `--resume` exact from rank 0's saved RNG state, at the price
  of slightly correlated dropout noise between ranks.
- A stop signal is acted on only when all ranks agree (checked every `log_every` steps,
  one tiny all-reduce), so no rank is left waiting in a collective.
- Multi-node runs need the run folder (and the data) on a filesystem all nodes share.
"""

import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """True inside a process started by torchrun (or anything setting its variables)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group; returns this process's device (cuda:LOCAL_RANK)."""
    if not launched() or dist.is_initialized():
        return device
    if device.type == "cuda":  # one GPU per process; NCCL moves the gradients
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP around `model` (which keeps the weights the checkpoint saves), or `model`."""
    if not dist.is_initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _comm_device() -> torch.device:
    # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else (
        torch.device("cpu")
    )  # fmt: skip


def sum_all(*values) -> list[float]:
    """Sums of numbers (or 0-d tensors) over all ranks; the values themselves for one."""
    if not active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on at least one (sync: one all-reduce)."""
    if not active():
        return flag
    t = torch.tensor([int(flag)], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def share(obj):
    """Rank 0's `obj` on every rank (run folder name, tokenizer JSON)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def loss_scale(local: int, global_size: int) -> float:
    """Factor making DDP's gradient average equal the global batch's mean-loss gradient.

    DDP averages gradients over W ranks; each rank's loss is a mean over its `local`
    texts. Scaling it by W * local / global turns the average of per-rank means into
    the mean over all `global_size` texts (exact without class weights).
    """
    return world_size() * local / global_size if active() else 1.0


def prepare(data_cfg, seed: int, tokenizer=None):
    """tokenizer.prepare on every rank, with rank 0's tokenizer; rank 0 fills caches first."""
    from textlstm.tokenizer import prepare as prepare_one

    if not active() or tokenizer is not None:  # a resumed run's tokenizer is already shared
        return prepare_one(data_cfg, seed, tokenizer)
    prep = prepare_one(data_cfg, seed) if is_main() else None
    text = share(prep.tokenizer.to_str() if prep else None)
    if prep is not None:
        return prep
    from tokenizers import Tokenizer

    return prepare_one(data_cfg, seed, Tokenizer.from_str(text))


def evaluate(model, split, label_names, device, batch_size=256, precision="fp32") -> dict:
    """evaluate_split over all ranks: each predicts every W-th text; one all-reduce."""
    from textlstm.evaluate import (
        classification_report,
        cross_entropy,
        evaluate_split,
        predict_logits,
    )

    if not active():
        return evaluate_split(model, split, label_names, device, batch_size, precision)
    from textlstm.batching import column_array

    n, w, r = len(split), dist.get_world_size(), dist.get_rank()
    full = torch.zeros(n, len(label_names), dtype=torch.float32)
    mine = list(range(r, n, w))
    if mine:
        full[r::w] = torch.from_numpy(
            predict_logits(model, split.select(mine), device, batch_size, precision)
        )
    full = full.to(_comm_device())
    dist.all_reduce(full)  # each row is non-zero on exactly one rank
    logits, labels = full.cpu().numpy(), column_array(split, "label")
    report = classification_report(labels, logits.argmax(axis=1), label_names)
    report["loss"] = cross_entropy(logits, labels)
    return report
