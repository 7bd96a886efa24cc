"""TALLRec (Bao et al., 2023): an instruction prompt (history + target, answer "Yes"/"No"), LoRA (peft) on the causal
LM, BCE on the yes/no logits, early stopping on validation AUC; `train_samples` is the few-shot knob (the paper
reports 16 / 64 / 256). It shares GANPrompt's LoRA yes/no training loop and prefix-cached scorer with backbone
`plain` (no diversity encoder, no attributes), on the same offline LM, so differences come from the method."""
from __future__ import annotations

from dataclasses import dataclass, field

from methods.ganprompt.method import GANPrompt, GANPromptParams


@dataclass
class TALLRecParams(GANPromptParams):
    backbone: str = field(default="plain", metadata={"help": "plain: the LM reads the prompt tokens"})
    template: str = field(default="tallrec-0", metadata={"help": "instruction template id"})
    use_attributes: bool = field(default=False, metadata={"help": "TALLRec has no attributes"})
    train_samples: int = field(default=256, metadata={"help": "few-shot size: training samples, half positive"})
    stage2_epochs: int = field(default=3, metadata={"help": "fine-tuning epochs (best by validation AUC is kept)"})
    stage2_lr: float = field(default=1e-4, metadata={"help": "AdamW learning rate (TALLRec: 1e-4)"})
    stage2_batch: int = field(default=32, metadata={"help": "batch size"})


class TALLRec(GANPrompt):
    name = "tallrec"
    kind = "llm"
    description = "TALLRec: instruction-tuned yes/no LLM recommender with LoRA (few-shot)"
    Params = TALLRecParams
    profiles = {"quick": {"train_samples": 64, "stage2_epochs": 2, "stage2_batch": 8, "stage2_lr": 3e-4,
                          "valid_users": 8, "history_len": 5, "title_words": 8, "max_length": 160, "max_minutes": 10},
                "paper": {}}
