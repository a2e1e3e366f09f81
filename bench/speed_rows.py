"""The three training rows of bench/speed.py, and how their memory and time are read.

- (a) `Textbook`: the tutorials' recipe, written here and nowhere in the product: every
  text padded (or cut) to one fixed length, shuffled batches of 64 from a TensorDataset,
  fp32, `nn.LSTM` on the dense padded batch, the class read from `out[:, -1, :]` (which
  reads padding; a speed reference only), Adam, and the loss read every step (`.item()`,
  as the tutorials print or accumulate it).
- (b) the product's own `textlstm.training.fit` (see speed.py): real loader, real loop.
- (c) `Ceiling`: the product's model and optimizer, forward + backward + step and nothing
  else, on token tensors made ahead of time on the device with exactly (b)'s batch shapes
  and lengths. What the hardware does when data costs nothing.
"""

import os
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textlstm.batching import BucketBatchSampler
from textlstm.model import TextLSTM


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # sync: timing boundaries only, never inside a step


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc), else its peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Peak memory while a row runs, kept across the row's time slices.

    GPU: `max_memory_allocated` (reset when a slice starts). CPU: the process's RSS,
    sampled every 10 ms by a thread, so a peak shorter than that can be missed, and the
    figure includes what the other rows keep alive (they share the process).
    """

    def __init__(self, device: torch.device):
        self.device, self.peak_mb = device, 0.0
        self._stop = threading.Event()
        self._thread = None

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.peak_mb = max(self.peak_mb, rss_mb())
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.peak_mb = max(self.peak_mb, peak)
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, rss_mb())


def run_slice(row, device, seconds: float = 0.0, steps: int = 0) -> dict:
    """Steps of `row` for `steps` steps, or for `seconds` of wall time."""
    sync(device)
    start, done, real, padded = time.perf_counter(), 0, 0, 0
    while (done < steps) if steps else (time.perf_counter() - start < seconds or done == 0):
        r, p = row.step()
        real, padded, done = real + r, padded + p, done + 1
    sync(device)
    return {"seconds": time.perf_counter() - start, "steps": done, "real": real, "padded": padded}


class TextbookLSTM(nn.Module):
    """The tutorials' classifier: Embedding -> nn.LSTM -> Linear on the last time step."""

    def __init__(self, vocab, classes, emb_dim, hidden_dim, num_layers, bidirectional):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb_dim)
        self.lstm = nn.LSTM(
            emb_dim, hidden_dim, num_layers, batch_first=True, bidirectional=bidirectional
        )
        self.fc = nn.Linear(hidden_dim * (2 if bidirectional else 1), classes)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.fc(out[:, -1, :])


def fixed_length(ids: list[list[int]], max_len: int, pad_id: int = 0):
    """(N, max_len) ids, right-padded or cut, and each text's real (kept) token count."""
    block = np.full((len(ids), max_len), pad_id, dtype=np.int64)
    lengths = np.zeros(len(ids), dtype=np.int64)
    for row, seq in enumerate(ids):
        kept = seq[:max_len]
        block[row, : len(kept)] = kept
        lengths[row] = len(kept)
    return torch.from_numpy(block), torch.from_numpy(lengths)


class Textbook:
    """Row (a); see the module docstring. `step()` returns (real tokens, padded tokens)."""

    def __init__(
        self, ids, labels, vocab, classes, shape: dict, device, max_len=256, batch_size=64, seed=0
    ):
        torch.manual_seed(seed)
        block, self.lengths = fixed_length(ids, max_len)
        data = torch.utils.data.TensorDataset(block, torch.as_tensor(labels), self.lengths)
        self.loader = torch.utils.data.DataLoader(
            data,
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        self.batches = iter(self.loader)
        self.device = device
        self.model = TextbookLSTM(vocab, classes, **shape).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.running_loss = 0.0

    def step(self) -> tuple[int, int]:
        try:
            ids, labels, lengths = next(self.batches)
        except StopIteration:  # next epoch
            self.batches = iter(self.loader)
            ids, labels, lengths = next(self.batches)
        ids, labels = ids.to(self.device), labels.to(self.device)
        loss = F.cross_entropy(self.model(ids), labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.running_loss += loss.item()  # sync: the tutorials' habit, kept on purpose
        return int(lengths.sum()), ids.numel()


def product_shapes(lengths, tc) -> list[np.ndarray]:
    """Per batch of `fit`'s first epoch, the texts' lengths, from the same sampler fit builds."""
    lengths = np.asarray(lengths, dtype=np.int64)
    sampler = BucketBatchSampler(
        lengths, tc.batch_size, tc.max_tokens, True, tc.seed, pad_multiple=tc.pad_multiple
    )
    return [lengths[index] for index in sampler.batches(0)]


class Ceiling:
    """Row (c); see the module docstring. Cycles over the batch shapes of (b)'s epoch."""

    def __init__(self, model_cfg, tc, vocab, classes, shapes, device, seed=0):
        torch.manual_seed(seed)
        self.model = TextLSTM(model_cfg, vocab, classes).to(device).train()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=tc.lr, fused=device.type == "cuda"
        )
        self.bf16, self.device = tc.precision == "bf16", device
        gen = torch.Generator().manual_seed(seed)
        self.batches = []
        for lengths in shapes:
            width = -(-int(lengths.max()) // tc.pad_multiple) * tc.pad_multiple
            ids = torch.randint(2, vocab, (len(lengths), width), generator=gen)
            labels = torch.randint(0, classes, (len(lengths),), generator=gen)
            lengths_t = torch.from_numpy(lengths)
            self.batches.append(
                (
                    ids.to(device),
                    torch.from_numpy(lengths).to(device),
                    labels.to(device),
                    int(lengths_t.sum()),
                    ids.numel(),
                )
            )
        self.next = 0

    def step(self) -> tuple[int, int]:
        ids, lengths, labels, real, padded = self.batches[self.next % len(self.batches)]
        self.next += 1
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            logits = self.model(ids, lengths)
        loss = F.cross_entropy(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return real, padded
