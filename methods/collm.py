"""CoLLM (Zhang et al., 2023): collaborative embeddings injected into an LLM recommender.

- Collaborative model: the harness's own BPR-MF (RecBole, trained inside fit on the same split); its user and item
  embeddings are then frozen.
- Stage 1 (TALLRec's stage): LoRA on the causal LM with BCE on the yes/no logits; the prompt's <user> and <item>
  placeholder positions hold zero vectors (no collaborative information yet).
- Stage 2: LoRA frozen; a trained MLP maps each collaborative embedding into the LM's token-embedding space and
  its output is written at the placeholder positions.
- Scoring: the prefix (history + <user>) runs once per user with its key/value cache; candidates' suffixes
  (title + <item> + question) are scored in batches (bench/lm/yesno.py)."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.evaluate import evaluate_sampled
from bench.lm.models import load_causal_lm
from bench.lm.prompts import PromptStyle, get_template, split_prompt
from bench.lm.samples import make_samples
from bench.lm.yesno import YesNoScorer, answer_token_ids
from bench.method import Method, resolve_device
from bench.training import BestOnValidation

USER_SLOT, ITEM_SLOT = "<user>", "<item>"


@dataclass
class CoLLMParams:
    lm: str = field(default="smollm2", metadata={"help": "causal LM: HF name/path or smollm2"})
    template: str = field(default="collm-0", metadata={"help": "template with <user> and <item> placeholders"})
    cf_epochs: int = field(default=50, metadata={"help": "BPR-MF training epochs (early-stopped on validation)"})
    cf_embedding_size: int = field(default=64, metadata={"help": "BPR-MF embedding size"})
    mlp_hidden: int = field(default=256, metadata={"help": "hidden size of the embedding mapper"})
    train_samples: int = field(default=2000, metadata={"help": "training samples, half positive"})
    stage1_epochs: int = field(default=1, metadata={"help": "LoRA epochs (TALLRec stage)"})
    stage2_epochs: int = field(default=1, metadata={"help": "mapper epochs"})
    batch_size: int = field(default=16, metadata={"help": "batch size"})
    stage1_lr: float = field(default=1e-4, metadata={"help": "LoRA learning rate"})
    stage2_lr: float = field(default=1e-3, metadata={"help": "mapper learning rate"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    valid_users: int = field(default=100, metadata={"help": "validation users for choosing the best stage-2 epoch"})
    history_len: int = field(default=10, metadata={"help": "history items in the prompt"})
    title_words: int = field(default=12, metadata={"help": "titles cut to this many words"})
    max_length: int = field(default=256, metadata={"help": "max prompt tokens (longer prompts keep their end)"})
    score_batch: int = field(default=32, metadata={"help": "candidate suffixes per forward pass"})
    max_minutes: float | None = field(default=None, metadata={"help": "time budget per stage"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})


class CoLLM(Method):
    name = "collm"
    kind = "llm"
    resources = {"num_cpus": 2, "num_gpus": 1}
    description = "CoLLM: frozen BPR-MF embeddings mapped into the LLM's token space, after a TALLRec stage"
    Params = CoLLMParams
    profiles = {"quick": {"cf_epochs": 20, "train_samples": 64, "batch_size": 8, "stage1_lr": 3e-4, "valid_users": 0,
                          "history_len": 5, "title_words": 8, "max_length": 160, "max_minutes": 8},
                "paper": {}}

    def _device(self) -> str:
        return resolve_device(self.params.device)

    # ---- prompts with embedding slots ----
    def _ids_and_slots(self, text: str, first: bool) -> tuple[list[int], list[tuple[int, str]]]:
        """Token ids of text with each placeholder as one slot position (its embedding is written later)."""
        ids, slots = [], []
        pieces = text.replace(ITEM_SLOT, "\x00" + ITEM_SLOT + "\x00").replace(USER_SLOT, "\x00" + USER_SLOT + "\x00")
        for piece in pieces.split("\x00"):
            if piece in (USER_SLOT, ITEM_SLOT):
                slots.append((len(ids), piece))
                ids.append(self.tok_.eos_token_id if self.tok_.eos_token_id is not None else 0)
            elif piece:
                ids += self.tok_(piece, add_special_tokens=first and not ids).input_ids
        return ids, slots

    def _embeds(self, text: str, user: int, item: int, first: bool, with_cf: bool) -> torch.Tensor:
        ids, slots = self._ids_and_slots(text, first)
        emb = self.scorer_.embed(ids)
        if slots:
            emb = emb.clone()
            for pos, kind in slots:
                emb[pos] = self._slot_vector(user if kind == USER_SLOT else item, kind) if with_cf else 0.0
        return emb

    def _slot_vector(self, idx: int, kind: str) -> torch.Tensor:
        table = self.user_emb_ if kind == USER_SLOT else self.item_emb_
        return self.mapper_(table[idx])

    def set_prompt(self, template, style: dict | None = None) -> None:
        """Score with another template (robustness suite): the collaborative slots are added to it if it has none."""
        text = template.text
        if USER_SLOT not in text:
            text = text.replace("{purchase_history}", "{purchase_history} (user representation: " + USER_SLOT + ")", 1)
        if ITEM_SLOT not in text:
            text = text.replace("{target_item}", "{target_item} " + ITEM_SLOT, 1)
        self.template_ = dataclasses.replace(template, text=text)
        self.style_override_ = dict(style or {})
        self.scorer_.yes_id, self.scorer_.no_id = answer_token_ids(self.tok_, *template.answers)

    def _pair(self, history, item) -> tuple[str, str]:
        style = PromptStyle(history_len=self.params.history_len, title_words=self.params.title_words)
        style = dataclasses.replace(style, **getattr(self, "style_override_", {}))
        return split_prompt(self.template_, style, [self.data_.item_text[i] for i in history],
                            self.data_.item_text[int(item)], self.data_.category)

    def _sample_embeds(self, s, with_cf: bool) -> torch.Tensor:
        prefix, suffix = self._pair(s.history, s.item)
        seq = torch.cat([self._embeds(prefix, s.user, s.item, True, with_cf),
                         self._embeds(suffix, s.user, s.item, False, with_cf)])
        return seq[-self.params.max_length:]

    # ---- fit ----
    def fit(self, data) -> "CoLLM":
        from methods.bpr import BPR
        p = self.params
        self.data_, self.device_ = data, self._device()
        rng = np.random.default_rng(data.seed)
        torch.manual_seed(data.seed)
        self.template_ = get_template(p.template)
        info = {"timings_s": {}}
        t0 = time.perf_counter()
        cf = BPR(epochs=p.cf_epochs, embedding_size=p.cf_embedding_size, patience=5, device=self.device_).fit(data)
        with torch.no_grad():
            self.user_emb_ = cf.model_.user_embedding.weight[torch.as_tensor(cf.user_map_)].detach().to(self.device_)
            self.item_emb_ = cf.model_.item_embedding.weight[torch.as_tensor(cf.item_map_)].detach().to(self.device_)
        info["cf"] = {k: cf.fit_info_[k] for k in ("epochs_run", "best_epoch", "best_valid")}
        info["timings_s"]["cf_model"] = time.perf_counter() - t0

        lm = load_causal_lm(p.lm)
        self.tok_ = lm.tokenizer
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(lm.model, LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                                                    target_modules=["q_proj", "v_proj"])).to(self.device_)
        yes, no = self.template_.answers
        self.scorer_ = YesNoScorer(model, self.tok_, batch_size=p.score_batch, yes=yes, no=no)
        h_lm = model.get_input_embeddings().weight.shape[1]
        self.mapper_ = nn.Sequential(nn.Linear(p.cf_embedding_size, p.mlp_hidden), nn.GELU(),
                                     nn.Linear(p.mlp_hidden, h_lm)).to(self.device_)
        samples = make_samples(data, p.train_samples, p.history_len, rng)

        t0 = time.perf_counter()
        lora = [q for q in model.parameters() if q.requires_grad]
        info["stage1"] = self._train(samples, lora, p.stage1_lr, p.stage1_epochs, False, rng)
        info["timings_s"]["stage1_lora"] = time.perf_counter() - t0
        for q in lora:
            q.requires_grad_(False)
        t0 = time.perf_counter()
        info["stage2"] = self._train(samples, list(self.mapper_.parameters()), p.stage2_lr, p.stage2_epochs, True, rng)
        info["timings_s"]["stage2_mapper"] = time.perf_counter() - t0
        self.fit_info_ = info
        return self

    def _train(self, samples, params, lr, epochs, with_cf, rng) -> dict:
        p = self.params
        opt = torch.optim.AdamW(params, lr=lr)
        history, es = [], BestOnValidation(self.mapper_, max_minutes=p.max_minutes)
        for epoch in range(epochs):
            self.scorer_.model.train()
            order = rng.permutation(len(samples))
            losses = []
            for s in range(0, len(order), p.batch_size):
                batch = [samples[i] for i in order[s:s + p.batch_size]]
                margins = self.scorer_.margins_embeds([self._sample_embeds(x, with_cf) for x in batch])
                loss = F.binary_cross_entropy_with_logits(
                    margins, torch.tensor([x.label for x in batch], device=self.device_))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                if es.out_of_time():
                    break
            entry = {"epoch": epoch, "bce": float(np.mean(losses))}
            vc = self.data_.valid_candidates
            if with_cf and p.valid_users and vc is not None:
                sub = vc.subset(np.sort(rng.choice(len(vc.users), size=min(p.valid_users, len(vc.users)), replace=False)))
                entry["valid_auc"] = evaluate_sampled(self.score(sub.users, sub.items, "valid"), sub.labels).metrics["auc"]
                es.observe(epoch, entry["valid_auc"])
            history.append(entry)
            self.data_.log(f"collm {'mapper' if with_cf else 'lora'} epoch {epoch}: bce {entry['bce']:.4f}"
                           + (f", valid auc {entry['valid_auc']:.4f}" if "valid_auc" in entry else ""))
            if es.out_of_time():
                break
        es.restore()
        self.scorer_.model.eval()
        return {"history": history}

    def answer_counter(self):
        return self.scorer_.answers

    @torch.no_grad()
    def score(self, users, candidates, split="test"):
        self.scorer_.model.eval()
        users, candidates = np.asarray(users), np.asarray(candidates)
        out = np.empty(candidates.shape, dtype=np.float32)
        for r, u in enumerate(users):
            hist = self.data_.history(int(u), split)[-self.params.history_len:]
            prefix = self._pair(hist, int(candidates[r, 0]))[0]
            pre = self._embeds(prefix, int(u), 0, True, True)
            sufs = [self._embeds(self._pair(hist, int(c))[1], int(u), int(c), False, True) for c in candidates[r]]
            keep = self.params.max_length - len(pre)  # long prompts keep their end, as in training
            if keep <= 0:
                pre, keep = pre[-(self.params.max_length // 2):], self.params.max_length // 2
            out[r] = self.scorer_.score_cached_embeds(pre, [s[-keep:] for s in sufs])
        return out
