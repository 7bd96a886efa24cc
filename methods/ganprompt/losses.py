"""GANPrompt's diversity constraint and discriminator (../shared/design/ganprompt-method.md, stage 1).

Dist(A, B) = alpha * (1 - cos(A, B)) + beta * JS(softmax(A / t) || softmax(B / t))
L_div      = - mean over pairs i < j of Dist(z_i, z_j) among a sample's K + 1 variants (minimising spreads them)
L_D        = - mean_k log D(z_k)[k], with z detached
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import MethodError


def js_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """JS(P || Q) with P = softmax(A / t), Q = softmax(B / t), in nats, along the last dimension."""
    log_p = F.log_softmax(p_logits / temperature, dim=-1)
    log_q = F.log_softmax(q_logits / temperature, dim=-1)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - torch.log(torch.tensor(2.0, dtype=log_p.dtype))
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
    return 0.5 * kl_pm + 0.5 * kl_qm


def distance(a: torch.Tensor, b: torch.Tensor, alpha: float = 1.0, beta: float = 1.0,
             temperature: float = 1.0) -> torch.Tensor:
    cos = F.cosine_similarity(a, b, dim=-1)
    return alpha * (1.0 - cos) + beta * js_divergence(a, b, temperature)


def pairwise_mean_distance(z: torch.Tensor, alpha: float = 1.0, beta: float = 1.0,
                           temperature: float = 1.0) -> torch.Tensor:
    """z: [B, V, H] (V variants per sample) -> mean over samples of the mean Dist over pairs i < j."""
    v = z.shape[1]
    i, j = torch.triu_indices(v, v, offset=1)
    return distance(z[:, i], z[:, j], alpha, beta, temperature).mean()


def diversity_loss(z: torch.Tensor, alpha: float = 1.0, beta: float = 1.0, temperature: float = 1.0,
                   scope: str = "variants") -> torch.Tensor:
    """L_div. scope 'variants': pairs among each sample's K + 1 variants (the paper); 'batch': also across the
    samples of the batch (all B * V vectors as one set)."""
    if scope == "batch":
        z = z.reshape(1, -1, z.shape[-1])
    elif scope != "variants":
        raise MethodError(f"diversity scope {scope!r}: valid: variants, batch")
    if z.shape[1] < 2:
        return z.new_zeros(())
    return -pairwise_mean_distance(z, alpha, beta, temperature)


class Discriminator(nn.Module):
    """3-layer MLP over K + 1 classes (class 0 = real prompt, class k = attribute k)."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Linear(hidden, hidden), nn.Sigmoid(),
                                 nn.Linear(hidden, n_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # logits; softmax is inside the cross-entropy


def adversarial_loss(d_logits: torch.Tensor, classes: torch.Tensor, mode: str) -> torch.Tensor:
    """The generator's adversarial term. cooperative: G minimises D's cross-entropy (variants become separable, as
    the paper's Figure 3 shows); minimax: G maximises it (the textbook zero-sum game); off: 0."""
    if mode == "off":
        return d_logits.new_zeros(())
    ce = F.cross_entropy(d_logits, classes)
    if mode == "cooperative":
        return ce
    if mode == "minimax":
        return -ce
    raise MethodError(f"adversarial mode {mode!r}: valid: cooperative, minimax, off")
