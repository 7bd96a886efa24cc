"""textsim: the zero-shot text floor. Item text is embedded once by a frozen encoder (mean-pooled, L2-normalised);
a user's score for an item is the cosine between the item and the mean of the user's last `history` items. Nothing
is trained, so any LLM recommender that reads item text and cannot beat it has learned nothing from its training
that the text alone does not already give."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.lm.models import load_encoder
from bench.lm.pooling import masked_mean
from bench.method import DEVICE, Method, resolve_device


@dataclass
class TextSimParams:
    encoder: str = field(default="minilm", metadata={"help": "text encoder: HF name/path, or minilm (offline)"})
    history: int = field(default=10, metadata={"help": "the user's most recent items averaged into the query"})
    title_words: int = field(default=0, metadata={"help": "item text cut to this many words (0 = whole text)"})
    max_length: int = field(default=64, metadata={"help": "encoder tokens per item text"})
    batch_size: int = field(default=128, metadata={"help": "item texts per encoder forward pass"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto", **DEVICE})


class TextSim(Method):
    name = "textsim"
    kind = "text"
    description = "zero-shot floor: cosine between an item's text embedding and the mean of the user's recent items"
    Params = TextSimParams
    supports_full = True
    profiles = {"quick": {}, "paper": {}}  # nothing is trained: one setting serves both

    def fit(self, data) -> "TextSim":
        import torch
        p = self.params
        self.data_, self.device_ = data, resolve_device(p.device)
        enc = load_encoder(p.encoder, device=self.device_)
        model = enc.model.to(self.device_).eval()
        texts = [" ".join(t.split()[:p.title_words]) if p.title_words else t for t in data.item_text]
        out = []
        with torch.no_grad():
            for s in range(0, len(texts), p.batch_size):
                tok = enc.tokenizer(texts[s:s + p.batch_size], padding=True, truncation=True, max_length=p.max_length,
                                    return_tensors="pt").to(self.device_)
                out.append(masked_mean(model(**tok).last_hidden_state, tok["attention_mask"]).float().cpu())
        emb = torch.cat(out).numpy().astype(np.float64)
        self.item_emb_ = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self.fit_info_ = {"encoder": p.encoder, "items_embedded": len(texts),
                          "empty_texts": int(sum(1 for t in texts if not t.strip()))}
        return self

    def _queries(self, users, split: str) -> np.ndarray:
        q = np.stack([self.item_emb_[self.data_.history(int(u), split)[-self.params.history:]].mean(0) for u in users])
        return q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)

    def score(self, users, candidates, split="test"):
        q = self._queries(users, split)
        return np.einsum("uh,uch->uc", q, self.item_emb_[np.asarray(candidates)])

    def score_full(self, users, split="test"):
        return self._queries(users, split) @ self.item_emb_.T


class TextSimLLMInput(TextSim):
    """The floor on the text the yes/no LLM methods' prompts show under the same profile (TALLRec, CoLLM, GANPrompt
    and its ablations read `history_len` items with titles cut to `title_words`), so a comparison with it does not
    credit them with text they never read. `textsim` stays the headline floor: a method's input budget is part of it.
    tests/test_textsim.py keeps these profiles equal to the LLM methods'."""
    name = "textsim-llm-input"
    description = ("textsim on the LLM methods' prompt text: the profile's history length and title cut (quick: 4 "
                   "items, 6 words; paper: 10 items, 12 words)")
    profiles = {"quick": {"history": 4, "title_words": 6}, "paper": {"history": 10, "title_words": 12}}
