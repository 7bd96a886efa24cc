"""Pooling of token states shared by every text-reading method (encoders, GANPrompt's diversity encoder, CTRL)."""
from __future__ import annotations

import torch


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: states [B, T, H], mask [B, T] -> [B, H]."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp(min=1.0)
