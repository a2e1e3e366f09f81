"""The LSTM written from its equations: the readable reference for the cuDNN path.

For each time step t, layer and direction (gate order i, f, g, o, as in `nn.LSTM`):

    i, f, g, o = split(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh, 4)
    i, f, o    = σ(i), σ(f), σ(o)          input, forget and output gates
    g          = tanh(g)                   candidate cell content
    c_t        = f ⊙ c_{t-1} + i ⊙ g        keep some of the old memory, write some new
    h_t        = o ⊙ tanh(c_t)             expose part of the memory as output

Padding: a right-padded batch holds texts of different lengths. Past a text's length
the update is masked out, so its state stays frozen at the last real token and its
output is zero. The backward direction runs t = T-1 .. 0 with the same mask: its state
stays at zero through the padding and starts at the text's true last token.

Parameters carry `nn.LSTM`'s names and shapes (`weight_ih_l{k}`, `weight_hh_l{k}`,
`bias_ih_l{k}`, `bias_hh_l{k}`, `_reverse` for the backward direction), so one state
dict loads into `nn.LSTM`, into `DenseLSTM` (model.py) and into `CellLSTM`.

Cost: one small matrix product per time step in Python, 2 x layers x T kernel launches
per batch: several times slower than cuDNN or oneDNN (see docs/BENCHMARKS.md). It is
for reading, testing and experiments cuDNN cannot run, not for speed.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class LSTMParameters(nn.Module):
    """Weights named, shaped and initialised exactly as `nn.LSTM` has them."""

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=True, dropout=0.0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.dropout = num_layers, dropout
        self.num_directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                sfx = self.suffix(layer, direction)
                shapes = {
                    "weight_ih": (4 * hidden_size, layer_input),
                    "weight_hh": (4 * hidden_size, hidden_size),
                    "bias_ih": (4 * hidden_size,),
                    "bias_hh": (4 * hidden_size,),
                }
                for name, shape in shapes.items():
                    self.register_parameter(name + sfx, nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    @staticmethod
    def suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def layer_weights(self, layer: int, direction: int) -> list[torch.Tensor]:
        """[w_ih, w_hh, b_ih, b_hh] of one layer and direction, in `torch.lstm`'s order."""
        sfx = self.suffix(layer, direction)
        return [getattr(self, n + sfx) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def between_layers(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Dropout on a layer's output before the next layer, as `nn.LSTM(dropout=p)`."""
        if layer < self.num_layers - 1 and self.dropout > 0:
            return F.dropout(x, self.dropout, self.training)
        return x


class CellLSTM(LSTMParameters):
    """Multi-layer, optionally bidirectional LSTM, one masked time step at a time."""

    def step(self, x_proj, h, c, w_hh, b_hh):
        """One time step; `x_proj` = x_t W_ihᵀ + b_ih, computed for all t up front."""
        gates = x_proj + h @ w_hh.t() + b_hh
        i, f, g, o = gates.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c_next = f * c + i * g
        h_next = o * torch.tanh(c_next)
        return h_next, c_next

    def run_direction(self, x, mask, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer, direction)
        batch, steps, _ = x.shape
        x_proj = x @ w_ih.t() + b_ih  # the input half of every gate, all steps in one product
        h = x.new_zeros(batch, self.hidden_size)
        c = x.new_zeros(batch, self.hidden_size)
        outputs = [None] * steps
        order = range(steps) if direction == 0 else range(steps - 1, -1, -1)
        for t in order:
            h_next, c_next = self.step(x_proj[:, t], h, c, w_hh, b_hh)
            real = mask[:, t, None]  # (B, 1): is step t inside the text?
            h = torch.where(real, h_next, h)  # frozen past the end / zero before the start
            c = torch.where(real, c_next, c)
            outputs[t] = h_next * real
        return torch.stack(outputs, dim=1), h, c

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        """Like `nn.LSTM(batch_first=True)` on a packed batch: (out, (h_n, c_n)).

        `out` is (B, T, D*H) with zeros past each length; h_n and c_n are
        (layers*D, B, H), each text's state at its true end.
        """
        steps = x.shape[1]
        mask = torch.arange(steps, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        h_n, c_n = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.num_directions):
                out, h, c = self.run_direction(layer_input, mask, layer, direction)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            layer_out = torch.cat(outs, dim=2)
            layer_input = self.between_layers(layer_out, layer)
        return layer_out, (torch.stack(h_n), torch.stack(c_n))

    def encode(self, x, lengths):
        out, (h_n, _) = self.forward(x, lengths)
        return out, h_n[-self.num_directions :]
