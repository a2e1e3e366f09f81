"""Adversarial training (`train.adversarial`): the perturbation, padding, a real run."""

import torch
import torch.nn.functional as F
from conftest import tiny_config

from textlstm.adversarial import EmbeddedInputs, perturbation
from textlstm.config import ModelConfig
from textlstm.model import TextLSTM


def test_perturbation_has_norm_epsilon_per_text_and_spares_padding():
    torch.manual_seed(0)
    model = TextLSTM(ModelConfig(emb_dim=8, hidden_dim=8, pooling="max+last+mean", ngrams=0), 40, 3)
    model.eval()  # no dropout: the gradient is the model's own
    ids = torch.tensor([[5, 9, 13, 0, 0], [7, 8, 9, 10, 11]])
    lengths = torch.tensor([3, 5])
    embedded = EmbeddedInputs(model.embedding)
    F.cross_entropy(model(ids, lengths), torch.tensor([0, 2])).backward()
    embedded.remove()
    delta = perturbation(embedded.value.grad, 2.5)
    torch.testing.assert_close(delta.flatten(1).norm(dim=1), torch.tensor([2.5, 2.5]))
    assert delta[0, 3:].abs().max() == 0  # padding positions are never moved
    # moved against the model, the loss goes up; padding still changes nothing
    with torch.no_grad():
        before = F.cross_entropy(model(ids, lengths), torch.tensor([0, 2]))
        after = F.cross_entropy(model(ids, lengths, delta=delta), torch.tensor([0, 2]))
        alone = model(ids[:1, :3], lengths[:1], delta=delta[:1, :3])
        torch.testing.assert_close(model(ids, lengths, delta=delta)[:1], alone)
    assert after > before


def test_a_tiny_adversarial_run_learns(tmp_path):
    from textlstm.training import fit

    result = fit(tiny_config("train.adversarial=1.0", "train.test=false"), tmp_path / "adv")
    assert result.best["val_macro_f1"] > 0.8  # SMS spam; chance is about 0.46
