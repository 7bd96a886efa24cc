"""GANPrompt (the paper; our reading: ../shared/design/ganprompt-method.md), as a harness method.

Stage 0  attributes: an LM fills the attribute template for sampled training histories; top-K words kept.
Stage 1  diversity encoder: the encoder G embeds the real prompt x_0 and the K adversarial variants x_k (history
         joined with attribute a_k); a 3-layer MLP discriminator D classifies the K + 1 variants; alternating updates,
         L_D = CE(D(z.detach()), k) and L_G = L_LLM + lambda * L_div + mu * L_adv. L_LLM is computed in micro-batches
         (gradient accumulation) with logits at the answer positions only, so the paper's batch fits in memory.
Stage 2  robustness fine-tuning: G frozen (eval mode); projection + LoRA (or the T5 decoder) trained with BCE on the
         yes/no margins of the real prompts and their attribute variants, in the shared LM layer's loop.
Scoring  the margin logit(yes) - logit(no) of the seen template for every candidate (the shared LM layer's scorer).
Backbone `plain` (ganprompt-plain) is the control without a diversity encoder: bench.lm.method.LoRAYesNo.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import MethodError
from bench.io import sha256_json
from bench.lm.engine import autocast, finetune
from bench.lm.method import LoRAYesNo
from bench.method import resolve_device
from bench.lm.models import load_causal_lm
from bench.lm.packing import Group, group_margins
from bench.lm.params import LMParams
from bench.lm.prompts import PromptBuilder, Template, get_template, token_encoder
from bench.training import progress
from bench.lm.samples import TrainGroup, make_groups
from methods.ganprompt.attributes import generate_attributes
from methods.ganprompt.backbone import ENCODER_STATES, EncoderCausal, T5Backbone
from methods.ganprompt.losses import Discriminator, adversarial_loss, diversity_loss, pairwise_mean_distance

BACKBONES = ("encoder+causal", "t5", "plain")
CONTEXTS = ("joint", "split")
ADVERSARIAL = ("cooperative", "minimax", "off")
SCOPES = ("variants", "batch")
DECODER_TUNING = ("lora", "full")


@dataclass
class GANPromptParams(LMParams):
    backbone: str = field(default="encoder+causal", metadata={
        "help": "encoder+causal (MiniLM -> projection -> causal LM), t5, or plain (the control)", "choices": BACKBONES})
    encoder_context: str = field(default="joint", metadata={
        "help": "encoder+causal: joint = the encoder reads each whole prompt; split = it reads the history prefix and "
                "each candidate apart, so candidates share the prefix in the LM (several times faster)",
        "choices": CONTEXTS})
    encoder_states: str = field(default="last", metadata={
        "help": "encoder+causal: what the projection reads: last (the encoder's last layer, the paper) or input+last "
                "(its embedding layer's output beside the last layer: token identity the LM can match across the "
                "history and the candidate; z, what D and L_div see, is the last layer either way)",
        "choices": ENCODER_STATES})
    encoder: str = field(default="minilm", metadata={"help": "diversity encoder (encoder+causal): HF name/path or minilm"})
    t5: str = field(default="t5-small", metadata={"help": "T5 name/path (backbone t5), e.g. t5-small, t5-base"})
    attribute_generator: str = field(default="smollm2", metadata={
        "help": "LM that fills the attribute template: causal or masked-LM (mlm:NAME) name/path, or smollm2"})
    n_attributes: int = field(default=5, metadata={"help": "K, dataset-level attributes (the paper: 5)", "min": 1})
    attribute_samples: int = field(default=500, metadata={"help": "training histories shown to the attribute generator",
                                                          "min": 1})
    use_attributes: bool = field(default=True, metadata={"help": "off = the no-attribute ablation (no variants, no D)"})
    adversarial: str = field(default="cooperative", metadata={"help": "L_adv: cooperative, minimax or off (no D)",
                                                              "choices": ADVERSARIAL})
    lambda_div: float = field(default=0.1, metadata={"help": "weight of the diversity constraint L_div"})
    mu_adv: float = field(default=0.1, metadata={"help": "weight of the adversarial term L_adv"})
    dist_alpha: float = field(default=1.0, metadata={"help": "weight of (1 - cos) in Dist"})
    dist_beta: float = field(default=1.0, metadata={"help": "weight of JS divergence in Dist"})
    js_temperature: float = field(default=1.0, metadata={"help": "t in softmax(z / t) for the JS term", "min": 1e-6})
    diversity_scope: str = field(default="variants", metadata={
        "help": "variants (a sample's K+1) or batch (all variants of a micro-batch as one set)", "choices": SCOPES})
    d_hidden: int = field(default=256, metadata={"help": "discriminator hidden size", "min": 1})
    proj_hidden: int = field(default=512, metadata={"help": "projection hidden size (encoder+causal)", "min": 1})
    align_steps: int = field(default=0, metadata={
        "help": "encoder+causal: projection warm-up steps before stage 1, fitting each encoder token's soft token to "
                "the LM's embedding of the same characters (0 = none, as in the paper)", "min": 0})
    align_groups: int = field(default=200, metadata={
        "help": "training histories whose prompts (seen and adversarial templates) form the alignment corpus",
        "min": 1})
    align_titles: int = field(default=2000, metadata={
        "help": "random item titles added to the alignment corpus (the words candidates are written with)", "min": 0})
    align_lr: float = field(default=1e-3, metadata={"help": "Adam lr of the projection warm-up", "min": 0.0})
    stage2_projection: bool = field(default=True, metadata={
        "help": "train the projection in stage 2 (the paper); off = it stays as stage 1 left it, so with LoRA on "
                "the output head only the LM body runs once per prompt (cached answer states)"})
    stage1_groups: int = field(default=0, metadata={"help": "training groups used in stage 1 (0 = all train_groups)",
                                                    "min": 0})
    stage1_epochs: int = field(default=1, metadata={"help": "stage-1 epochs (0 = no stage-1 training)", "min": 0})
    stage1_batch: int = field(default=256, metadata={"help": "samples per stage-1 step (each with K+1 variants)",
                                                     "min": 1})
    stage1_lr: float = field(default=5e-5, metadata={"help": "Adam lr of G (the paper: 5e-5)", "min": 0.0})
    d_lr: float = field(default=5e-5, metadata={"help": "Adam lr of D (the paper: 5e-5, like G)", "min": 0.0})
    d_steps: int = field(default=1, metadata={
        "help": "D updates per G step on the same detached batch (1 = plain alternation; cheap, since z is reused)",
        "min": 1})
    llm_variants: int = field(default=0, metadata={
        "help": "variants per sample in stage-1 L_LLM: 0 = all K+1; n = x_0 and n-1 random attribute variants",
        "min": 0})
    stage2_variants: int = field(default=0, metadata={
        "help": "attribute variants per sample in stage 2 besides x_0: 0 = all K", "min": 0})
    decoder_tuning: str = field(default="lora", metadata={"help": "t5 backbone: lora or full decoder tuning",
                                                          "choices": DECODER_TUNING})
    # stage 2 = the shared fine-tuning loop; the paper: batch 128, lr 1e-5, AdamW
    train_groups: int = field(default=2000, metadata={"help": "training histories (stage 1 and stage 2)", "min": 1})
    batch_groups: int = field(default=128, metadata={"help": "stage-2 histories per step (the paper: 128)", "min": 1})
    lr: float = field(default=1e-5, metadata={"help": "stage-2 AdamW learning rate (the paper: 1e-5)", "min": 0.0})


# quick (2 CPU cores, beauty), chosen from measurements (validation GAUC on 150 users x 8 candidates unless said):
# - The LM reads projected encoder states, not its own tokens. A logistic probe on its answer-position state (320
#   training histories, 96 validation users) gave .48-.53 after the old quick stages 0-1, against .60-.65 for the
#   same LM reading the text. The projection first has to speak the LM's embedding language: a warm-up fitting each
#   encoder token's soft token to the LM's embedding of the same characters (`align_steps`, 1500 Adam steps on the
#   100 histories' prompts and 2000 titles, ~2 min) raises the held-out nearest-token accuracy from 0 to .80 (last
#   layer) / .85 (`input+last`: the embedding layer's output beside the last layer), and the probe to .55-.57 /
#   .56-.60. Its zero-shot yes/no margin stays at chance: the answer needs training.
# - LoRA inside the blocks memorises at CPU batch sizes (methods/tallrec.py); so, as TALLRec's quick profile, stage 2
#   is a readout adapter (LoRA on the output head) and the projection stays as stages 0-1 left it
#   (`stage2_projection` off): the body runs once per prompt (300 histories x (x_0 + 1 attribute variant) + the
#   validation candidates, ~8 min) and 600 head steps cost ~100 s. Curves: last layer .51 -> .56 (best, step 200);
#   input+last .51 -> .61 (step 275), flat at .59-.61 to step 600.
# - Stage 1 back-propagates L_LLM through every LM layer (~25 s per step of 4 histories x 2 variants here): 4 G
#   steps at the paper's lr 5e-5 (at 1e-4 the readout after stage 1 stayed at chance, .47-.53, where without stage 1
#   it reached .56); D, a small MLP on the detached z, takes 100 steps per G step (on the same embeddings a plainly
#   alternating D stayed at chance, 1/6, for a whole CPU stage 1): its accuracy on each new batch, before it learns
#   from it, rose from 1/6 to .42-.46.
QUICK = {"encoder_context": "split", "encoder_states": "input+last", "proj_hidden": 1024, "align_steps": 1500,
         "align_groups": 100, "attribute_samples": 32, "train_groups": 300, "negatives": 7, "stage1_groups": 16,
         "stage1_batch": 4, "stage1_lr": 5e-5, "d_lr": 1e-3, "d_steps": 100, "llm_variants": 2, "stage2_variants": 1,
         "stage2_projection": False, "epochs": 8, "batch_groups": 4, "lr": 1e-3, "loss": "softmax",
         "lora_targets": "lm_head", "lora_layers": 0, "eval_every": 25, "valid_users": 150, "valid_negatives": 7,
         "history_len": 4, "title_words": 6, "max_length": 160, "max_minutes": 15}
PAPER = {}  # the dataclass defaults are the paper's stated settings


class GANPrompt(LoRAYesNo):
    name = "ganprompt"
    kind = "proposed"
    description = "GAN-trained diversity encoder + LoRA yes/no LLM recommender (the paper's method)"
    Params = GANPromptParams
    profiles = {"quick": QUICK, "paper": PAPER}

    @classmethod
    def ignored_params(cls, params: dict) -> set[str]:
        """plain reads LMParams only (it is LoRAYesNo); t5 has no projection to align."""
        if params.get("backbone") == "plain":
            own = {f.name for f in fields(GANPromptParams)}
            return own - {f.name for f in fields(LMParams)} - {"backbone"}
        if params.get("backbone") == "t5":
            return {"align_steps", "align_groups", "align_titles", "align_lr", "encoder", "encoder_context",
                    "encoder_states", "proj_hidden", "stage2_projection"}
        return {"t5", "decoder_tuning"}

    # ---------------------------------------------------------------- prompts and model
    def _builder(self, template: Template | None = None) -> PromptBuilder:
        p = self.params
        if p.backbone == "plain":
            return super()._builder(template)
        joint = p.backbone == "t5" or p.encoder_context == "joint"
        return PromptBuilder(template or self.template_, self._style(), self.data_.item_text, self.data_.category,
                             token_encoder(self.backbone_.enc_tok), p.max_length, joint=joint)

    def _setup(self, data) -> None:
        p = self.params
        if p.backbone == "plain":
            super()._setup(data)
            self.backbone_ = None
            return
        self.data_, self.device_ = data, resolve_device(p.device)
        self.template_, self.adversarial_template_ = get_template(p.template), get_template("adversarial-0")
        self.backbone_ = self.pretrained_backbone()
        self.engine_ = self.backbone_.engine(self._builder(), self.template_.answers, p.max_tokens, p.score_rows,
                                             self.device_)

    def _start_stage2(self) -> None:
        self.backbone_.start_stage2(self.params)
        self.backbone_.to(self.device_)
        if isinstance(self.backbone_, EncoderCausal):
            self.engine_.model = self.backbone_.lm  # LoRA wrapped the LM
        self.model_ = self.engine_.model

    def trainable(self):
        return self.backbone_.stage2_parameters() if self.backbone_ is not None else super().trainable()

    def _variant_builders(self) -> list[tuple[PromptBuilder, str | None]]:
        adv = self._builder(self.adversarial_template_)
        return [(self.engine_.builder, None)] + [(adv, a) for a in self.attributes_]

    def _prompts_of(self, g: TrainGroup, rng) -> list:
        """Stage 2: the real prompt x_0 and `stage2_variants` random attribute variants, all with g's labels."""
        out = super()._prompts_of(g, rng)
        if self.backbone_ is None or not self.attributes_:
            return out
        n = self.params.stage2_variants or len(self.attributes_)
        builder = self._builder(self.adversarial_template_)
        for a in rng.choice(self.attributes_, size=min(n, len(self.attributes_)), replace=False):
            out.append((self.engine_.prompt(g.user, g.history, g.items, str(a), builder), g.labels))
        return out

    # ---------------------------------------------------------------- fit
    def fit(self, data) -> "GANPrompt":
        if self.params.backbone == "plain":
            super().fit(data)
            self.attributes_, self.discriminator_ = [], None
            return self
        self.fit_diversity_encoder(data)
        p, rng = self.params, self._rng
        t0 = time.perf_counter()
        self._start_stage2()
        vset = self.engine_.valid_set(data, p.valid_users, p.valid_negatives, rng)
        self.fit_info_["stage2"] = finetune(
            self.engine_, self.trainable(), self._train_groups, self._prompts_of, data, epochs=p.epochs,
            batch_groups=p.batch_groups, lr=p.lr, weight_decay=p.weight_decay, eval_every=p.eval_every, vset=vset,
            rng=rng, max_minutes=p.max_minutes, name=f"{self.name} stage 2", loss=p.loss)
        self.fit_info_["timings_s"]["stage2_finetune"] = time.perf_counter() - t0
        self.fit_info_["prompts"] = dict(self.engine_.stats)
        del self._train_groups, self._rng
        return self

    def fit_diversity_encoder(self, data) -> "GANPrompt":
        """Stages 0 and 1 only (the diversity analysis uses this); fit() continues with stage 2."""
        p = self.params
        if p.backbone == "plain":
            raise MethodError(f"{self.name}: backbone plain has no diversity encoder")
        self._rng = rng = np.random.default_rng(data.seed)
        torch.manual_seed(data.seed)
        info = {"timings_s": {}}
        self._train_groups = groups = make_groups(data, p.train_groups, p.history_len, p.negatives, rng)
        info["train_groups"] = len(groups)

        t0 = time.perf_counter()
        self.attributes_, self.device_ = [], resolve_device(p.device)  # the attribute generator runs there
        if p.use_attributes:
            hist_users = rng.choice(data.n_users, size=min(p.attribute_samples, data.n_users), replace=False)
            histories = [data.train_seq(u)[-p.history_len:] for u in hist_users]
            self.attributes_, info["attributes"] = generate_attributes(
                data, histories, self._load_generator, p.n_attributes, self._style(),
                cache_key={"generator": p.attribute_generator, "seed": data.seed,
                           "histories": sha256_json([h.tolist() for h in histories])})
            data.log(f"{self.name} stage 0: attributes {self.attributes_}")
        info["timings_s"]["stage0_attributes"] = time.perf_counter() - t0

        self._setup(data)
        if p.align_steps and isinstance(self.backbone_, EncoderCausal):
            t0 = time.perf_counter()
            info["alignment"] = self.backbone_.align_projection(
                self._alignment_pieces(groups[:p.align_groups], rng), p.align_steps, p.align_lr, seed=data.seed,
                log=data.log)
            info["timings_s"]["projection_alignment"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        stage1 = groups[:p.stage1_groups] if p.stage1_groups else groups
        info["stage1"] = self._stage1(stage1, rng)
        info["timings_s"]["stage1_diversity_encoder"] = time.perf_counter() - t0
        self.fit_info_ = info
        return self

    def _alignment_pieces(self, groups: list[TrainGroup], rng) -> list[tuple[str, bool]]:
        """Texts the encoder reads (the builders' pieces): the seen and adversarial prompts of `groups` and
        `align_titles` random item titles, written as candidate suffixes are."""
        seen, adv = self.engine_.builder, self._builder(self.adversarial_template_)
        style, item_text = seen.style, seen.item_text
        pieces = []
        for g in groups:
            titles = [item_text[int(i)] for i in g.history[-style.history_len:]]
            attr = str(rng.choice(self.attributes_)) if self.attributes_ else None
            pieces += seen.texts(titles, g.items) + adv.texts(titles, g.items, attr)
        for i in rng.choice(len(item_text), size=min(self.params.align_titles, len(item_text)), replace=False):
            if item_text[int(i)]:
                pieces.append((" " + style.title(item_text[int(i)]), False))
        return pieces

    def _load_generator(self):
        name = self.params.attribute_generator
        if name.startswith("mlm:") or name == "tiny-mlm":
            return _load_masked_lm(name.removeprefix("mlm:"), self.device_)
        return load_causal_lm(name, device=self.device_)

    # ---------------------------------------------------------------- stage 1
    def _encode_variants(self, chunk: list[TrainGroup], bb):
        """The K + 1 variants of each group through the encoder: z [n, K+1, H] (the mean state over a variant's
        prefix and its first, true candidate's suffix), and what L_LLM needs (prompts, states, mask, row spans)."""
        builders = self._variant_builders()
        prompts = [(b.group(g.history, g.items, a), g) for g in chunk for b, a in builders]
        segs = []
        for pg, _ in prompts:
            segs += ([pg.prefix] if len(pg.prefix) else []) + list(pg.suffixes)
        with autocast(self.device_):
            states, mask = bb.encode_segments(segs)
        states = states.float()
        last = states[..., -bb.hidden_size:]
        # z_k: the mean last-layer encoder state over the variant's prefix and its first (true) candidate's suffix
        z, rows, at = [], [], 0
        for pg, g in prompts:
            n_pre = 1 if len(pg.prefix) else 0
            idx = list(range(at, at + n_pre + 1))
            total = sum((last[i] * mask[i, :, None]).sum(0) for i in idx)
            z.append(total / mask[idx].sum())
            rows.append((at, n_pre, len(pg.suffixes)))
            at += n_pre + len(pg.suffixes)
        return torch.stack(z).view(len(chunk), len(builders), -1), prompts, states, mask, rows

    @torch.no_grad()
    def variant_embeddings(self, groups: list[TrainGroup], backbone=None, batch: int = 8) -> np.ndarray:
        """z of every group's K + 1 variants [n, K+1, H] under this model's encoder, or under `backbone` (e.g. the
        pre-trained one: the diversity analysis compares both)."""
        bb = backbone or self.backbone_
        bb.eval()
        return torch.cat([self._encode_variants(groups[i:i + batch], bb)[0].float().cpu()
                          for i in range(0, len(groups), batch)]).numpy()

    def pretrained_backbone(self):
        """A fresh backbone with the pre-trained encoder (untouched by stage 1)."""
        p = self.params
        if p.backbone == "encoder+causal":
            return EncoderCausal(p.encoder, p.lm, p.proj_hidden, self.device_, p.encoder_states).to(self.device_)
        return T5Backbone(p.t5, self.device_).to(self.device_)

    def _stage1_loss(self, chunk: list[TrainGroup], k1: int, rng) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward pass of one micro-batch: z [n, K+1, H] (with grad) and L_LLM summed over its rows."""
        bb = self.backbone_
        z, prompts, states, mask, rows = self._encode_variants(chunk, bb)
        sel = self._llm_rows(len(chunk), k1, rng)
        labels = torch.tensor(np.concatenate([prompts[r][1].labels for r in sel]), device=self.device_)
        with autocast(self.device_):
            if isinstance(bb, T5Backbone):
                idx = [i for r in sel for i in range(rows[r][0] + rows[r][1], rows[r][0] + rows[r][1] + rows[r][2])]
                margins = bb.margins_from_states(states[idx], mask[idx], self.engine_.yes_id, self.engine_.no_id)
            else:
                soft = bb.soft_tokens(states)
                groups = []
                for r in sel:
                    start, n_pre, n_suf = rows[r]
                    pre = soft[start, :int(mask[start].sum())] if n_pre else soft.new_zeros((0, soft.shape[-1]))
                    sufs = [soft[i, :int(mask[i].sum())] for i in range(start + n_pre, start + n_pre + n_suf)]
                    groups.append(Group(pre, sufs))
                margins = group_margins(bb.lm, groups, self.engine_.yes_id, self.engine_.no_id)
        loss_llm = F.binary_cross_entropy_with_logits(margins.float(), labels, reduction="sum")
        return z, loss_llm

    def _stage1(self, groups: list[TrainGroup], rng) -> dict:
        """The GAN: per step, G's loss over micro-batches (accumulated), then D's update(s) on the detached z."""
        p, bb = self.params, self.backbone_
        k1 = 1 + len(self.attributes_)
        use_d = k1 > 1 and p.adversarial != "off"
        self.discriminator_ = Discriminator(bb.hidden_size, k1, p.d_hidden).to(self.device_) if use_d else None
        g_opt = torch.optim.Adam([q for q in bb.generator_parameters() if q.requires_grad], lr=p.stage1_lr)
        d_opt = torch.optim.Adam(self.discriminator_.parameters(), lr=p.d_lr) if use_d else None
        log, t0, stopped = [], time.perf_counter(), "steps"
        bb.train()
        for epoch in range(p.stage1_epochs):
            order = rng.permutation(len(groups))
            with progress(-(-len(groups) // p.stage1_batch), f"{self.name} stage 1 epoch {epoch + 1}") as advance:
                for start in range(0, len(order), p.stage1_batch):
                    entry = {"step": len(log), "epoch": epoch,
                             **self._stage1_step([groups[i] for i in order[start:start + p.stage1_batch]], k1,
                                                 g_opt, d_opt, rng)}
                    log.append(entry)
                    advance(1)
                    if entry["step"] % 5 == 0:
                        self.data_.log(f"{self.name} stage 1 step {entry['step']}: " + ", ".join(
                            f"{k} {v:.4f}" for k, v in entry.items() if isinstance(v, float)))
                    if p.max_minutes is not None and time.perf_counter() - t0 > 60 * p.max_minutes:
                        stopped = "max_minutes"
                        break
            if stopped != "steps":
                break
        d_acc = [e["d_acc"] for e in log if "d_acc" in e]
        return {"steps": len(log), "stopped_by": stopped, "budget_stopped": stopped == "max_minutes", "log": log,
                "d_chance": 1.0 / k1, "d_acc_last5": float(np.mean(d_acc[-5:])) if d_acc else None}

    def _stage1_step(self, batch: list[TrainGroup], k1: int, g_opt, d_opt, rng) -> dict:
        """One G step (L_G accumulated over token-bounded micro-batches), then D's update(s) on the detached z."""
        p = self.params
        micro = max(1, p.max_tokens // max(1, k1 * (p.max_length // 2)))  # rough tokens per sample
        g_opt.zero_grad()
        zs, out = [], {"loss_llm": 0.0, "loss_div": 0.0, "loss_adv": 0.0, "loss_g": 0.0}
        n_rows = sum(len(g.items) for g in batch) * (min(p.llm_variants, k1) if p.llm_variants > 0 else k1)
        for m0 in range(0, len(batch), micro):
            chunk = batch[m0:m0 + micro]
            z, loss_llm = self._stage1_loss(chunk, k1, rng)
            w = len(chunk) / len(batch)
            loss_div = diversity_loss(z, p.dist_alpha, p.dist_beta, p.js_temperature, p.diversity_scope)
            classes = torch.arange(k1, device=self.device_).repeat(len(chunk))
            loss_adv = adversarial_loss(self.discriminator_(z.reshape(-1, z.shape[-1])), classes, p.adversarial) \
                if d_opt is not None else z.new_zeros(())
            loss_g = loss_llm / n_rows + w * (p.lambda_div * loss_div + p.mu_adv * loss_adv)
            loss_g.backward()
            zs.append(z.detach().reshape(-1, z.shape[-1]))
            out["loss_llm"] += loss_llm.item() / n_rows
            out["loss_div"] += w * loss_div.item()
            out["loss_adv"] += w * loss_adv.item()
            out["loss_g"] += loss_g.item()
        g_opt.step()
        z_all = torch.cat(zs)
        if d_opt is not None:  # D learns on this step's detached embeddings; accuracy is measured before its update
            classes = torch.arange(k1, device=self.device_).repeat(len(batch))
            for j in range(max(1, p.d_steps)):
                d_opt.zero_grad()
                d_logits = self.discriminator_(z_all)
                loss_d = F.cross_entropy(d_logits, classes)
                if j == 0:
                    out.update(loss_d=loss_d.item(), d_acc=(d_logits.argmax(-1) == classes).float().mean().item())
                loss_d.backward()
                d_opt.step()
        with torch.no_grad():
            out["mean_pair_distance"] = pairwise_mean_distance(
                z_all.view(len(batch), k1, -1), p.dist_alpha, p.dist_beta, p.js_temperature).item() if k1 > 1 else 0.0
        return out

    def _llm_rows(self, b: int, k1: int, rng) -> list[int]:
        """Which of the b * (K+1) variants enter L_LLM: all, or x_0 plus llm_variants - 1 random others."""
        n = self.params.llm_variants
        if n <= 0 or n >= k1:
            return list(range(b * k1))
        rows = []
        for i in range(b):
            rows += [i * k1] + [i * k1 + int(j) for j in rng.choice(np.arange(1, k1), size=n - 1, replace=False)]
        return rows

    # ---------------------------------------------------------------- checkpoint
    def _trained_state(self) -> dict[str, torch.Tensor]:
        if self.backbone_ is None:
            return super()._trained_state()
        out, seen = {}, set()
        for k, v in self.backbone_.state_dict().items():
            if _is_trained(k, self.backbone_) and v.data_ptr() not in seen:  # tied weights are stored once
                seen.add(v.data_ptr())
                out[k] = v.detach().cpu().contiguous()
        return out

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file
        super().save(folder)
        folder = Path(folder)
        if self.discriminator_ is not None:
            save_file({k: v.cpu().contiguous() for k, v in self.discriminator_.state_dict().items()},
                      str(folder / "discriminator.safetensors"))
        (folder / "ganprompt.json").write_text(json.dumps({"attributes": self.attributes_}))

    @classmethod
    def load(cls, folder: Path, data) -> "GANPrompt":
        from safetensors.torch import load_file
        folder = Path(folder)
        m = cls(**json.loads((folder / "params.json").read_text()))
        m.attributes_ = json.loads((folder / "ganprompt.json").read_text())["attributes"]
        m.discriminator_ = None
        torch.manual_seed(data.seed)
        m._setup(data)
        if m.backbone_ is None:
            target = m.model_
        else:
            m._start_stage2()
            target = m.backbone_
        result = target.load_state_dict(load_file(str(folder / "trained.safetensors")), strict=False)
        if result.unexpected_keys:
            raise MethodError(f"{folder}: unexpected tensors {result.unexpected_keys[:3]}")
        target.eval()
        return m


def _is_trained(key: str, backbone) -> bool:
    """Tensors that training can change; the frozen causal LM's own weights are reloaded from its name instead."""
    if isinstance(backbone, T5Backbone):
        return True
    return "lora_" in key or key.startswith("proj.") or key == "token_rms" or key.startswith("encoder.")


def _load_masked_lm(name: str, device: str = "cpu"):
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from bench.lm.models import Loaded, _bert_tokenizer, resolve
    if name == "tiny-mlm":
        from transformers import BertConfig, BertForMaskedLM
        torch.manual_seed(0)
        tok = _bert_tokenizer()
        cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)
        return Loaded(BertForMaskedLM(cfg).eval().to(device), tok, "tiny-mlm")
    path = resolve(name)
    return Loaded(AutoModelForMaskedLM.from_pretrained(path).eval().to(device), AutoTokenizer.from_pretrained(path), name)
