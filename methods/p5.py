"""P5 (Geng et al., 2022), sequential recommendation as text-to-text with a T5: the prompt lists the user's history as
item ids and the target is the next item's id; several prompt templates are used in training and one is held out.

Item ids are RANDOM: a seeded permutation maps items to numbers, so that ids carry no order. (P5's consecutive ids
follow the users' sequences and let a model guess the test item from its neighbours; see Rajput et al. 2023 and
Hua et al. 2023.) Candidates are scored by the log-likelihood of their id's tokens given the prompt: the encoder runs
once per user, the decoder over all candidates in a batch. Any HF T5 name or path (`t5-small` where a hub is
reachable); tests use a small random T5."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import MethodError
from bench.evaluate import evaluate_sampled
from bench.lm.models import load_t5
from bench.lm.prompts import get_template, template_ids
from bench.method import DEVICE, Method, resolve_device
from bench.training import BestOnValidation


@dataclass
class P5Params:
    t5: str = field(default="t5-small", metadata={
        "help": "T5 name or path (t5-small, t5-base); offline, trained from scratch: scratch-small (t5-small's "
                "shape) or scratch-mini (d_model 256, 4 + 4 layers)"})
    train_templates: str = field(default="p5-seq-0,p5-seq-1,p5-seq-2", metadata={
        "help": "templates seen in training", "choices": template_ids, "each": ","})
    eval_template: str = field(default="p5-seq-0", metadata={
        "help": "template used for scoring (p5-seq-3 is held out)", "choices": template_ids})
    train_samples: int = field(default=20000, metadata={"help": "(history, next item) training samples",
                                                              "min": 1})
    epochs: int = field(default=10, metadata={"help": "training epochs (best by validation NDCG@10 kept)",
                                                   "min": 1})
    batch_size: int = field(default=32, metadata={"help": "training batch size", "min": 1})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate (P5: 1e-3)"})
    history_len: int = field(default=10, metadata={"help": "history items in the prompt", "min": 1})
    max_length: int = field(default=256, metadata={"help": "max prompt tokens"})
    valid_users: int = field(default=200, metadata={"help": "validation users for early stopping (0 = none)",
                                                        "min": 0})
    patience: int = field(default=3, metadata={"help": "epochs without validation improvement", "min": 1})
    max_minutes: float | None = field(default=None, metadata={"help": "training time budget"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto", **DEVICE})


class P5(Method):
    name = "p5"
    kind = "llm"
    resources = {"num_cpus": 2, "num_gpus": 1}
    description = "P5: T5 text-to-text sequential recommendation, random item ids, likelihood scoring"
    Params = P5Params
    # no pretrained T5 ships offline: the quick (CPU) profile trains a T5 from scratch, and says so. With t5-small's
    # shape, 256 samples x 2 epochs (all a CPU allowed at that size) left P5 at chance (beauty n19-u100: AUC .525).
    # scratch-mini (d_model 256, 4 + 4 layers) costs ~1/8 of it per sample, so the same budget trains on 3000
    # (history, next item) samples for up to 5 epochs: with random ids that is an id-sequence model learnt from
    # scratch, like SASRec, with no text knowledge to start from.
    profiles = {"quick": {"t5": "scratch-mini", "train_samples": 3000, "epochs": 5, "batch_size": 32,
                          "valid_users": 100, "history_len": 5, "patience": 2, "max_minutes": 15},
                "paper": {}}

    def _device(self) -> str:
        return resolve_device(self.params.device)

    def _prompt(self, template, user: int, history) -> str:
        ids = ", ".join(str(self.item_ids_[i]) for i in history[-self.params.history_len:])
        return template.text.format(user_id=self.user_ids_[user], history_ids=ids)

    def fit(self, data) -> "P5":
        p = self.params
        self.data_, self.device_ = data, self._device()
        rng = np.random.default_rng(data.seed)
        torch.manual_seed(data.seed)
        # random ids, 1-based, for items and users: no order to exploit
        self.item_ids_ = rng.permutation(data.n_items) + 1
        self.user_ids_ = rng.permutation(data.n_users) + 1
        self.train_templates_ = [get_template(t) for t in p.train_templates.split(",")]
        self.eval_template_ = get_template(p.eval_template)
        loaded = load_t5(p.t5)
        self.model_, self.tok_ = loaded.model.to(self.device_), loaded.tokenizer
        samples = []
        users = [u for u in range(data.n_users) if len(data.train_seq(u)) >= 2]
        if not users:
            raise MethodError("p5: no user has two training items")
        for u in rng.choice(users, size=p.train_samples, replace=True):
            seq = data.train_seq(u)
            t = int(rng.integers(1, len(seq)))
            samples.append((int(u), seq[:t], int(seq[t])))
        opt = torch.optim.AdamW(self.model_.parameters(), lr=p.learning_rate)
        vc = data.valid_candidates
        valid_sub = None
        if vc is not None and p.valid_users:  # drawn once: every epoch is compared on the same users
            valid_sub = vc.subset(np.sort(rng.choice(len(vc.users), size=min(p.valid_users, len(vc.users)),
                                                     replace=False)))
        es, history, stopped = BestOnValidation(self.model_, p.patience, p.max_minutes), [], "epochs"
        for epoch in range(p.epochs):
            self.model_.train()
            order = rng.permutation(len(samples))
            losses = []
            for s in range(0, len(order), p.batch_size):
                batch = [samples[i] for i in order[s:s + p.batch_size]]
                prompts = [self._prompt(self.train_templates_[rng.integers(len(self.train_templates_))], u, h)
                           for u, h, _ in batch]
                enc = self.tok_(prompts, padding=True, truncation=True, max_length=p.max_length, return_tensors="pt")
                lab = self.tok_([str(self.item_ids_[t]) for _, _, t in batch], padding=True, return_tensors="pt")
                labels = lab["input_ids"].masked_fill(lab["attention_mask"] == 0, -100)
                out = self.model_(input_ids=enc["input_ids"].to(self.device_),
                                  attention_mask=enc["attention_mask"].to(self.device_), labels=labels.to(self.device_))
                opt.zero_grad()
                out.loss.backward()
                opt.step()
                losses.append(out.loss.item())
                if es.out_of_time():
                    stopped = "max_minutes"
                    break
            entry = {"epoch": epoch, "loss": float(np.mean(losses))}
            if valid_sub is not None:
                entry["valid_ndcg@10"] = evaluate_sampled(self.score(valid_sub.users, valid_sub.items, "valid"),
                                                          valid_sub.labels).metrics["ndcg@10"]
                es.observe(epoch, entry["valid_ndcg@10"])
            history.append(entry)
            data.log("p5 epoch " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in entry.items()))
            if stopped != "epochs" or es.patience_spent():
                stopped = stopped if stopped != "epochs" else "patience"
                break
        es.restore()
        self.model_.eval()
        self.fit_info_ = {"history": history, "stopped_by": stopped, "ids": "random permutation (seeded)",
                          "train_templates": p.train_templates, "eval_template": p.eval_template,
                          "answer": "likelihood of each candidate id; no free generation, so every answer is valid"}
        return self

    @torch.no_grad()
    def score(self, users, candidates, split="test"):
        """Sum of log-probabilities of each candidate id's tokens given the user's prompt."""
        self.model_.eval()
        users, candidates = np.asarray(users), np.asarray(candidates)
        out = np.empty(candidates.shape, dtype=np.float32)
        for r, u in enumerate(users):
            prompt = self._prompt(self.eval_template_, int(u), self.data_.history(int(u), split))
            enc = self.tok_([prompt], truncation=True, max_length=self.params.max_length, return_tensors="pt")
            enc = {k: v.to(self.device_) for k, v in enc.items()}
            states = self.model_.get_encoder()(**enc).last_hidden_state
            lab = self.tok_([str(self.item_ids_[c]) for c in candidates[r]], padding=True, return_tensors="pt")
            ids, mask = lab["input_ids"].to(self.device_), lab["attention_mask"].to(self.device_)
            n = len(ids)
            logits = self.model_(encoder_outputs=(states.expand(n, -1, -1),),
                                 attention_mask=enc["attention_mask"].expand(n, -1),
                                 labels=ids.masked_fill(mask == 0, -100)).logits
            logp = F.log_softmax(logits.float(), -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
            out[r] = (logp * mask).sum(1).cpu().numpy()
        return out
