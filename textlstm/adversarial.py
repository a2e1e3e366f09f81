"""Adversarial training on the word embeddings (`train.adversarial` = epsilon; 0 = off).

Miyato, Dai & Goodfellow (2017), "Adversarial training methods for semi-supervised text
classification": besides the loss on a batch as it is, train on the same batch with its
embedded words moved a little in the direction that raises the loss most,
r = epsilon * g / ||g||, where g is the gradient of the loss with respect to the text's
embeddings and ||g|| its L2 norm over all of that text's positions. The model learns to
keep its answer within a small ball around each text, a regulariser that acts where
words' meanings live (IMDB error 7.39 -> 6.21 in the paper, with pretraining).

Cost: one more forward and backward pass per step, so a step takes about twice as long;
no host sync (g stays on the device). Padding positions get no gradient (the model
masks them), so their perturbation is zero and padding still never changes a result.
Unlike the paper, the embeddings are not renormalised to zero mean and unit variance
first: epsilon is measured against textlstm's embedding scale (vectors of norm ~
sqrt(model.emb_dim) at initialisation), so sweep it per setting (docs/BENCHMARKS.md).
"""

import torch


class EmbeddedInputs:
    """Keeps the output of `embedding` in the next forward pass, with its gradient."""

    def __init__(self, embedding: torch.nn.Module):
        self.value = None
        self.handle = embedding.register_forward_hook(self.keep)

    def keep(self, _module, _inputs, output):
        if output.requires_grad:
            output.retain_grad()
            self.value = output

    def remove(self) -> None:
        self.handle.remove()


def perturbation(grad: torch.Tensor, epsilon: float) -> torch.Tensor:
    """epsilon * grad / ||grad||, the norm over each text's (T, E) block; (B, T, E)."""
    norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12)
    return (epsilon * grad / norm[:, None, None]).detach()
