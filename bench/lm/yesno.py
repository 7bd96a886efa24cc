"""Yes/no answers of a causal LM: p = softmax([logit(yes), logit(no)])[0] at the answer position. Scores are the
margin logit(yes) - logit(no) = log(p / (1 - p)): the same ranking as p, without the ties that float32 saturation of
p near 0 or 1 would create.

The methods score through the shared engine (bench/lm/engine.py, packed prefix-shared rows). `YesNoScorer` here is
the plain reference: one full sequence (prefix + suffix token ids) per candidate; tests and
benchmarks/prefix_cache.py check that the packed scorer computes the same function."""
from __future__ import annotations

import numpy as np
import torch

from bench.errors import MethodError


def answer_token_ids(tokenizer, yes: str = " yes", no: str = " no") -> tuple[int, int]:
    ids = [tokenizer(w, add_special_tokens=False).input_ids for w in (yes, no)]
    if any(len(i) == 0 for i in ids) or ids[0][0] == ids[1][0]:
        raise MethodError(f"the tokenizer cannot tell the answers {yes!r} and {no!r} apart (their first tokens are "
                          "equal or empty); use a template with other answers")
    return ids[0][0], ids[1][0]


class AnswerCounter:
    """The valid-answer rate a generating recommender would have: how often the greedy next token over the whole
    vocabulary is one of the two answers. Scores never depend on it (they read logit(yes) - logit(no), so every
    candidate of every user gets a score); it says how well the prompt elicits the answer format. Counted only
    outside autograd, i.e. when scoring."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.prompts, self.valid, self.yes = 0, 0, 0

    def update(self, logits: torch.Tensor, yes_id: int, no_id: int) -> None:
        if torch.is_grad_enabled():
            return
        top = logits.argmax(-1)
        self.prompts += int(top.numel())
        self.valid += int(((top == yes_id) | (top == no_id)).sum())
        self.yes += int((top == yes_id).sum())

    def as_dict(self) -> dict:
        rate = (lambda k: k / self.prompts if self.prompts else None)
        return {"prompts": self.prompts, "greedy_answer_valid_rate": rate(self.valid), "greedy_yes_rate": rate(self.yes),
                "meaning": "share of scored prompts whose most likely next token (whole vocabulary) is the yes / no "
                           "answer; scores use logit(yes) - logit(no) regardless, so every user is counted"}


def yes_no_margin(logits: torch.Tensor, yes_id: int, no_id: int, counter: AnswerCounter | None = None) -> torch.Tensor:
    """log p(yes) - log p(no) from full-vocabulary logits [B, V] at the answer position; p(yes) = sigmoid(margin)."""
    if counter is not None:
        counter.update(logits, yes_id, no_id)
    return logits[:, yes_id] - logits[:, no_id]


class YesNoScorer:
    def __init__(self, model, tokenizer, batch_size: int = 16, yes: str = " yes", no: str = " no"):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.answers = AnswerCounter()
        self.yes_id, self.no_id = answer_token_ids(tokenizer, yes, no)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @property
    def device(self):
        return next(self.model.parameters()).device

    def encode(self, prefix: str, suffixes: list[str]) -> tuple[list[int], list[list[int]]]:
        p = self.tok(prefix, add_special_tokens=True).input_ids
        return p, [self.tok(s, add_special_tokens=False).input_ids for s in suffixes]

    def embed(self, ids: list[int]) -> torch.Tensor:
        return self.model.get_input_embeddings()(torch.tensor(ids, device=self.device))

    @staticmethod
    def _pad_embeds(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right padding of [L_i, H] sequences; returns embeds, mask and each row's last real position."""
        n, h = max(len(s) for s in seqs), seqs[0].shape[-1]
        out = seqs[0].new_zeros((len(seqs), n, h))
        mask = torch.zeros((len(seqs), n), dtype=torch.long, device=seqs[0].device)
        for r, s in enumerate(seqs):
            out[r, :len(s)] = s
            mask[r, :len(s)] = 1
        return out, mask, torch.tensor([len(s) - 1 for s in seqs], device=seqs[0].device)

    def yes_logit_margin(self, logits: torch.Tensor) -> torch.Tensor:
        return yes_no_margin(logits, self.yes_id, self.no_id, self.answers)

    def margins_embeds(self, seqs: list[torch.Tensor]) -> torch.Tensor:
        """Margins of whole sequences given as input embeddings [L_i, H] (differentiable)."""
        emb, mask, last = self._pad_embeds(seqs)
        out = self.model(inputs_embeds=emb, attention_mask=mask)
        return self.yes_logit_margin(out.logits[torch.arange(len(seqs)), last].float())

    def margins_plain(self, sequences: list[list[int]]) -> torch.Tensor:
        return self.margins_embeds([self.embed(s) for s in sequences])

    @torch.no_grad()
    def score_plain(self, prefix: str, suffixes: list[str]) -> np.ndarray:
        p, sufs = self.encode(prefix, suffixes)
        out = [self.margins_plain([p + s for s in sufs[i:i + self.batch_size]])
               for i in range(0, len(sufs), self.batch_size)]
        return torch.cat(out).cpu().numpy()
