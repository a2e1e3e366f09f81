"""The language model `textlstm pretrain` trains (pretraining.py runs it): the
classifier's encoder, named as TextLSTM names it, under a shared adaptive-softmax head.

No leak. A bidirectional layer above the first reads both directions' states, so a
forward language model stacked that way would see the word it predicts through the
backward half. Here each direction is its own stack while pretraining (as in ELMo): layer
k > 0 of the forward direction reads only the forward states of layer k - 1, through the
forward half of its input weights; the backward direction likewise through its half. The
other half (the "cross" block) is set to zero here and never trained, so the classifier
that loads these weights computes exactly the pretrained stacks at its first step and
learns to mix the directions from there. The forward state at t has read tokens 0..t and
predicts t + 1; the backward state at t has read t..end and predicts t - 1
(tests/test_pretrain.py changes token t and checks that neither prediction of it moves).

Softmax. A full softmax over a 20k vocabulary costs more than the LSTM, so the head is
`nn.AdaptiveLogSoftmaxWithLoss` over the words ranked by frequency in the pretraining
texts: the frequent words in a small head, the rest in two narrower tail clusters. Both
directions share it (as ELMo's do). It is not tied to the embedding.

Saturation. Trained plainly, the language model drives its cells into saturation within
a few hundred steps (measured on IMDB: mean |c| 5-12, |tanh c| > 0.95 for 91-93% of the
units, against 0.3 and 0% in a classifier trained from scratch). Its perplexity is fine,
but a classifier started there barely learns: no gradient passes a saturated cell. The
activation penalty of AWD-LSTM (AR: `pretrain.activation_reg` x the mean square of the
states that predict, Merity et al. 2018) keeps them in range (|c| 0.5, 0.7% saturated)
and lowers the held-out perplexity too (398 against 545 after one epoch).

Cost per step: the encoder's forward and backward once, as in classifier training, plus
the head on every predicted token (about 2 x tokens rows): measured in docs/BENCHMARKS.md.
Host-device syncs are marked `# sync:`; the prediction positions come from the CPU-side
lengths, so only the adaptive softmax's routing of rows to clusters syncs (GPU only).
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textlstm.cell import LSTMParameters
from textlstm.checkpoint import PAD_ID
from textlstm.model import gather_time, reverse_within_length


def head_cutoffs(vocab_size: int, hidden: int) -> list[int]:
    """Adaptive-softmax cluster bounds over frequency ranks: a 2,000-word head and tails
    to 10,000 and the rest; a small vocabulary gets one tail of its rarest three quarters.
    Tail i reads hidden / 4**i features, so a narrow model keeps only tails with one."""
    cutoffs = [c for c in (2000, 10000) if c < vocab_size - 1] or [max(1, vocab_size // 4)]
    return [c for i, c in enumerate(cutoffs, 1) if hidden // 4**i >= 1] or cutoffs[:1]


class LanguageModel(nn.Module):
    """The encoder, named as TextLSTM names it, under a shared adaptive-softmax head."""

    def __init__(self, cfg, vocab_size: int, rank: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.emb_dim, padding_idx=PAD_ID)
        self.rnn = LSTMParameters(
            cfg.emb_dim, cfg.hidden_dim, cfg.num_layers, cfg.bidirectional, cfg.dropout
        )
        self.register_buffer("rank", rank)  # token id -> its frequency rank (the head's class)
        self.lm_head = nn.AdaptiveLogSoftmaxWithLoss(
            cfg.hidden_dim, vocab_size, head_cutoffs(vocab_size, cfg.hidden_dim), div_value=4.0
        )
        hidden = cfg.hidden_dim
        with torch.no_grad():  # the cross blocks: see the module docstring
            for layer in range(1, cfg.num_layers):
                for direction in range(self.rnn.num_directions):
                    cross = slice(hidden, 2 * hidden) if direction == 0 else slice(0, hidden)
                    self.rnn.layer_weights(layer, direction)[0][:, cross] = 0.0

    def stacks(self, ids: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Each direction's top-layer states (B, T, H) in text order: forward[t] has read
        tokens 0..t, backward[t] tokens t..length-1. Positions past a length hold values
        that nothing reads (each direction runs causally in its own time order, and the
        padding comes after a text's tokens in both)."""
        cfg, rnn, hidden = self.cfg, self.rnn, self.cfg.hidden_dim
        emb = F.dropout(self.embedding(ids), cfg.embedding_dropout, self.training)
        zeros = emb.new_zeros(1, ids.shape[0], hidden)
        flip = reverse_within_length(lengths.to(ids.device), ids.shape[1])
        states = []
        for direction in range(rnn.num_directions):
            x = emb if direction == 0 else gather_time(emb, flip)
            for layer in range(cfg.num_layers):
                w_ih, w_hh, b_ih, b_hh = rnn.layer_weights(layer, direction)
                if layer > 0 and rnn.num_directions == 2:  # only this direction's own half
                    w_ih = w_ih[:, :hidden] if direction == 0 else w_ih[:, hidden:]
                x, _, _ = torch.lstm(
                    x, (zeros, zeros), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, self.training,
                    False, True,
                )  # fmt: skip
                x = rnn.between_layers(x, layer)
            states.append(x if direction == 0 else gather_time(x, flip))
        return states

    def nll(self, ids: torch.Tensor, lengths: torch.Tensor, rows: list):
        """(summed negative log-likelihood of the predicted tokens, mean square of the
        states that predict them); `rows` from `prediction_rows` (flat positions read and
        predicted, per direction)."""
        states = self.stacks(ids, lengths)
        flat_ids = ids.reshape(-1)
        rows = rows[: len(states)]  # a forward-only model reads the first pair alone
        read = [
            s.reshape(-1, s.shape[2]).index_select(0, r)
            for s, (r, _) in zip(states, rows, strict=True)
        ]
        targets = torch.cat([flat_ids.index_select(0, t) for _, t in rows])
        read = torch.cat(read)
        hidden = F.dropout(read, self.cfg.dropout, self.training)
        # sync: the adaptive softmax routes rows to its clusters with nonzero() (GPU only)
        return -self.lm_head(hidden, self.rank[targets]).output.sum(), read.pow(2).mean()


def prediction_rows(lengths: torch.Tensor, steps: int, device) -> tuple[list, int]:
    """Flat (B*T) positions each direction reads and the positions it predicts, made on
    the CPU from the lengths (no device sync): forward reads t < length-1 and predicts
    t+1; backward reads 1 <= t < length and predicts t-1. Returns them and their count."""
    t = torch.arange(steps)[None, :]
    lengths = lengths.cpu()[:, None]
    forward = (t < lengths - 1).reshape(-1).nonzero().squeeze(1)
    backward = ((t >= 1) & (t < lengths)).reshape(-1).nonzero().squeeze(1)
    pairs = [(forward, forward + 1), (backward, backward - 1)]
    count = len(forward)
    rows = [(r.to(device, non_blocking=True), p.to(device, non_blocking=True)) for r, p in pairs]
    return rows, count


def word_ranks(split, vocab_size: int) -> torch.Tensor:
    """Each token id's rank by frequency in `split` (most frequent 0): the head's classes."""
    column = split.with_format("arrow")["input_ids"]
    lists = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    values = lists.flatten().to_numpy(zero_copy_only=False)
    counts = np.bincount(values, minlength=vocab_size)[:vocab_size]
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(vocab_size, dtype=np.int64)
    rank[order] = np.arange(vocab_size)
    return torch.from_numpy(rank)


def lm_loss(model: LanguageModel, batch: dict, device, precision: str, activation_reg=0.0):
    """(objective, mean NLL per predicted token, their count) of one batch; the objective
    adds `activation_reg` x the mean square of the predicting states (AR, Merity et al.
    2018). (None, None, 0) for a batch of one-token texts, which predicts nothing."""
    lengths = batch["lengths"]
    rows, count = prediction_rows(lengths, batch["input_ids"].shape[1], device)
    if not count:
        return None, None, 0
    ids = batch["input_ids"].to(device, non_blocking=True)
    with torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
        nll, square = model.nll(ids, lengths, rows)
    count *= model.rnn.num_directions  # each direction predicts every one of them
    nll = nll / count
    return nll + activation_reg * square, nll, count
