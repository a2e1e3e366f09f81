"""The model: padding never changes a prediction; both LSTM paths equal packed nn.LSTM."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textlstm.cell import CellLSTM
from textlstm.config import ModelConfig
from textlstm.model import DenseLSTM, TextLSTM

SHAPES = [(1, False, 1), (1, True, 3), (2, True, 7), (3, True, 5), (2, False, 4)]


def reference(layers, bidirectional, batch, seed=0):
    """A real nn.LSTM, a batch with mixed lengths (one of them 1), and its packed result."""
    torch.manual_seed(seed)
    lstm = nn.LSTM(6, 5, layers, batch_first=True, bidirectional=bidirectional)
    lengths = torch.randint(1, 9, (batch,))
    lengths[0] = 1
    x = torch.randn(batch, int(lengths.max()), 6)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, (h, c) = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return lstm, x, lengths, out, h, c


@pytest.mark.parametrize("layers,bidirectional,batch", SHAPES)
def test_cell_equals_packed_nn_lstm(layers, bidirectional, batch):
    lstm, x, lengths, out, h, c = reference(layers, bidirectional, batch)
    cell = CellLSTM(6, 5, layers, bidirectional)
    cell.load_state_dict(lstm.state_dict())
    cell_out, (cell_h, cell_c) = cell(x, lengths)
    torch.testing.assert_close(cell_out, out, atol=1e-5, rtol=0)
    torch.testing.assert_close(cell_h, h, atol=1e-5, rtol=0)
    torch.testing.assert_close(cell_c, c, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layers,bidirectional,batch", SHAPES)
def test_dense_equals_packed_nn_lstm(layers, bidirectional, batch):
    lstm, x, lengths, out, h, _ = reference(layers, bidirectional, batch)
    dense = DenseLSTM(6, 5, layers, bidirectional)
    dense.load_state_dict(lstm.state_dict())
    dense_out, dense_h = dense.encode(x, lengths)
    directions = 2 if bidirectional else 1
    torch.testing.assert_close(dense_out, out, atol=1e-5, rtol=0)
    torch.testing.assert_close(dense_h, h[-directions:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("rnn_class", [CellLSTM, DenseLSTM])
def test_gradients_equal_packed_nn_lstm(rnn_class):
    lstm, x, lengths, out, _, _ = reference(2, True, 5)
    mine = rnn_class(6, 5, 2, True)
    mine.load_state_dict(lstm.state_dict())
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    my_out = mine(x, lengths)[0] if rnn_class is CellLSTM else mine.encode(x, lengths)[0]
    (my_out * weights).sum().backward()
    for name, param in lstm.named_parameters():
        torch.testing.assert_close(getattr(mine, name).grad, param.grad, atol=1e-4, rtol=0)


def test_one_layer_cell_equals_a_loop_of_lstmcell():
    torch.manual_seed(1)
    step = nn.LSTMCell(4, 3)
    cell = CellLSTM(4, 3, 1, bidirectional=False)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name + "_l0").data.copy_(getattr(step, name))
    x = torch.randn(2, 6, 4)
    h = c = torch.zeros(2, 3)
    outs = []
    for t in range(6):
        h, c = step(x[:, t], (h, c))
        outs.append(h)
    out, (h_n, c_n) = cell(x, torch.tensor([6, 6]))
    torch.testing.assert_close(out, torch.stack(outs, 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(c_n[0], c, atol=1e-6, rtol=0)


@pytest.mark.parametrize("rnn", ["cudnn", "cell"])
@pytest.mark.parametrize("pooling", ["last", "max", "mean", "max+last+mean"])
def test_padding_never_changes_logits(rnn, pooling):
    torch.manual_seed(0)
    # the LSTM alone; with the n-gram bag: tests/test_ngrams.py
    model = TextLSTM(
        ModelConfig(pooling=pooling, rnn=rnn, emb_dim=8, hidden_dim=8, ngrams=0), 50, 3
    )
    model.eval()
    text = torch.tensor([[5, 9, 13]])
    alone = model(text, torch.tensor([3]))
    batch = torch.zeros(4, 11, dtype=torch.long)
    batch[0, :3] = text
    batch[1:, :] = torch.randint(2, 50, (3, 11))
    in_batch = model(batch, torch.tensor([3, 11, 7, 10]))
    torch.testing.assert_close(in_batch[0:1], alone, atol=1e-5, rtol=0)


def test_reading_the_last_padded_step_would_change_predictions():
    """Why the model never uses out[:, -1]: the padded batch moves a short text's value."""
    torch.manual_seed(0)
    lstm = nn.LSTM(4, 4, batch_first=True)
    x = torch.randn(1, 3, 4)
    padded = torch.cat([x, torch.zeros(1, 5, 4)], dim=1)
    alone = lstm(x)[0][:, -1]
    naive = lstm(padded)[0][:, -1]
    assert (alone - naive).abs().max() > 1e-2


def test_state_dict_round_trip_between_implementations():
    torch.manual_seed(0)
    fast = TextLSTM(ModelConfig(rnn="cudnn", emb_dim=8, hidden_dim=8, ngrams=0), 40, 2).eval()
    slow = TextLSTM(ModelConfig(rnn="cell", emb_dim=8, hidden_dim=8, ngrams=0), 40, 2).eval()
    slow.load_state_dict(fast.state_dict())
    back = TextLSTM(ModelConfig(rnn="cudnn", emb_dim=8, hidden_dim=8, ngrams=0), 40, 2).eval()
    back.load_state_dict(slow.state_dict())
    ids, lengths = torch.randint(2, 40, (3, 9)), torch.tensor([9, 4, 1])
    torch.testing.assert_close(slow(ids, lengths), fast(ids, lengths), atol=1e-5, rtol=0)
    assert torch.equal(back(ids, lengths), fast(ids, lengths))
