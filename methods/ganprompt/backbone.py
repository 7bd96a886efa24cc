"""Backbones of GANPrompt's diversity encoder. Both answer yes/no through the shared LM layer's engine interface.

- EncoderCausal (`encoder+causal`, the paper's Section 3.3): diversity-encoder token states -> projection
  h = W2 gelu(W1 e + b1) + b2 (RMS-matched to the LM's token embeddings) -> the causal LM as input embeddings; LoRA
  on the causal LM in stage 2. With `encoder_context=split` the encoder reads the prompt prefix and each candidate's
  suffix apart, so the LM can share the prefix across candidates (packing); `joint` reads each whole prompt at once.
- T5Backbone (`t5`, the paper's implementation): the T5 encoder is the diversity encoder; the decoder answers at its
  first step; decoder tuned with LoRA or fully in stage 2. It has no prefix to share: every candidate is one text.
(`plain`, the control without a diversity encoder, is bench.lm.method.LoRAYesNo itself.)
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import MethodError
from bench.lm.engine import YesNoEngine, add_lora, autocast
from bench.lm.models import load_causal_lm, load_encoder, load_t5
from bench.lm.packing import batches_by_tokens
from bench.lm.pooling import masked_mean
from bench.lm.prompts import Encoded
from bench.lm.yesno import answer_token_ids, yes_no_margin


class _DiversityEncoderBackbone(nn.Module):
    """What both backbones share about their diversity encoder: trained in stage 1, then frozen and kept in eval
    mode (no dropout) whatever train() the fine-tuning loop calls."""
    encoder_frozen = False

    def freeze_encoder(self) -> None:
        for q in self.encoder.parameters():
            q.requires_grad_(False)
        self.encoder.eval()
        self.encoder_frozen = True

    def train(self, mode: bool = True):
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self


def _pad(segments: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(1, max(len(s) for s in segments))
    ids = torch.full((len(segments), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(segments), n), dtype=torch.long)
    for r, s in enumerate(segments):
        ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, :len(s)] = 1
    return ids.to(device), mask.to(device)


ENCODER_STATES = ("last", "input+last")
EMBED_TOKENS = 8192  # padded encoder tokens per batch when no gradient is needed (see EncoderCausal.embed)


class EncoderCausal(_DiversityEncoderBackbone):
    def __init__(self, encoder: str, lm: str, proj_hidden: int, device: str = "cpu", states: str = "last"):
        super().__init__()
        if states not in ENCODER_STATES:
            raise MethodError(f"encoder_states {states!r}: valid: {', '.join(ENCODER_STATES)}")
        self.states = states
        enc = load_encoder(encoder, device=device)
        self.encoder, self.enc_tok = enc.model, enc.tokenizer
        causal = load_causal_lm(lm, device=device)
        self.lm, self.lm_tok = causal.model, causal.tokenizer
        for p in self.lm.parameters():
            p.requires_grad_(False)
        h_enc, h_lm = self.encoder.config.hidden_size, self.lm.config.hidden_size
        h_in = 2 * h_enc if states == "input+last" else h_enc
        self.proj = nn.Sequential(nn.Linear(h_in, proj_hidden), nn.GELU(), nn.Linear(proj_hidden, h_lm))
        # the LM must see soft tokens of its usual size: projected states are RMS-normalised to the typical norm of
        # its own token embeddings (a random projection's outputs are ~20x larger, far outside what the LM knows)
        emb = self.lm.get_input_embeddings().weight.detach().float()
        self.register_buffer("token_rms", emb.pow(2).mean(-1).sqrt().mean().reshape(()))

    @property
    def device(self):
        return self.proj[0].weight.device

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    def encode_segments(self, segments: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states and mask [B, T] of token-id segments (each read on its own). States are [B, T, H] (the
        last layer) or, with states `input+last`, [B, T, 2H]: the embedding layer's output, then the last layer's
        (the last H features are always the last layer: what the GAN's z pools)."""
        ids, mask = _pad([s.ids for s in segments], self.enc_tok.pad_token_id or 0, self.device)
        out = self.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=self.states == "input+last")
        if self.states == "input+last":
            return torch.cat([out.hidden_states[0], out.last_hidden_state], -1), mask
        return out.last_hidden_state, mask

    def soft_tokens(self, states: torch.Tensor) -> torch.Tensor:
        h = self.proj(states)
        return h * (self.token_rms / h.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt())

    def embed(self, segments: list[tuple[Encoded, int, int]]) -> list[torch.Tensor]:
        """The engine's embed function: soft tokens of each segment (empty segments stay empty). Without gradients
        (scoring, validation, cached states) segments run by length in batches of at most EMBED_TOKENS padded
        tokens: one batch of 64 users x 100 candidates padded every suffix to the history prefix's length and took
        17.7 GB on beauty-5core (benchmarks/ganprompt_embed_memory.py: 5x the memory, 6x the time; the soft tokens
        differ by float rounding, about 1e-6). With gradients the training step keeps its one batch."""
        out: list[torch.Tensor | None] = [None] * len(segments)
        todo = [r for r, (e, _, _) in enumerate(segments) if len(e)]
        if torch.is_grad_enabled():
            batches = [todo] if todo else []
        else:
            todo.sort(key=lambda r: len(segments[r][0]))
            batches = [[todo[i] for i in b]
                       for b in batches_by_tokens([len(segments[r][0]) for r in todo], EMBED_TOKENS)]
        for batch in batches:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
                states, mask = self.encode_segments([segments[r][0] for r in batch])
            soft = self.soft_tokens(states)
            for k, r in enumerate(batch):
                out[r] = soft[k, :int(mask[k].sum())]
        empty = self.proj[-1].weight.new_zeros((0, self.proj[-1].out_features))
        return [o if o is not None else empty for o in out]

    def generator_parameters(self):
        return list(self.encoder.parameters()) + list(self.proj.parameters())

    def separator_id(self) -> int:
        """The LM's newline token (its [SEP] where newline has no token, as in the tests' BERT-vocabulary LM)."""
        ids = self.lm_tok("\n", add_special_tokens=False).input_ids
        return ids[-1] if ids else (self.lm_tok.sep_token_id or self.lm_tok.eos_token_id or 0)

    @torch.no_grad()
    def alignment_pairs(self, pieces: list[tuple[str, bool]], batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder token states [N, H_enc], targets [N, H_lm]) for prompt pieces (text, with special tokens): the
        target of an encoder token is the mean input embedding of the LM tokens that share its characters; special
        tokens (no characters) get the embedding of the LM's newline (a separator the LM knows)."""
        table = self.lm.get_input_embeddings().weight.detach().float()
        newline = table[self.separator_id()]
        xs, ys = [], []
        self.encoder.eval()
        for start in range(0, len(pieces), batch):
            chunk = pieces[start:start + batch]
            encs = [self.enc_tok(t, add_special_tokens=first, return_offsets_mapping=True) for t, first in chunk]
            states, _ = self.encode_segments([Encoded(e.input_ids) for e in encs])
            for r, ((text, _), e) in enumerate(zip(chunk, encs)):
                lm = self.lm_tok(text, add_special_tokens=False, return_offsets_mapping=True)
                for pos, (a, z) in enumerate(e.offset_mapping):
                    ids = [i for i, (la, lz) in zip(lm.input_ids, lm.offset_mapping) if la < z and lz > a] \
                        if z > a else []
                    xs.append(states[r, pos].float())
                    ys.append(table[ids].mean(0) if ids else newline)
        return torch.stack(xs), torch.stack(ys)

    def align_projection(self, pieces: list[tuple[str, bool]], steps: int, lr: float, batch: int = 512,
                         seed: int = 0, log=None) -> dict:
        """Projection warm-up (before stage 1): fit the projection so that the soft token of each encoder token is
        the LM's own input embedding of the same characters (feature alignment, as LLaVA's first stage does for its
        projector). Without it the LM reads soft tokens it has never seen and, on a CPU budget, the history/candidate
        signal never reaches its answer (a probe on its answer state stayed at chance). Only the projection trains;
        the record holds the MSE and the nearest-token accuracy on held-out tokens before and after."""
        t0 = time.perf_counter()
        x, y = self.alignment_pairs(pieces)
        x, y = x.to(self.device), y.to(self.device)
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(x), generator=gen)
        n_val = min(2000, len(x) // 5)
        val, train = perm[:n_val].to(self.device), perm[n_val:].to(self.device)
        table = self.lm.get_input_embeddings().weight.detach().float()

        @torch.no_grad()
        def measure() -> dict:
            out = self.soft_tokens(x[val])
            nearest = (out @ table.T).argmax(-1) == (y[val] @ table.T).argmax(-1)
            return {"mse": float(F.mse_loss(out, y[val])), "nearest_token_acc": float(nearest.float().mean())}

        before = measure()
        opt = torch.optim.Adam(self.proj.parameters(), lr=lr)
        for step in range(steps):
            idx = train[torch.randint(len(train), (min(batch, len(train)),), generator=gen).to(self.device)]
            loss = F.mse_loss(self.soft_tokens(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = measure()
        if log:
            log(f"projection alignment: {len(x)} tokens, {steps} steps: held-out nearest-token accuracy "
                f"{before['nearest_token_acc']:.3f} -> {after['nearest_token_acc']:.3f}")
        return {"tokens": len(x), "held_out": n_val, "steps": steps, "before": before, "after": after,
                "seconds": round(time.perf_counter() - t0, 1)}

    def start_stage2(self, p) -> None:
        """The encoder is frozen (and in eval mode: no dropout) from here on, the projection too unless
        `p.stage2_projection`; LoRA goes on the causal LM."""
        self.freeze_encoder()
        if not p.stage2_projection:
            for q in self.proj.parameters():
                q.requires_grad_(False)
        self.lm = add_lora(self.lm, p.lora_r, p.lora_alpha, p.lora_dropout, p.lora_targets, p.lora_layers)

    def stage2_parameters(self):
        return [q for q in list(self.proj.parameters()) + list(self.lm.parameters()) if q.requires_grad]

    def engine(self, builder, answers, max_tokens: int, score_rows: int, device: str) -> YesNoEngine:
        return YesNoEngine(self.lm, self.lm_tok, builder, *answers, max_tokens=max_tokens, score_rows=score_rows,
                           device=device, embed=self.embed)


class T5Engine(YesNoEngine):
    """The engine interface over a T5: a group's suffixes are whole prompts (joint builder), each read by the
    encoder; the decoder's first-step logits give the yes/no margin. The encoder runs in margins(), i.e. once per
    token-bounded batch of rows (a row is one user's prompts), so scoring needs none of EncoderCausal.embed's
    extra batching: its groups() only wraps token ids."""

    def __init__(self, backbone: "T5Backbone", builder, yes: str, no: str, max_tokens: int, device: str):
        self.bb = backbone
        super().__init__(backbone.t5, backbone.enc_tok, builder, yes, no, max_tokens=max_tokens, score_rows=0,
                         device=device, embed=lambda segs: [s for s, _, _ in segs])

    @property
    def model(self):
        return self.bb  # train()/eval() go through the backbone, which keeps a frozen encoder in eval mode

    @model.setter
    def model(self, value):
        pass  # the backbone owns the (possibly LoRA-wrapped) T5

    def set_answers(self, yes: str, no: str) -> None:
        self.yes_id, self.no_id = answer_token_ids(self.tokenizer, yes.strip(), no.strip())

    def groups(self, prompts):
        from bench.lm.packing import Group
        return [Group(torch.zeros((0, 1)), [torch.tensor(s.ids) for s in pg.suffixes]) for pg, _, _ in prompts]

    def margins(self, groups) -> torch.Tensor:
        segs = [Encoded(s.tolist()) for g in groups for s in g.suffixes]
        with autocast(self.device):
            states, mask = self.bb.encode_segments(segs)
            return self.bb.margins_from_states(states, mask, self.yes_id, self.no_id, self.answers).float()


class T5Backbone(_DiversityEncoderBackbone):
    def __init__(self, t5: str, device: str = "cpu"):
        super().__init__()
        loaded = load_t5(t5, device=device)
        self.t5, self.enc_tok = loaded.model, loaded.tokenizer
        # stage 1 trains the encoder blocks only: the shared token embedding is tied to the decoder's input and
        # (in most T5s) to lm_head, so training it in stage 1 would change the decoder that stage 2 starts from
        for name, p in self.t5.named_parameters():
            p.requires_grad_(name.startswith("encoder.") and "embed_tokens" not in name)

    @property
    def device(self):
        return next(self.t5.parameters()).device

    @property
    def hidden_size(self) -> int:
        return self.t5.config.d_model

    @property
    def encoder(self):  # a view into the T5, not a second registered copy of it
        return self.t5.get_encoder()

    def encode_segments(self, segments: list[Encoded]):
        ids, mask = _pad([s.ids for s in segments], self.enc_tok.pad_token_id or 0, self.device)
        return self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask

    def pooled(self, segments: list[Encoded]) -> torch.Tensor:
        return masked_mean(*self.encode_segments(segments))

    def margins_from_states(self, states, mask, yes_id, no_id, counter=None):
        start = torch.full((len(states), 1), self.t5.config.decoder_start_token_id, device=states.device)
        out = self.t5(encoder_outputs=(states,), attention_mask=mask, decoder_input_ids=start)
        return yes_no_margin(out.logits[:, 0].float(), yes_id, no_id, counter)

    def generator_parameters(self):
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def start_stage2(self, p) -> None:
        for q in self.t5.parameters():
            q.requires_grad_(False)
        self.freeze_encoder()
        if p.decoder_tuning == "full":
            head, shared = self.t5.get_output_embeddings(), self.t5.get_input_embeddings()
            if head.weight is shared.weight:  # untie: the decoder's head trains, the encoder's input stays frozen
                head.weight = nn.Parameter(shared.weight.detach().clone())
            for name, q in self.t5.named_parameters():
                if name.startswith("decoder.") and "embed_tokens" not in name:
                    q.requires_grad_(True)
            head.weight.requires_grad_(True)
        elif p.decoder_tuning == "lora":
            self.t5 = add_lora(self.t5, p.lora_r, p.lora_alpha, p.lora_dropout, r".*decoder.*\.(q|v)$", 0)
        else:
            raise MethodError(f"decoder_tuning {p.decoder_tuning!r}: valid: lora, full")

    def stage2_parameters(self):
        return [q for q in self.t5.parameters() if q.requires_grad]

    def engine(self, builder, answers, max_tokens: int, score_rows: int, device: str) -> T5Engine:
        return T5Engine(self, builder, *answers, max_tokens=max_tokens, device=device)
