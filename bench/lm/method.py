"""LoRAYesNo: the base of every method whose causal LM reads the prompt tokens and answers yes/no after LoRA
fine-tuning (TALLRec, GANPrompt's plain control; CoLLM extends it with collaborative slots). It owns loading,
LoRA, the prompt builder, the engine (bench/lm/engine.py), the fit, scoring, prompt swapping for the robustness
suite and save/load; subclasses change the template, the embedding of prompt pieces or add stages."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.errors import MethodError
from bench.lm.engine import YesNoEngine, add_lora, finetune
from bench.lm.models import load_causal_lm
from bench.lm.params import LMParams
from bench.lm.prompts import PromptBuilder, PromptStyle, Template, get_template, token_encoder
from bench.lm.samples import TrainGroup, make_groups
from bench.method import Method, resolve_device


class LoRAYesNo(Method):
    kind = "llm"
    resources = {"num_cpus": 2, "num_gpus": 1}
    Params = LMParams
    save_prefixes: tuple[str, ...] = ("lora_",)  # state-dict keys (substrings) that training changes

    # ---- prompts ----
    def _style(self) -> PromptStyle:
        base = PromptStyle(history_len=self.params.history_len, title_words=self.params.title_words)
        return dataclasses.replace(base, **getattr(self, "style_override_", {}))

    def _builder(self, template: Template | None = None) -> PromptBuilder:
        return PromptBuilder(template or self.template_, self._style(), self.data_.item_text, self.data_.category,
                             token_encoder(self.tokenizer_), self.params.max_length)

    def set_prompt(self, template: Template, style: dict | None = None) -> None:
        """Score with another template / history format (the robustness suite); the model was trained on its own."""
        self.template_ = template
        self.style_override_ = dict(style or {})
        self.engine_.builder = self._builder()
        self.engine_.set_answers(*template.answers)

    # ---- model ----
    def _setup(self, data) -> None:
        """Load the LM, add LoRA, build the engine (no training)."""
        p = self.params
        self.data_, self.device_ = data, resolve_device(p.device)
        self.template_ = get_template(p.template)
        lm = load_causal_lm(p.lm, device=self.device_)
        for q in lm.model.parameters():
            q.requires_grad_(False)
        self.tokenizer_ = lm.tokenizer
        self.model_ = add_lora(lm.model, p.lora_r, p.lora_alpha, p.lora_dropout, p.lora_targets,
                               p.lora_layers).to(self.device_)
        self.engine_ = YesNoEngine(self.model_, self.tokenizer_, self._builder(), *self.template_.answers,
                                   max_tokens=p.max_tokens, score_rows=p.score_rows, device=self.device_,
                                   embed=self._embed_fn())

    def _embed_fn(self):
        return None  # token embeddings

    def trainable(self) -> list[torch.nn.Parameter]:
        return [q for q in self.model_.parameters() if q.requires_grad]

    def _prompts_of(self, g: TrainGroup, rng) -> list:
        return [(self.engine_.prompt(g.user, g.history, g.items), g.labels)]

    # ---- fit / score ----
    def fit(self, data) -> "LoRAYesNo":
        p = self.params
        rng = np.random.default_rng(data.seed)
        torch.manual_seed(data.seed)
        t0 = time.perf_counter()
        self._setup(data)
        info = {"timings_s": {"load": time.perf_counter() - t0}}
        groups = make_groups(data, p.train_groups, p.history_len, p.negatives, rng)
        vset = self.engine_.valid_set(data, p.valid_users, p.valid_negatives, rng)
        t0 = time.perf_counter()
        info["finetune"] = finetune(self.engine_, self.trainable(), groups, self._prompts_of, data, epochs=p.epochs,
                                    batch_groups=p.batch_groups, lr=p.lr, weight_decay=p.weight_decay,
                                    eval_every=p.eval_every, vset=vset, rng=rng, max_minutes=p.max_minutes,
                                    name=self.name, loss=p.loss)
        info["timings_s"]["finetune"] = time.perf_counter() - t0
        info["train_groups"], info["prompts"] = len(groups), dict(self.engine_.stats)
        self.fit_info_ = info
        return self

    def score(self, users, candidates, split="test"):
        return self.engine_.score(self.data_, users, candidates, split)

    def answer_counter(self):
        return self.engine_.answers

    # ---- saved fits ----
    def _trained_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()
                if any(s in k for s in self.save_prefixes)}

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self._trained_state(), str(folder / "trained.safetensors"))
        (folder / "params.json").write_text(json.dumps(dataclasses.asdict(self.params)))

    @classmethod
    def load(cls, folder: Path, data) -> "LoRAYesNo":
        from safetensors.torch import load_file
        folder = Path(folder)
        m = cls(**json.loads((folder / "params.json").read_text()))
        torch.manual_seed(data.seed)
        m._setup(data)
        state = load_file(str(folder / "trained.safetensors"))
        result = m.model_.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise MethodError(f"{folder}: unexpected tensors {result.unexpected_keys[:3]}")
        m.model_.eval()
        return m
