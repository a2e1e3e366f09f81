"""Training tokens/s of the two LSTM implementations (and packed nn.LSTM), one run.

Same model shape, same data (SMS spam train split, the product's bucketed batches), same
device, same number of steps, interleaved so machine noise hits all rows alike:
- cudnn:  DenseLSTM, the fused kernel per layer/direction on the dense padded batch
- cell:   CellLSTM, the hand-written equations, one time step at a time
- packed: nn.LSTM on pack_padded_sequence (the textbook exact path), for reference

    .venv/bin/python bench/lstm_impls.py [--steps 40] [--device cpu]

Prints a Markdown table for docs/BENCHMARKS.md.
"""

import argparse
import datetime
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textlstm.batching import BucketBatchSampler, PaddedBatches
from textlstm.config import DataConfig, ModelConfig
from textlstm.model import TextLSTM
from textlstm.tokenizer import prepare


class PackedLSTM(nn.LSTM):
    """nn.LSTM behind the same encode() interface, via pack_padded_sequence."""

    def encode(self, x, lengths):
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, _) = self(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, h[-2:]


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--steps", type=int, default=40)
    args.add_argument("--device", default="cpu")
    args.add_argument("--data", default="data/sms_spam")
    opts = args.parse_args()
    device = torch.device(opts.device)
    prep = prepare(DataConfig(source=opts.data), 0)
    split = prep.splits["train"]
    batches = PaddedBatches(split)
    sampler = BucketBatchSampler(batches.lengths, 64, seed=0)
    plan = sampler.batches(0)[: opts.steps]
    vocab, classes = prep.tokenizer.get_vocab_size(), len(prep.label_names)

    models = {}
    for rnn in ("cudnn", "cell", "packed"):
        torch.manual_seed(0)
        model = TextLSTM(
            ModelConfig(rnn="cell" if rnn == "cell" else "cudnn", ngrams=0), vocab, classes
        )
        if rnn == "packed":
            packed = PackedLSTM(128, 128, 2, batch_first=True, bidirectional=True, dropout=0.3)
            packed.load_state_dict(model.rnn.state_dict())
            model.rnn = packed
        models[rnn] = model.to(device)
    optims = {k: torch.optim.AdamW(m.parameters(), lr=1e-3) for k, m in models.items()}
    seconds = dict.fromkeys(models, 0.0)
    tokens = 0
    for i, index in enumerate(plan):
        batch = batches[index]
        ids, lengths = batch["input_ids"].to(device), batch["lengths"].to(device)
        labels = batch["labels"].to(device)
        tokens += int(batch["lengths"].sum()) if i else 0  # step 0 is warm-up
        for name, model in models.items():
            start = time.perf_counter()
            loss = F.cross_entropy(model(ids, lengths), labels)
            optims[name].zero_grad()
            loss.backward()
            optims[name].step()
            if device.type == "cuda":
                torch.cuda.synchronize()  # sync: timing only
            if i:
                seconds[name] += time.perf_counter() - start
    base = tokens / seconds["cudnn"]
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"{opts.steps - 1} timed steps of batch 64 (bucketed), emb 128, hidden 128x2, 2 layers"
    )
    print("| implementation | real tokens/s | relative to cudnn |")
    print("|---|---|---|")
    for name in models:
        rate = tokens / seconds[name]
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
