"""GANPrompt (the paper; our reading: ../shared/design/ganprompt-method.md), as a harness method.

Stage 0  attributes: an LM fills the attribute template for sampled training histories; top-K words kept.
Stage 1  diversity encoder: the encoder G embeds the real prompt x_0 and the K adversarial variants x_k (history
         joined with attribute a_k); a 3-layer MLP discriminator D classifies the K + 1 variants; alternating updates,
         L_D = CE(D(z.detach()), k) and L_G = L_LLM + lambda * L_div + mu * L_adv.
Stage 2  robustness fine-tuning: G frozen; projection + LoRA (or the T5 decoder) trained with BCE on P(yes) over
         the real prompts and their attribute variants.
Scoring  the margin logit(yes) - logit(no) of the seen template for every candidate.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import MethodError
from bench.evaluate import evaluate_sampled
from bench.lm.models import load_causal_lm
from bench.lm.prompts import PromptStyle, get_template, split_prompt
from bench.lm.samples import Sample, make_samples
from bench.method import Method, resolve_device
from bench.training import BestOnValidation
from methods.ganprompt.attributes import generate_attributes
from methods.ganprompt.backbone import EncoderCausal, PlainCausal, T5Backbone
from methods.ganprompt.losses import (Discriminator, adversarial_loss, diversity_loss, masked_mean,
                                      pairwise_mean_distance)

BACKBONES = ("encoder+causal", "t5", "plain")


@dataclass
class GANPromptParams:
    backbone: str = field(default="encoder+causal", metadata={"help": f"one of {BACKBONES}"})
    template: str = field(default="seen-0", metadata={"help": "recommendation template id (bench/lm/templates.yaml)"})
    encoder: str = field(default="minilm", metadata={"help": "diversity encoder (encoder+causal): HF name/path or minilm"})
    lm: str = field(default="smollm2", metadata={"help": "causal LM (encoder+causal, plain): HF name/path or smollm2"})
    t5: str = field(default="t5-small", metadata={"help": "T5 name/path (backbone t5), e.g. t5-small, t5-base"})
    attribute_generator: str = field(default="smollm2", metadata={
        "help": "LM that fills the attribute template: causal or masked-LM name/path, or smollm2"})
    n_attributes: int = field(default=5, metadata={"help": "K, dataset-level attributes (the paper: 5)"})
    attribute_samples: int = field(default=500, metadata={"help": "training histories shown to the attribute generator"})
    use_attributes: bool = field(default=True, metadata={"help": "off = the no-attribute ablation (no variants, no D)"})
    adversarial: str = field(default="cooperative", metadata={"help": "L_adv: cooperative, minimax or off (no D)"})
    lambda_div: float = field(default=0.1, metadata={"help": "weight of the diversity constraint L_div"})
    mu_adv: float = field(default=0.1, metadata={"help": "weight of the adversarial term L_adv"})
    dist_alpha: float = field(default=1.0, metadata={"help": "weight of (1 - cos) in Dist"})
    dist_beta: float = field(default=1.0, metadata={"help": "weight of JS divergence in Dist"})
    js_temperature: float = field(default=1.0, metadata={"help": "t in softmax(z / t) for the JS term"})
    diversity_scope: str = field(default="variants", metadata={"help": "variants (a sample's K+1) or batch"})
    d_hidden: int = field(default=256, metadata={"help": "discriminator hidden size"})
    proj_hidden: int = field(default=512, metadata={"help": "projection hidden size (encoder+causal)"})
    train_samples: int = field(default=2000, metadata={"help": "training (history, candidate, label) samples, half positive"})
    stage1_epochs: int = field(default=1, metadata={"help": "stage-1 epochs over the training samples"})
    stage1_batch: int = field(default=256, metadata={"help": "samples per stage-1 step (each with K+1 variants)"})
    stage1_lr: float = field(default=5e-5, metadata={"help": "Adam lr of G (the paper: 5e-5)"})
    d_lr: float = field(default=5e-5, metadata={"help": "Adam lr of D (the paper: 5e-5, like G)"})
    d_steps: int = field(default=1, metadata={
        "help": "D updates per G step on the same detached batch (1 = plain alternation; cheap, since z is reused)"})
    llm_variants: int = field(default=0, metadata={
        "help": "variants per sample in stage-1 L_LLM: 0 = all K+1; n = x_0 and n-1 random attribute variants"})
    stage2_epochs: int = field(default=1, metadata={"help": "stage-2 epochs"})
    stage2_batch: int = field(default=128, metadata={"help": "stage-2 batch (the paper: 128)"})
    stage2_lr: float = field(default=1e-5, metadata={"help": "AdamW lr in stage 2 (the paper: 1e-5)"})
    stage2_variants: int = field(default=0, metadata={
        "help": "attribute variants per sample in stage 2 besides x_0: 0 = all K"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    decoder_tuning: str = field(default="lora", metadata={"help": "t5 backbone: lora or full decoder tuning"})
    valid_users: int = field(default=200, metadata={"help": "validation users for stage-2 early stopping (0 = none)"})
    history_len: int = field(default=10, metadata={"help": "history items in a prompt (the paper: 3..10)"})
    title_words: int = field(default=12, metadata={"help": "titles cut to this many words"})
    max_length: int = field(default=256, metadata={"help": "max prompt tokens"})
    score_batch: int = field(default=32, metadata={"help": "prompts per scoring forward pass"})
    max_minutes: float | None = field(default=None, metadata={"help": "time budget for each training stage"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto; bf16 autocast on cuda"})


# quick: the ~24 G steps a CPU affords leave a plainly alternating D at chance (seen on beauty: accuracy 1/6 throughout;
# on the same embeddings D needs ~50-200 Adam steps at 1e-3), so D takes 10 steps per G step; stage 2 at lr 1e-3
# overshot (BCE 1.6 on beauty), 3e-4 does not
QUICK = {"attribute_samples": 48, "train_samples": 96, "stage1_batch": 4, "stage1_lr": 1e-4, "d_lr": 1e-3, "d_steps": 10,
         "llm_variants": 2, "stage2_batch": 8, "stage2_lr": 3e-4, "stage2_variants": 1, "valid_users": 0, "history_len": 5,
         "title_words": 8, "max_length": 160, "max_minutes": 10}
PAPER = {}  # the dataclass defaults are the paper's settings


class GANPrompt(Method):
    name = "ganprompt"
    kind = "proposed"
    resources = {"num_cpus": 2, "num_gpus": 1}
    description = "GAN-trained diversity encoder + LoRA yes/no LLM recommender (the paper's method)"
    Params = GANPromptParams
    profiles = {"quick": QUICK, "paper": PAPER}

    # ---------------------------------------------------------------- data
    def _style(self) -> PromptStyle:
        base = PromptStyle(history_len=self.params.history_len, title_words=self.params.title_words)
        return dataclasses.replace(base, **getattr(self, "style_override_", {}))

    def set_prompt(self, template, style: dict | None = None) -> None:
        """Score with another recommendation template / history format (the robustness suite); the model itself
        was trained on its own template."""
        self._seen = template
        self.style_override_ = dict(style or {})
        self.backbone_.set_answers(*template.answers)

    def _titles(self, items) -> list[str]:
        return [self.data_.item_text[int(i)] for i in items]

    def _pair(self, history, item: int, attribute: str | None = None) -> tuple[str, str]:
        t = self._seen if attribute is None else self._adv
        return split_prompt(t, self._style(), self._titles(history), self.data_.item_text[int(item)],
                            self.data_.category, attribute)

    def _text(self, history, item, attribute=None) -> str:
        return "".join(self._pair(history, item, attribute))

    def _samples(self, data, rng: np.random.Generator) -> list[Sample]:
        return make_samples(data, self.params.train_samples, self.params.history_len, rng)

    # ---------------------------------------------------------------- model
    def _device(self) -> str:
        return resolve_device(self.params.device)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.device_ == "cuda" else torch.autocast(
            "cpu", enabled=False)

    def _build_backbone(self):
        p = self.params
        if p.backbone == "encoder+causal":
            return EncoderCausal(p.encoder, p.lm, p.proj_hidden, p.max_length)
        if p.backbone == "t5":
            return T5Backbone(p.t5, p.max_length)
        if p.backbone == "plain":
            yes, no = get_template(p.template).answers
            return PlainCausal(p.lm, p.max_length, p.score_batch, yes, no)
        raise MethodError(f"{self.name}: backbone {p.backbone!r}: valid: {', '.join(BACKBONES)}")

    def _margins(self, pairs: list[tuple[str, str]]) -> torch.Tensor:
        if isinstance(self.backbone_, PlainCausal):
            return self.backbone_.margins_pairs(pairs)
        return self.backbone_.margins(["".join(pq) for pq in pairs])

    # ---------------------------------------------------------------- fit
    def fit(self, data) -> "GANPrompt":
        self.fit_diversity_encoder(data)
        t0 = time.perf_counter()
        self.fit_info_["stage2"] = self._stage2(self._train_samples, self._rng)
        self.fit_info_["timings_s"]["stage2_finetune"] = time.perf_counter() - t0
        del self._train_samples, self._rng
        return self

    def fit_diversity_encoder(self, data) -> "GANPrompt":
        """Stages 0 and 1 only (the diversity analysis uses this); fit() continues with stage 2."""
        p = self.params
        if p.adversarial not in ("cooperative", "minimax", "off"):
            raise MethodError(f"{self.name}: adversarial {p.adversarial!r}: valid: cooperative, minimax, off")
        self.data_ = data
        self.device_ = self._device()
        self.discriminator_ = None
        self._seen, self._adv = get_template(p.template), get_template("adversarial-0")
        self._rng = rng = np.random.default_rng(data.seed)
        torch.manual_seed(data.seed)
        info = {"timings_s": {}}
        self._train_samples = samples = self._samples(data, rng)
        info["n_train_samples"] = len(samples)

        t0 = time.perf_counter()
        self.attributes_ = []
        if p.use_attributes and p.backbone != "plain":
            hist_users = rng.choice(data.n_users, size=min(p.attribute_samples, data.n_users), replace=False)
            histories = [data.train_seq(u)[-p.history_len:] for u in hist_users]
            self.attributes_, info["attributes"] = generate_attributes(
                data, histories, lambda: self._load_generator(), p.n_attributes, self._style(),
                cache_key={"generator": p.attribute_generator})
            data.log(f"{self.name} stage 0: attributes {self.attributes_}")
        info["timings_s"]["stage0_attributes"] = time.perf_counter() - t0

        self.backbone_ = self._build_backbone().to(self.device_)
        t0 = time.perf_counter()
        if p.backbone != "plain":
            info["stage1"] = self._stage1(samples, rng)
        info["timings_s"]["stage1_diversity_encoder"] = time.perf_counter() - t0
        self.fit_info_ = info
        return self

    def _load_generator(self):
        name = self.params.attribute_generator
        if name.startswith("mlm:") or name == "tiny-mlm":
            return _load_masked_lm(name.removeprefix("mlm:"))
        return load_causal_lm(name)

    def _variant_texts(self, s: Sample) -> list[str]:
        return [self._text(s.history, s.item)] + [self._text(s.history, s.item, a) for a in self.attributes_]

    def _stage1(self, samples: list[Sample], rng) -> dict:
        """The GAN: alternate a D step on detached embeddings and a G step on L_G."""
        p, bb = self.params, self.backbone_
        k1 = 1 + len(self.attributes_)
        use_d = k1 > 1 and p.adversarial != "off"
        dim = bb.encoder.config.hidden_size if hasattr(bb.encoder.config, "hidden_size") else bb.encoder.config.d_model
        self.discriminator_ = Discriminator(dim, k1, p.d_hidden).to(self.device_) if use_d else None
        g_opt = torch.optim.Adam([q for q in bb.generator_parameters() if q.requires_grad], lr=p.stage1_lr)
        d_opt = torch.optim.Adam(self.discriminator_.parameters(), lr=p.d_lr) if use_d else None
        log, t0, step = [], time.perf_counter(), 0
        bb.train()
        for epoch in range(p.stage1_epochs):
            order = rng.permutation(len(samples))
            for start in range(0, len(order), p.stage1_batch):
                batch = [samples[i] for i in order[start:start + p.stage1_batch]]
                texts = [t for s in batch for t in self._variant_texts(s)]
                classes = torch.arange(k1, device=self.device_).repeat(len(batch))
                with self._autocast():
                    states, mask = bb.encode(texts)
                    z = masked_mean(states, mask).float()
                entry = {"step": step, "epoch": epoch}
                if use_d:  # D steps on detached embeddings; accuracy is measured before this step's updates
                    for j in range(max(1, p.d_steps)):
                        d_opt.zero_grad()
                        d_logits = self.discriminator_(z.detach())
                        loss_d = F.cross_entropy(d_logits, classes)
                        if j == 0:
                            entry.update(loss_d=loss_d.item(),
                                         d_acc=(d_logits.argmax(-1) == classes).float().mean().item())
                        loss_d.backward()
                        d_opt.step()
                zv = z.view(len(batch), k1, -1)
                loss_div = diversity_loss(zv, p.dist_alpha, p.dist_beta, p.js_temperature, p.diversity_scope)
                loss_adv = adversarial_loss(self.discriminator_(z), classes, p.adversarial) if use_d else z.new_zeros(())
                sel = self._llm_rows(len(batch), k1, rng)
                labels = torch.tensor([s.label for s in batch], device=self.device_).repeat_interleave(k1)[sel]
                with self._autocast():
                    margins = bb.margins_from_states(states[sel], mask[sel])
                loss_llm = F.binary_cross_entropy_with_logits(margins.float(), labels)
                loss_g = loss_llm + p.lambda_div * loss_div + p.mu_adv * loss_adv
                g_opt.zero_grad()
                loss_g.backward()
                g_opt.step()
                with torch.no_grad():
                    dist = pairwise_mean_distance(zv.detach(), p.dist_alpha, p.dist_beta, p.js_temperature).item() \
                        if k1 > 1 else 0.0
                entry.update(loss_llm=loss_llm.item(), loss_div=loss_div.item(), loss_adv=loss_adv.item(),
                             loss_g=loss_g.item(), mean_pair_distance=dist)
                log.append(entry)
                if step % 5 == 0:
                    self.data_.log(f"{self.name} stage 1 step {step}: " + ", ".join(
                        f"{k} {v:.4f}" for k, v in entry.items() if isinstance(v, float)))
                step += 1
                if p.max_minutes is not None and time.perf_counter() - t0 > 60 * p.max_minutes:
                    return {"steps": step, "stopped_by": "max_minutes", "log": log}
        return {"steps": step, "stopped_by": "epochs", "log": log}

    def _llm_rows(self, b: int, k1: int, rng) -> torch.Tensor:
        """Which of the b * (K+1) variants enter L_LLM: all, or x_0 plus llm_variants - 1 random others."""
        n = self.params.llm_variants
        if n <= 0 or n >= k1:
            return torch.arange(b * k1, device=self.device_)
        rows = []
        for i in range(b):
            rows += [i * k1] + [i * k1 + int(j) for j in rng.choice(np.arange(1, k1), size=n - 1, replace=False)]
        return torch.tensor(rows, device=self.device_)

    def _stage2_pairs(self, s: Sample, rng) -> list[tuple[str, str]]:
        pairs = [self._pair(s.history, s.item)]
        if self.attributes_:
            n = self.params.stage2_variants or len(self.attributes_)
            for a in rng.choice(self.attributes_, size=min(n, len(self.attributes_)), replace=False):
                pairs.append(self._pair(s.history, s.item, str(a)))
        return pairs

    def _stage2(self, samples: list[Sample], rng) -> dict:
        p, bb = self.params, self.backbone_
        bb.start_stage2(p.lora_r, p.lora_alpha, p.lora_dropout, p.decoder_tuning)
        bb.to(self.device_)
        opt = torch.optim.AdamW(bb.stage2_parameters(), lr=p.stage2_lr)
        rows = [(pair, s.label) for s in samples for pair in self._stage2_pairs(s, rng)]
        history, es, stopped = [], BestOnValidation(bb, max_minutes=p.max_minutes), "epochs"
        for epoch in range(p.stage2_epochs):
            bb.train()
            order = rng.permutation(len(rows))
            losses = []
            for start in range(0, len(order), p.stage2_batch):
                batch = [rows[i] for i in order[start:start + p.stage2_batch]]
                labels = torch.tensor([y for _, y in batch], device=self.device_)
                with self._autocast():
                    margins = self._margins([pq for pq, _ in batch])
                loss = F.binary_cross_entropy_with_logits(margins.float(), labels)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                if len(losses) % 5 == 0:
                    self.data_.log(f"{self.name} stage 2 epoch {epoch} step {len(losses)}: bce {np.mean(losses[-5:]):.4f}")
                if es.out_of_time():
                    stopped = "max_minutes"
                    break
            entry = {"epoch": epoch, "bce": float(np.mean(losses))}
            if p.valid_users and self.data_.valid_candidates is not None:
                vc = self.data_.valid_candidates
                idx = rng.choice(len(vc.users), size=min(p.valid_users, len(vc.users)), replace=False)
                sub = vc.subset(np.sort(idx))
                entry["valid_auc"] = evaluate_sampled(self.score(sub.users, sub.items, "valid"), sub.labels).metrics["auc"]
                es.observe(epoch, entry["valid_auc"])
            history.append(entry)
            self.data_.log(f"{self.name} stage 2 epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
            if stopped != "epochs":
                break
        es.restore()
        bb.eval()
        return {"rows": len(rows), "history": history, "stopped_by": stopped}

    # ---------------------------------------------------------------- score
    @torch.no_grad()
    def score(self, users, candidates, split="test"):
        self.backbone_.eval()
        users, candidates = np.asarray(users), np.asarray(candidates)
        out = np.empty(candidates.shape, dtype=np.float32)
        for r, u in enumerate(users):
            hist = self.data_.history(int(u), split)[-self.params.history_len:]
            if isinstance(self.backbone_, PlainCausal):
                prefix = self._pair(hist, int(candidates[r, 0]))[0]
                suffixes = [self._pair(hist, int(c))[1] for c in candidates[r]]
                out[r] = self.backbone_.scorer.score_cached(prefix, suffixes)
                continue
            texts = [self._text(hist, int(c)) for c in candidates[r]]
            for s in range(0, len(texts), self.params.score_batch):
                with self._autocast():
                    out[r, s:s + self.params.score_batch] = self._margins(
                        [(t, "") for t in texts[s:s + self.params.score_batch]]).float().cpu().numpy()
        return out

    def answer_counter(self):
        return self.backbone_.answers

    # ---------------------------------------------------------------- checkpoint
    def save(self, folder: Path) -> None:
        """Trained state as safetensors (trainable tensors only) plus a JSON with params and attributes."""
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        trainable, seen = {}, set()
        for k, v in self.backbone_.state_dict().items():
            if _is_trained(k, self.backbone_) and v.data_ptr() not in seen:  # tied weights are stored once
                seen.add(v.data_ptr())
                trainable[k] = v.detach().cpu().contiguous()
        save_file(trainable, str(folder / "backbone.safetensors"))
        if self.discriminator_ is not None:
            save_file({k: v.cpu().contiguous() for k, v in self.discriminator_.state_dict().items()},
                      str(folder / "discriminator.safetensors"))
        (folder / "ganprompt.json").write_text(json.dumps({"params": asdict(self.params), "attributes": self.attributes_}))

    @classmethod
    def load(cls, folder: Path, data) -> "GANPrompt":
        from safetensors.torch import load_file
        folder = Path(folder)
        meta = json.loads((folder / "ganprompt.json").read_text())
        m = cls(**meta["params"])
        m.data_, m.device_, m.attributes_ = data, m._device(), meta["attributes"]
        m._seen, m._adv = get_template(m.params.template), get_template("adversarial-0")
        m.backbone_ = m._build_backbone()
        p = m.params
        m.backbone_.start_stage2(p.lora_r, p.lora_alpha, p.lora_dropout, p.decoder_tuning)
        missing = m.backbone_.load_state_dict(load_file(str(folder / "backbone.safetensors")), strict=False)
        if missing.unexpected_keys:
            raise MethodError(f"{folder}: unexpected tensors {missing.unexpected_keys[:3]}")
        m.discriminator_ = None
        m.backbone_.to(m.device_).eval()
        return m


def _is_trained(key: str, backbone) -> bool:
    """Tensors that training can change; the frozen causal LM's own weights are reloaded from its name instead."""
    if isinstance(backbone, T5Backbone):
        return True
    if "lora_" in key or key.startswith("proj.") or key == "token_rms":
        return True
    return isinstance(backbone, EncoderCausal) and key.startswith("encoder.")


def _load_masked_lm(name: str):
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from bench.lm.models import Loaded, _bert_tokenizer, resolve
    if name == "tiny-mlm":
        from transformers import BertConfig, BertForMaskedLM
        torch.manual_seed(0)
        tok = _bert_tokenizer()
        cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)
        return Loaded(BertForMaskedLM(cfg).eval(), tok, "tiny-mlm")
    path = resolve(name)
    return Loaded(AutoModelForMaskedLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path), name)
