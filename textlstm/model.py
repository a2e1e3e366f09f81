"""Embedding -> bidirectional multi-layer LSTM -> pooling -> dropout -> Linear.

Padding never changes a prediction. The usual shortcut, reading the last time step of a
right-padded batch, reads the state after the padding: a short text's result then
depends on the longest text in its batch. Here every reader of the LSTM output is
length-aware (masked max/mean, state at the true last token).

Two recurrent implementations share one parameter layout (`nn.LSTM`'s names):
- `cudnn` (default) `DenseLSTM`: the fused kernels behind `nn.LSTM` (cuDNN on GPU, oneDNN
  on CPU) run on the dense padded batch, one call per layer and direction. The forward
  direction is exact on a right-padded batch up to each text's length by causality. The
  backward direction gets each text reversed *within its length*, so it starts at the
  true last token; its output is reversed back the same way. That is exactly what
  `pack_padded_sequence` computes, without packing's cost (1.5-3x slower on CPU,
  1.25-2.5x on an H100, measured with mixed lengths).
- `cell` `CellLSTM` (cell.py): the hand-written equations, the readable reference.
"""

import torch
import torch.nn.functional as F
from torch import nn

from textlstm.cell import CellLSTM, LSTMParameters
from textlstm.config import ModelConfig


def reverse_within_length(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T) time index that reverses each text's first `length` steps, keeps the rest.

    Applying it twice is the identity, so the same index maps the output back.
    """
    t = torch.arange(steps, device=lengths.device)[None, :]
    lengths = lengths[:, None]
    return torch.where(t < lengths, lengths - 1 - t, t)


def gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


class DenseLSTM(LSTMParameters):
    """`nn.LSTM`'s fused kernel per layer and direction on a dense right-padded batch."""

    def encode(self, x: torch.Tensor, lengths: torch.Tensor):
        """(out (B, T, D*H) zero past each length, last layer's final h (D, B, H))."""
        batch, steps, _ = x.shape
        lengths = lengths.to(x.device)
        mask = (torch.arange(steps, device=x.device)[None, :] < lengths[:, None])[:, :, None]
        flip = reverse_within_length(lengths, steps) if self.num_directions == 2 else None
        zeros = x.new_zeros(1, batch, self.hidden_size)
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                seq = layer_input if direction == 0 else gather_time(layer_input, flip)
                # torch.lstm is the op nn.LSTM calls: one layer, one direction, batch first.
                out, _, _ = torch.lstm(
                    seq,
                    (zeros, zeros),
                    self.layer_weights(layer, direction),
                    True,
                    1,
                    0.0,
                    self.training,
                    False,
                    True,
                )
                outs.append(out if direction == 0 else gather_time(out, flip))
            layer_out = torch.cat(outs, dim=2) * mask  # outputs over padding are discarded
            layer_input = self.between_layers(layer_out, layer)
        last = (lengths - 1).clamp(min=0)
        hidden = self.hidden_size
        h_fwd = layer_out[torch.arange(batch, device=x.device), last, :hidden]
        finals = [h_fwd] if self.num_directions == 1 else [h_fwd, layer_out[:, 0, hidden:]]
        return layer_out, torch.stack(finals)


class TextLSTM(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, num_classes: int, pad_id: int = 0):
        super().__init__()
        cfg.check()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.emb_dim, padding_idx=pad_id)
        rnn_class = CellLSTM if cfg.rnn == "cell" else DenseLSTM
        self.rnn = rnn_class(
            cfg.emb_dim, cfg.hidden_dim, cfg.num_layers, cfg.bidirectional, cfg.dropout
        )
        self.poolings = cfg.pooling.split("+")
        width = cfg.hidden_dim * self.rnn.num_directions * len(self.poolings)
        # (n, buckets) of the n-gram bag (ngrams.py), or None: what batches must carry
        self.bag = (cfg.ngrams, cfg.ngram_buckets) if cfg.ngrams else None
        if self.bag:
            self.ngram_embedding = nn.Embedding(cfg.ngram_buckets + 1, cfg.ngram_dim, padding_idx=0)
            bound = 1.0 / cfg.ngram_dim  # fastText's initialisation: small, so no bucket
            nn.init.uniform_(self.ngram_embedding.weight, -bound, bound)  # dominates early
            with torch.no_grad():
                self.ngram_embedding.weight[0].zero_()
            width += cfg.ngram_dim
        self.classifier = nn.Linear(width, num_classes)

    def features(self, input_ids, lengths, ngram_ids=None, delta=None) -> torch.Tensor:
        """The pooled text representation, (B, D*H*len(poolings) [+ ngram_dim]); `delta`
        (B, T, E) is added to the embedded words (adversarial training)."""
        emb = self.embedding(input_ids)
        if delta is not None:
            emb = emb + delta
        emb = F.dropout(emb, self.cfg.embedding_dropout, self.training)
        out, h_n = self.rnn.encode(emb, lengths)
        lengths = lengths.to(out.device)
        mask = torch.arange(out.shape[1], device=out.device)[None, :, None] < lengths[:, None, None]
        pooled = []
        for kind in self.poolings:
            if kind == "max":
                pooled.append(out.masked_fill(~mask, float("-inf")).amax(dim=1))
            elif kind == "mean":
                pooled.append(out.sum(dim=1) / lengths[:, None].to(out.dtype))  # pads are 0
            else:  # last: forward state at the true last token, backward state at token 0
                pooled.append(torch.cat(list(h_n), dim=1))
        if self.bag:
            if ngram_ids is None:
                raise ValueError("this model has an n-gram branch: pass ngram_ids")
            bag = self.ngram_bag(ngram_ids).to(out.dtype)
            if self.training and self.cfg.ngram_dropout:  # whole bags, so the LSTM learns too
                keep = torch.ones_like(bag[:, :1])
                bag = bag * F.dropout(keep, self.cfg.ngram_dropout, training=True)
            pooled.append(bag)
        return torch.cat(pooled, dim=1)

    def ngram_bag(self, ngram_ids: torch.Tensor) -> torch.Tensor:
        """Each text's n-gram bucket vectors summed, over their count ("mean") or its
        square root ("sqrt", `model.ngram_pooling`); (B, M) ids right-padded with 0, whose
        row is zero, so padding adds nothing and the count leaves it out."""
        counts = (ngram_ids > 0).sum(dim=1, keepdim=True).clamp(min=1)
        total = self.ngram_embedding(ngram_ids).sum(dim=1)
        return total / (counts.sqrt() if self.cfg.ngram_pooling == "sqrt" else counts)

    def load_encoder(self, tensors: dict) -> int:
        """Copy a pretrained encoder (embedding and LSTM weights, lm.py) into this
        model; the classifier and n-gram bag keep their fresh initialisation. Returns the
        number of values copied. Shapes were checked against the config by the caller."""
        own = self.state_dict()
        names = [n for n in own if n.startswith(("embedding.", "rnn."))]
        with torch.no_grad():
            for name in names:
                own[name].copy_(tensors[name])
        return sum(own[n].numel() for n in names)

    def forward(self, input_ids, lengths, ngram_ids=None, delta=None, alone=False):
        """Logits (B, num_classes) for right-padded ids (B, T) and true lengths (B,);
        with `model.ngrams`, also the texts' n-gram bucket ids (B, M), 0-padded. `alone`
        (training, `train.lstm_alone_loss`): (2B, num_classes), the B texts' logits, then
        theirs again with the bag's features zeroed, the LSTM alone. It costs one more
        classifier product, not another pass through the LSTM."""
        feats = self.features(input_ids, lengths, ngram_ids, delta)
        if alone and self.bag:
            bagless = torch.cat(
                [feats[:, : -self.cfg.ngram_dim], feats.new_zeros(len(feats), self.cfg.ngram_dim)],
                1,
            )
            feats = torch.cat([feats, bagless])
        return self.classifier(F.dropout(feats, self.cfg.dropout, self.training))
