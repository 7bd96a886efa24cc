"""Prefix-shared packing: the one way every yes/no causal-LM method runs its prompts, in training and in scoring.

A *group* is one prompt prefix (a user's history and the question up to the target) and the suffixes of several
candidates (" <target title> next ?\nanswer:"). A group becomes one row: [prefix | suffix_1 | ... | suffix_m], with a
4-D attention mask under which each suffix sees the prefix and itself only, and position ids that restart at
len(prefix) for every suffix. Each suffix is therefore computed exactly as if it followed the prefix alone (the
tests check equality with one full sequence per candidate), but the prefix runs once per row; rows of different
users are padded into one batch, so a GPU scores many users per forward pass. Logits are taken only at the
answer positions (the last token of each suffix): no [B, T, V] tensor is ever built.

No key/value-cache API is used, so the same code runs on every transformers version that accepts a custom 4-D mask
and explicit position ids (checked on 5.17 and 5.24)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.lm.yesno import AnswerCounter, yes_no_margin


@dataclass
class Group:
    """Input embeddings of one prefix [P, H] and m suffixes [S_j, H] (token embeddings, or soft tokens)."""
    prefix: torch.Tensor
    suffixes: list[torch.Tensor]

    @property
    def length(self) -> int:
        return len(self.prefix) + sum(len(s) for s in self.suffixes)


def split_group(group: Group, max_suffixes: int) -> list[Group]:
    """Rows of at most `max_suffixes` suffixes each (the prefix is repeated): bounds a row's length."""
    if max_suffixes <= 0 or len(group.suffixes) <= max_suffixes:
        return [group]
    return [Group(group.prefix, group.suffixes[i:i + max_suffixes])
            for i in range(0, len(group.suffixes), max_suffixes)]


def pack(groups: list[Group]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> inputs_embeds [B, T, H], additive attention mask [B, 1, T, T], position ids [B, T], and the (row, column)
    of every suffix's last token (its answer position), in group order then suffix order."""
    first = groups[0].prefix if len(groups[0].prefix) else groups[0].suffixes[0]
    dtype, device, hidden = first.dtype, first.device, first.shape[-1]
    t = max(g.length for g in groups)
    seg = torch.full((len(groups), t), -1, dtype=torch.long)   # -1 pad, 0 prefix, j + 1 suffix j
    pos = torch.zeros((len(groups), t), dtype=torch.long)
    rows, cols, pieces = [], [], []
    for r, g in enumerate(groups):
        p = len(g.prefix)
        seg[r, :p] = 0
        pos[r, :p] = torch.arange(p)
        at = p
        for j, s in enumerate(g.suffixes):
            seg[r, at:at + len(s)] = j + 1
            pos[r, at:at + len(s)] = torch.arange(p, p + len(s))
            rows.append(r)
            cols.append(at + len(s) - 1)
            at += len(s)
        row = torch.cat([g.prefix, *g.suffixes]) if g.suffixes else g.prefix
        pieces.append(torch.cat([row, row.new_zeros((t - len(row), hidden))]) if len(row) < t else row)
    emb = torch.stack(pieces)
    q, k = seg[:, :, None], seg[:, None, :]
    idx = torch.arange(t)
    causal = idx[None, :, None] >= idx[None, None, :]
    allowed = causal & (k != -1) & ((k == 0) | (k == q)) & (q != -1)
    allowed |= (q == -1) & torch.eye(t, dtype=torch.bool)[None]  # pad rows attend to themselves: no NaN
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return (emb, mask[:, None].to(device), pos.to(device), torch.tensor(rows, device=device),
            torch.tensor(cols, device=device))


def _parts(model):
    """(transformer body, output head) of a causal LM, under a peft wrapper or not."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    return core.base_model, core.get_output_embeddings()


def output_head(model):
    """The output head (lm_head) of a causal LM, LoRA-wrapped or not."""
    return _parts(model)[1]


def answer_states(model, groups: list[Group]) -> torch.Tensor:
    """Last hidden states [N, H] at the answer position of every suffix of every group (N = all suffixes): what the
    output head reads."""
    emb, mask, pos, rows, cols = pack(groups)
    hidden = _parts(model)[0](inputs_embeds=emb, attention_mask=mask, position_ids=pos).last_hidden_state
    return hidden[rows, cols]


def answer_logits(model, groups: list[Group]) -> torch.Tensor:
    """Full-vocabulary logits [N, V] at the answer position of every suffix of every group (N = all suffixes)."""
    return output_head(model)(answer_states(model, groups)).float()


def group_margins(model, groups: list[Group], yes_id: int, no_id: int,
                  counter: AnswerCounter | None = None) -> torch.Tensor:
    """logit(yes) - logit(no) for every suffix, in order (differentiable when grad is enabled)."""
    return yes_no_margin(answer_logits(model, groups), yes_id, no_id, counter)


def batches_by_tokens(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices of rows in consecutive batches whose padded size (rows x longest row) stays within max_tokens."""
    out, cur, longest = [], [], 0
    for i, length in enumerate(lengths):
        n = max(longest, length)
        if cur and n * (len(cur) + 1) > max_tokens:
            out.append(cur)
            cur, n = [], length
        cur.append(i)
        longest = n
    if cur:
        out.append(cur)
    return out
