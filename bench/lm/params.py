"""The one parameter block of every yes/no LM recommender (TALLRec, CoLLM, GANPrompt and its ablations): the LM and
its LoRA, how prompts are written and cut, the fine-tuning budget (in groups, epochs and steps, never in seconds),
validation, scoring batch sizes and the device. Methods extend it with what is theirs only. Choices and ranges are
field metadata, checked by `Method.__init__` before any work (bench/method.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.lm.prompts import template_ids
from bench.method import DEVICE

LOSSES = ("bce", "softmax")


@dataclass
class LMParams:
    lm: str = field(default="smollm2", metadata={"help": "causal LM: HF name/path, or smollm2 (offline)"})
    template: str = field(default="seen-0", metadata={
        "help": "recommendation template id (bench/lm/templates.yaml)", "choices": template_ids})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank", "min": 1})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha", "min": 1})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout", "min": 0.0, "max": 1.0})
    lora_targets: str = field(default="q_proj,v_proj", metadata={"help": "comma-separated module names given LoRA"})
    lora_layers: int = field(default=0, metadata={
        "help": "LoRA only in the top N transformer layers (0 = all): the backward pass stops below them", "min": 0})
    history_len: int = field(default=10, metadata={
        "help": "most recent history items in a prompt (the paper: 3..10)", "min": 1})
    title_words: int = field(default=12, metadata={"help": "titles cut to this many words (0 = no cut)", "min": 0})
    max_length: int = field(default=256, metadata={
        "help": "max tokens of prefix + longest candidate suffix; longer prompts lose their oldest history items",
        "min": 8})
    train_groups: int = field(default=1000, metadata={
        "help": "training histories; each is scored with its true next item and `negatives` negatives", "min": 1})
    negatives: int = field(default=1, metadata={
        "help": "negatives per training history (they share its prefix)", "min": 0})
    epochs: int = field(default=1, metadata={"help": "fine-tuning epochs over the training groups (0 = zero-shot)",
                                             "min": 0})
    batch_groups: int = field(default=16, metadata={"help": "training groups per optimiser step", "min": 1})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the fine-tuned parameters", "min": 0.0})
    loss: str = field(default="bce", metadata={
        "help": "bce (pointwise on every yes/no margin, the papers' loss) or softmax (listwise: cross-entropy of the "
                "true item among its history's candidates; a ranking signal that ignores the yes/no prior)",
        "choices": LOSSES})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay", "min": 0.0})
    eval_every: int = field(default=0, metadata={
        "help": "validate every N optimiser steps (0 = once per epoch); the best validated state is kept", "min": 0})
    valid_users: int = field(default=200, metadata={"help": "validation users, drawn once (0 = no validation)",
                                                    "min": 0})
    valid_negatives: int = field(default=19, metadata={"help": "negatives per validation user (from the saved "
                                                                "validation candidates)", "min": 1})
    max_tokens: int = field(default=4096, metadata={"help": "tokens per forward pass (rows x longest row)", "min": 1})
    score_rows: int = field(default=32, metadata={"help": "candidate suffixes packed into one row behind one prefix",
                                                  "min": 1})
    max_minutes: float | None = field(default=None, metadata={
        "help": "safety stop per training stage; a run it stops is recorded as budget-stopped (not reproducible)",
        "min": 0.0})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto; bf16 autocast on cuda", **DEVICE})
