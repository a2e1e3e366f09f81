"""Multi-process training with torchrun + DistributedDataParallel, kept out of training.py.

`torchrun --nproc-per-node N -m textlstm train ...` (or `textlstm train --nproc N`,
which runs `python -m torch.distributed.run --standalone` for you) starts N copies of
the same command. Each reads RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT
from the environment torchrun sets, joins the process group (NCCL on CUDA, one GPU per
process: cuda:LOCAL_RANK; gloo on CPU) and trains its shard of every batch (see
batching.py). Without those variables every function here is a no-op for one process,
so training.py runs unchanged.

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

A leaf module of primitives (rank, barrier, broadcast, reduce). torch is imported inside
the functions that need a process group: rank() and is_main() read the environment, so
checkpoint.py asks them without making `classify` pay for torch.
"""

from __future__ import annotations

import os


def launched() -> bool:
    """True inside a process started by torchrun (or anything setting its variables)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank() -> int:
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device):
    """Join torchrun's process group; returns this process's device (cuda:LOCAL_RANK)."""
    import torch
    import torch.distributed as dist

    if not launched() or dist.is_initialized():
        return device
    if device.type == "cuda":  # one GPU per process; NCCL moves the gradients
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return device


def initialized() -> bool:
    """A process group exists (never true without torchrun; torch is not imported then)."""
    if not launched():
        return False
    import torch.distributed as dist

    return dist.is_initialized()


def teardown() -> None:
    import torch.distributed as dist

    if initialized():
        dist.destroy_process_group()


def active() -> bool:
    """More than one process trains together."""
    return initialized() and world_size() > 1


def wrap(model, device):
    """DDP around `model` (which keeps the weights the checkpoint saves), or `model`."""
    if not initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def comm_device():
    """Where collectives take their tensors: NCCL reduces CUDA tensors, gloo CPU ones."""
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sum_all(*values) -> list[float]:
    """Sums of numbers (or 0-d tensors) over all ranks; the values themselves for one."""
    if not active():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=comm_device())
    dist.all_reduce(t)
    return t.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on at least one (sync: one all-reduce)."""
    if not active():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(flag)], device=comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def share(obj):
    """Rank 0's `obj` on every rank (run folder name, tokenizer JSON)."""
    if not active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def loss_scale(local: int, global_size: int) -> float:
    """Factor making DDP's gradient average equal the global batch's mean-loss gradient.

    DDP averages gradients over W ranks; each rank's loss is a mean over its `local`
    texts. Scaling it by W * local / global turns the average of per-rank means into
    the mean over all `global_size` texts (exact without class weights).
    """
    return world_size() * local / global_size if active() else 1.0


def sum_rows(block):
    """Element-wise sum of a tensor over all ranks, on this rank's device (one all-reduce).
    Used to assemble rows that each rank filled for its own share of a split."""
    if not active():
        return block
    import torch.distributed as dist

    full = block.to(comm_device())
    dist.all_reduce(full)
    return full.cpu()
