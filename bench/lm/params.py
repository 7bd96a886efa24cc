"""The one parameter block of every yes/no LM recommender (TALLRec, CoLLM, GANPrompt and its ablations): the LM and
its LoRA, how prompts are written and cut, the fine-tuning budget (in groups, epochs and steps, never in seconds),
validation, scoring batch sizes and the device. Methods extend it with what is theirs only."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LMParams:
    lm: str = field(default="smollm2", metadata={"help": "causal LM: HF name/path, or smollm2 (offline)"})
    template: str = field(default="seen-0", metadata={"help": "recommendation template id (bench/lm/templates.yaml)"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_targets: str = field(default="q_proj,v_proj", metadata={"help": "comma-separated module names given LoRA"})
    lora_layers: int = field(default=0, metadata={
        "help": "LoRA only in the top N transformer layers (0 = all): the backward pass stops below them"})
    history_len: int = field(default=10, metadata={"help": "most recent history items in a prompt (the paper: 3..10)"})
    title_words: int = field(default=12, metadata={"help": "titles cut to this many words (0 = no cut)"})
    max_length: int = field(default=256, metadata={
        "help": "max tokens of prefix + longest candidate suffix; longer prompts lose their oldest history items"})
    train_groups: int = field(default=1000, metadata={
        "help": "training histories; each is scored with its true next item and `negatives` negatives"})
    negatives: int = field(default=1, metadata={"help": "negatives per training history (they share its prefix)"})
    epochs: int = field(default=1, metadata={"help": "fine-tuning epochs over the training groups"})
    batch_groups: int = field(default=16, metadata={"help": "training groups per optimiser step"})
    lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate of the fine-tuned parameters"})
    loss: str = field(default="bce", metadata={
        "help": "bce (pointwise on every yes/no margin, the papers' loss) or softmax (listwise: cross-entropy of the "
                "true item among its history's candidates; a ranking signal that ignores the yes/no prior)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    eval_every: int = field(default=0, metadata={
        "help": "validate every N optimiser steps (0 = once per epoch); the best validated state is kept"})
    valid_users: int = field(default=200, metadata={"help": "validation users, drawn once (0 = no validation)"})
    valid_negatives: int = field(default=19, metadata={"help": "negatives per validation user (from the saved "
                                                                "validation candidates)"})
    max_tokens: int = field(default=4096, metadata={"help": "tokens per forward pass (rows x longest row)"})
    score_rows: int = field(default=32, metadata={"help": "candidate suffixes packed into one row behind one prefix"})
    max_minutes: float | None = field(default=None, metadata={
        "help": "safety stop per training stage; a run it stops is recorded as budget-stopped (not reproducible)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto; bf16 autocast on cuda"})
