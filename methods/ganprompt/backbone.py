"""Backbones that read a prompt and answer yes/no. All return the margin logit(yes) - logit(no).

- EncoderCausal (`encoder+causal`, the paper's Section 3.3): diversity encoder token states -> projection
  h = W2 gelu(W1 e + b1) + b2 -> causal LM as input embeddings; LoRA (peft) on the causal LM in stage 2.
- T5Backbone (`t5`, the paper's implementation): the T5 encoder is the diversity encoder; the decoder answers at its
  first step; decoder tuned with LoRA or fully in stage 2.
- PlainCausal (`plain`): no diversity encoder; the causal LM reads the prompt tokens (the TALLRec-like control).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from bench.lm.models import load_causal_lm, load_encoder, load_t5
from bench.lm.yesno import AnswerCounter, YesNoScorer, answer_token_ids, yes_no_margin
from methods.ganprompt.losses import masked_mean


def _lora(model, r: int, alpha: int, dropout: float, targets):
    from peft import LoraConfig, get_peft_model
    return get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets))


class EncoderCausal(nn.Module):
    has_encoder = True

    def __init__(self, encoder: str, lm: str, proj_hidden: int, max_length: int):
        super().__init__()
        self.answers = AnswerCounter()
        enc = load_encoder(encoder)
        self.encoder, self.enc_tok = enc.model, enc.tokenizer
        causal = load_causal_lm(lm)
        self.lm, self.lm_tok = causal.model, causal.tokenizer
        for p in self.lm.parameters():
            p.requires_grad_(False)
        self.yes_id, self.no_id = answer_token_ids(self.lm_tok)
        h_enc, h_lm = self.encoder.config.hidden_size, self.lm.config.hidden_size
        self.proj = nn.Sequential(nn.Linear(h_enc, proj_hidden), nn.GELU(), nn.Linear(proj_hidden, h_lm))
        # the LM must see soft tokens of its usual size: projected states are RMS-normalised to the typical norm of
        # its own token embeddings (a random projection's outputs are ~20x larger, far outside what the LM knows)
        emb = self.lm.get_input_embeddings().weight.detach().float()
        self.register_buffer("token_rms", emb.pow(2).mean(-1).sqrt().mean().reshape(()))
        self.max_length = max_length

    def set_answers(self, yes: str, no: str) -> None:
        self.yes_id, self.no_id = answer_token_ids(self.lm_tok, yes, no)

    def tokenize(self, texts: list[str]):
        t = self.enc_tok(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return t["input_ids"].to(self.device), t["attention_mask"].to(self.device)

    @property
    def device(self):
        return self.proj[0].weight.device

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(texts)
        return self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask

    def pooled(self, texts: list[str]) -> torch.Tensor:
        return masked_mean(*self.encode(texts))

    def soft_tokens(self, states: torch.Tensor) -> torch.Tensor:
        h = self.proj(states)
        return h * (self.token_rms / h.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt())

    def margins_from_states(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.lm(inputs_embeds=self.soft_tokens(states), attention_mask=mask)
        last = mask.sum(1) - 1  # right padding: the answer is read after the last real token
        logits = out.logits[torch.arange(len(states), device=states.device), last].float()
        return yes_no_margin(logits, self.yes_id, self.no_id, self.answers)

    def margins(self, texts: list[str]) -> torch.Tensor:
        return self.margins_from_states(*self.encode(texts))

    def generator_parameters(self):
        return list(self.encoder.parameters()) + list(self.proj.parameters())

    def start_stage2(self, lora_r: int, lora_alpha: int, lora_dropout: float, decoder_tuning: str = "lora") -> None:
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.lm = _lora(self.lm, lora_r, lora_alpha, lora_dropout, ["q_proj", "v_proj"])

    def stage2_parameters(self):
        return [p for p in list(self.proj.parameters()) + list(self.lm.parameters()) if p.requires_grad]


class T5Backbone(nn.Module):
    has_encoder = True

    def __init__(self, t5: str, max_length: int):
        super().__init__()
        self.answers = AnswerCounter()
        loaded = load_t5(t5)
        self.t5, self.enc_tok = loaded.model, loaded.tokenizer
        self.yes_id, self.no_id = answer_token_ids(self.enc_tok, "yes", "no")
        self.max_length = max_length
        for name, p in self.t5.named_parameters():  # stage 1 trains the encoder; the decoder waits for stage 2
            p.requires_grad_(name.startswith("encoder.") or name.startswith("shared."))

    @property
    def device(self):
        return next(self.t5.parameters()).device

    def set_answers(self, yes: str, no: str) -> None:
        self.yes_id, self.no_id = answer_token_ids(self.enc_tok, yes.strip(), no.strip())

    @property
    def encoder(self):  # a view into the T5, not a second registered copy of it
        return self.t5.get_encoder()

    def encode(self, texts):
        t = self.enc_tok(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        ids, mask = t["input_ids"].to(self.device), t["attention_mask"].to(self.device)
        return self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask

    def pooled(self, texts):
        return masked_mean(*self.encode(texts))

    def margins_from_states(self, states, mask):
        start = torch.full((len(states), 1), self.t5.config.decoder_start_token_id, device=states.device)
        out = self.t5(encoder_outputs=(states,), attention_mask=mask, decoder_input_ids=start)
        logits = out.logits[:, 0].float()
        return yes_no_margin(logits, self.yes_id, self.no_id, self.answers)

    def margins(self, texts):
        return self.margins_from_states(*self.encode(texts))

    def generator_parameters(self):
        return list(self.encoder.parameters())

    def start_stage2(self, lora_r, lora_alpha, lora_dropout, decoder_tuning="lora"):
        # the shared token embedding is part of the encoder's input: frozen with it
        for p in self.t5.parameters():
            p.requires_grad_(False)
        if decoder_tuning == "full":
            for name, p in self.t5.named_parameters():
                if name.startswith("decoder.") or name.startswith("lm_head."):
                    p.requires_grad_(True)
        elif decoder_tuning == "lora":
            self.t5 = _lora(self.t5, lora_r, lora_alpha, lora_dropout, r".*decoder.*\.(q|v)$")
        else:
            raise ValueError(f"decoder_tuning {decoder_tuning!r}: valid: lora, full")

    def stage2_parameters(self):
        return [p for p in self.t5.parameters() if p.requires_grad]


class PlainCausal(nn.Module):
    """The causal LM reads the prompt tokens itself (no diversity encoder): TALLRec-like."""
    has_encoder = False

    def __init__(self, lm: str, max_length: int, batch_size: int = 16, yes: str = " yes", no: str = " no"):
        super().__init__()
        causal = load_causal_lm(lm)
        self.lm, self.lm_tok = causal.model, causal.tokenizer
        for p in self.lm.parameters():
            p.requires_grad_(False)
        self.max_length = max_length
        self.scorer = YesNoScorer(self.lm, self.lm_tok, batch_size=batch_size, yes=yes, no=no)

    @property
    def device(self):
        return next(self.lm.parameters()).device

    @property
    def answers(self) -> AnswerCounter:
        return self.scorer.answers

    def set_answers(self, yes: str, no: str) -> None:
        self.scorer.yes_id, self.scorer.no_id = answer_token_ids(self.lm_tok, yes, no)

    def margins_pairs(self, pairs: list[tuple[str, str]]) -> torch.Tensor:
        """(prefix, suffix) pairs tokenised apart, exactly as the prefix-cached scorer does at test time."""
        seqs = []
        for prefix, suffix in pairs:
            p, (s,) = self.scorer.encode(prefix, [suffix])
            seqs.append((p + s)[-self.max_length:])
        return self.scorer.margins_plain(seqs)

    def start_stage2(self, lora_r, lora_alpha, lora_dropout, decoder_tuning="lora"):
        self.lm = _lora(self.lm, lora_r, lora_alpha, lora_dropout, ["q_proj", "v_proj"])
        self.scorer.model = self.lm

    def stage2_parameters(self):
        return [p for p in self.lm.parameters() if p.requires_grad]
