"""The yes/no LM layer shared by TALLRec, CoLLM and GANPrompt: prompts (one truncation rule), packed prefix-shared
forward passes (bench/lm/packing.py), one scorer and one fine-tuning loop with a recorded learning curve.

A method gives the engine a causal LM, a prompt builder and, where it writes its own vectors into the prompt
(CoLLM's slots, GANPrompt's soft tokens), an `embed` function; everything else is common."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import MethodError
from bench.evaluate import evaluate_sampled
from bench.lm.params import LOSSES
from bench.lm.packing import Group, answer_states, batches_by_tokens, group_margins, output_head, split_group
from bench.lm.prompts import Encoded, PromptBuilder, PromptGroup
from bench.lm.samples import TrainGroup
from bench.lm.yesno import AnswerCounter, answer_token_ids, yes_no_margin
from bench.training import BestOnValidation, progress


def add_lora(model, r: int, alpha: int, dropout: float, targets: str, layers: int = 0):
    """peft LoRA on `targets`; with layers > 0 only the top `layers` transformer blocks get adapters, so the
    backward pass stops below them (fewer FLOPs per step on a CPU)."""
    import warnings
    from peft import LoraConfig, get_peft_model
    # peft asks the model a deprecated transformers question; the warning says nothing to a user of the harness
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # LoRA on a tied lm_head adapts the output head only (the input embeddings stay as they are), which is what a
    # readout adapter means here; peft warns about merging such adapters, which the harness never does
    warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*", category=UserWarning)
    kw = {}
    n = getattr(model.config, "num_hidden_layers", None)
    if layers and n:
        kw["layers_to_transform"] = list(range(max(0, n - layers), n))
    regex = any(c in targets for c in "*$(|")  # peft reads a string as one regular expression, a list as names
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                     target_modules=targets if regex else [t.strip() for t in targets.split(",") if t.strip()], **kw)
    return get_peft_model(model, cfg)


def autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


class YesNoEngine:
    """Packed yes/no scoring and training for one causal LM.

    embed(segments) -> list of [L, H] tensors, one per (Encoded, user, item) triple; the default looks the ids up in
    the LM's token-embedding table. A method that writes vectors into the prompt passes its own."""

    def __init__(self, model, tokenizer, builder: PromptBuilder, yes: str, no: str, max_tokens: int = 4096,
                 score_rows: int = 32, device: str = "cpu",
                 embed: Callable[[list[tuple[Encoded, int, int]]], list[torch.Tensor]] | None = None):
        self.model, self.tokenizer, self.builder = model, tokenizer, builder
        self.max_tokens, self.score_rows, self.device = max_tokens, score_rows, device
        self.embed = embed or self.token_embeddings
        self.answers = AnswerCounter()
        self.stats = {"prompts": 0, "truncated": 0, "overlong": 0}
        self.set_answers(yes, no)

    def set_answers(self, yes: str, no: str) -> None:
        self.yes_id, self.no_id = answer_token_ids(self.tokenizer, yes, no)

    def token_embeddings(self, segments: list[tuple[Encoded, int, int]]) -> list[torch.Tensor]:
        table = self.model.get_input_embeddings()
        lengths = [len(e) for e, _, _ in segments]
        ids = torch.tensor([i for e, _, _ in segments for i in e.ids], dtype=torch.long, device=self.device)
        return list(torch.split(table(ids), lengths)) if ids.numel() else [table.weight[:0] for _ in segments]

    # ---- prompts -> packed groups ----
    def prompt(self, user: int, history, items, attribute: str | None = None,
               builder: PromptBuilder | None = None) -> tuple[PromptGroup, int, list[int]]:
        """A user's prompt group under the builder's truncation rule (the engine's own builder unless another, e.g.
        GANPrompt's adversarial template, is given); counted in `stats`."""
        pg = (builder or self.builder).group(history, items, attribute)
        self.stats["prompts"] += 1
        self.stats["truncated"] += int(pg.history_used < pg.history_shown)
        self.stats["overlong"] += int(pg.overlong)
        return pg, int(user), [int(i) for i in items]

    def groups(self, prompts: list[tuple[PromptGroup, int, list[int]]]) -> list[Group]:
        segs = []
        for pg, u, items in prompts:
            segs.append((pg.prefix, u, -1))
            segs += [(s, u, i) for s, i in zip(pg.suffixes, items)]
        emb = self.embed(segs)
        out, at = [], 0
        for pg, _, items in prompts:
            out.append(Group(emb[at], emb[at + 1:at + 1 + len(items)]))
            at += 1 + len(items)
        return out

    def margins(self, groups: list[Group]) -> torch.Tensor:
        with autocast(self.device):
            return group_margins(self.model, groups, self.yes_id, self.no_id, self.answers).float()

    def head_margins(self, states: torch.Tensor) -> torch.Tensor:
        """Margins from answer-position states (the output head only): the cached path, when only the head trains."""
        states = states.to(self.device)  # validation states come back on the CPU (engine.states)
        with autocast(self.device):
            return yes_no_margin(output_head(self.model)(states).float(), self.yes_id, self.no_id)

    # ---- scoring ----
    @torch.no_grad()
    def score(self, data, users, candidates, split: str, chunk_users: int = 64) -> np.ndarray:
        """Margins for every candidate of every user; rows of many users share one forward pass."""
        return self._per_candidate(data, users, candidates, split, chunk_users,
                                   lambda rows: self.margins(rows).cpu().numpy(), ())

    @torch.no_grad()
    def states(self, data, users, candidates, split: str, chunk_users: int = 64) -> torch.Tensor:
        """Answer-position hidden states [U, C, H] of every candidate of every user (the packed forward pass without
        the output head)."""
        hidden = self.model.get_input_embeddings().weight.shape[1]
        with autocast(self.device):
            return torch.from_numpy(self._per_candidate(
                data, users, candidates, split, chunk_users,
                lambda rows: answer_states(self.model, rows).float().cpu().numpy(), (hidden,)))

    def _per_candidate(self, data, users, candidates, split, chunk_users, forward, tail: tuple) -> np.ndarray:
        self.model.eval()
        users, candidates = np.asarray(users), np.asarray(candidates)
        out = np.empty(candidates.shape + tail, dtype=np.float32)
        for start in range(0, len(users), chunk_users):
            prompts = [self.prompt(u, data.history(int(u), split), c)
                       for u, c in zip(users[start:start + chunk_users], candidates[start:start + chunk_users])]
            rows, where = [], []
            for r, g in enumerate(self.groups(prompts)):
                col = 0
                for part in split_group(g, self.score_rows):
                    rows.append(part)
                    where.append((start + r, col))
                    col += len(part.suffixes)
            for idx in batches_by_tokens([r.length for r in rows], self.max_tokens):
                m = forward([rows[i] for i in idx])
                at = 0
                for i in idx:
                    r, col = where[i]
                    n = len(rows[i].suffixes)
                    out[r, col:col + n] = m[at:at + n]
                    at += n
        return out

    def valid_set(self, data, n_users: int, n_negatives: int, rng: np.random.Generator):
        """Validation users drawn ONCE per fit: (users, candidates [U, 1 + n], labels), the positive first."""
        vc = data.valid_candidates
        if not n_users or vc is None:
            return None
        rows = np.sort(rng.choice(len(vc.users), size=min(n_users, len(vc.users)), replace=False))
        sub = vc.subset(rows)
        items = []
        for cand, lab in zip(sub.items, sub.labels):
            items.append(np.concatenate([cand[lab], cand[~lab][:n_negatives]]))
        items = np.stack(items)
        labels = np.zeros(items.shape, dtype=bool)
        labels[:, 0] = True
        return sub.users, items, labels

    def validate(self, data, vset, states: torch.Tensor | None = None) -> dict:
        """Validation metrics; with `states` (the cached answer-position states of vset) only the head runs."""
        users, items, labels = vset
        if states is not None:
            with torch.no_grad():
                scores = self.head_margins(states.reshape(-1, states.shape[-1])).reshape(items.shape).cpu().numpy()
        else:
            counter = (self.answers.prompts, self.answers.valid, self.answers.yes)
            scores = self.score(data, users, items, "valid")
            self.answers.prompts, self.answers.valid, self.answers.yes = counter  # not the test's answers
        m = evaluate_sampled(scores, labels).metrics
        return {"valid_gauc": m["gauc"], "valid_auc": m["auc"], "valid_ndcg@10": m["ndcg@10"]}


@dataclass
class Curve:
    """A learning curve: training loss per step and validation metrics at each evaluation."""
    every: int
    steps: list
    evals: list

    def as_dict(self) -> dict:
        return {"train_loss": self.steps, "valid": self.evals, "eval_every_steps": self.every}



def group_loss(margins: torch.Tensor, labels: list[np.ndarray], loss: str) -> torch.Tensor:
    """Summed loss of consecutive groups' margins: bce over every margin, or softmax (the cross-entropy of each
    group's single positive among its candidates)."""
    y = torch.tensor(np.concatenate(labels), dtype=torch.float32, device=margins.device)
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(margins, y, reduction="sum")
    if loss != "softmax":
        raise MethodError(f"loss {loss!r}: valid: {', '.join(LOSSES)}")
    out, at = margins.new_zeros(()), 0
    for lab in labels:
        m = margins[at:at + len(lab)]
        out = out - torch.log_softmax(m, 0)[int(np.argmax(lab))]
        at += len(lab)
    return out


def finetune(engine: YesNoEngine, params: list[nn.Parameter], groups: list[TrainGroup],
             prompts_of: Callable[[TrainGroup, np.random.Generator], list[tuple[tuple, np.ndarray]]],
             data, *, epochs: int, batch_groups: int, lr: float, weight_decay: float = 0.0, eval_every: int = 0,
             vset=None, rng: np.random.Generator, max_minutes: float | None = None, train_modules=(),
             name: str = "lm", loss: str = "bce", cache_states: bool | None = None) -> dict:
    """The one fine-tuning loop: BCE on yes/no margins of packed groups, gradient accumulation over micro-batches of
    at most engine.max_tokens tokens, validation GAUC every `eval_every` steps on users drawn once, the best
    validated state restored at the end. `prompts_of(group, rng)` -> [((PromptGroup, user, items), labels)]: the
    prompts of one training group (GANPrompt adds attribute variants). Returns the record for fit_info_.

    When only the output head trains (a readout adapter; `cache_states` None = detect it), the LM body's
    answer-position states cannot change: every training prompt and validation candidate runs through the body once,
    and all steps and epochs read those cached states (the same margins, at the cost of the head alone). A group's
    prompts are then drawn once, not once per epoch."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    holder = nn.ParameterList(params)  # BestOnValidation copies only the trained tensors, not the frozen LM
    es = BestOnValidation(holder, max_minutes=max_minutes)
    steps_per_epoch = math.ceil(len(groups) / batch_groups)
    total = epochs * steps_per_epoch
    every = eval_every or steps_per_epoch
    curve, stopped, step, t0 = Curve(every, [], []), "steps", 0, time.perf_counter()
    if cache_states is None:
        cache_states = head_only(engine, params)
    cache, vstates = None, None
    if cache_states:
        cache = _cache_states(engine, groups, prompts_of, rng, name)
        vstates = engine.states(data, vset[0], vset[1], "valid") if vset is not None else None
    cache_s = round(time.perf_counter() - t0, 1)

    def evaluate(step: int):
        if vset is None:
            return
        engine.model.eval()
        for m in train_modules:
            m.eval()
        entry = {"step": step, "elapsed_s": round(time.perf_counter() - t0, 1),
                 **engine.validate(data, vset, vstates)}
        es.observe(step, entry["valid_gauc"])
        curve.evals.append(entry)
        data.log(f"{name} step {step}/{total}: valid GAUC {entry['valid_gauc']:.4f} AUC {entry['valid_auc']:.4f}")

    def train_step(indices) -> float:
        engine.model.train()
        for m in train_modules:
            m.train()
        opt.zero_grad()
        if cache is not None:  # (states, labels) pairs: one chunk, the head alone runs
            parts = [x for i in indices for x in cache[i]]
            chunks = [list(range(len(parts)))]

            def margins_of(idx):
                return engine.head_margins(torch.cat([parts[i][0] for i in idx]))
        else:  # (prompt, labels) pairs: token-bounded micro-batches through the whole LM
            parts = [p for i in indices for p in prompts_of(groups[i], rng)]
            chunks = batches_by_tokens([pg.length for (pg, _, _), _ in parts], engine.max_tokens)

            def margins_of(idx):
                return engine.margins(engine.groups([parts[i][0] for i in idx]))
        norm = sum(len(lab) for _, lab in parts) if loss == "bce" else len(parts)
        total_loss = 0.0
        for idx in chunks:
            part = group_loss(margins_of(idx), [parts[i][1] for i in idx], loss) / norm
            part.backward()
            total_loss += part.item()
        opt.step()
        return total_loss

    evaluate(0)  # step 0: what the untrained model does
    for epoch in range(epochs):
        order = rng.permutation(len(groups))
        with progress(steps_per_epoch, f"{name} epoch {epoch + 1}/{epochs}") as advance:
            for start in range(0, len(order), batch_groups):
                curve.steps.append(round(train_step(order[start:start + batch_groups]), 5))
                step += 1
                advance(1)
                if step % 5 == 0:
                    data.log(f"{name} step {step}/{total}: {loss} {np.mean(curve.steps[-5:]):.4f}")
                if step % every == 0 or step == total:
                    evaluate(step)
                if es.out_of_time():
                    stopped = "max_minutes"
                    break
        if stopped != "steps":
            break
    if curve.evals and curve.evals[-1]["step"] != step:
        evaluate(step)
    es.restore()
    engine.model.eval()
    for m in train_modules:
        m.eval()
    best = max(curve.evals, key=lambda e: e["valid_gauc"]) if curve.evals else None
    return {"steps": step, "steps_planned": total, "stopped_by": stopped, "budget_stopped": stopped == "max_minutes",
            "best_step": best["step"] if best else None, "best_valid_gauc": best["valid_gauc"] if best else None,
            "still_improving": bool(best and curve.evals and best["step"] == curve.evals[-1]["step"] and step > 0),
            "curve": curve.as_dict(), "train_s": round(time.perf_counter() - t0, 1),
            "cached_states": bool(cache_states), "cache_s": cache_s if cache_states else None}


def head_only(engine: YesNoEngine, params: list[nn.Parameter]) -> bool:
    """True when every trained parameter belongs to the causal LM's output head."""
    try:
        head = {id(q) for q in output_head(engine.model).parameters()}
    except AttributeError:  # not a causal LM (T5's engine)
        return False
    return bool(params) and all(id(q) in head for q in params)


@torch.no_grad()
def _cache_states(engine: YesNoEngine, groups, prompts_of, rng, name: str) -> list[list[tuple[torch.Tensor, np.ndarray]]]:
    """Answer-position states of every training group's prompts, [(states [n, H], labels)] per group."""
    engine.model.eval()
    flat = [(gi, prompt, lab) for gi, g in enumerate(groups) for prompt, lab in prompts_of(g, rng)]
    sizes = [pg.length for _, (pg, _, _), _ in flat]
    out: list[list] = [[] for _ in groups]
    batches = batches_by_tokens(sizes, engine.max_tokens)
    with progress(len(batches), f"{name}: answer states of the training prompts") as advance, autocast(engine.device):
        for idx in batches:
            st = answer_states(engine.model, engine.groups([flat[i][1] for i in idx])).float()
            at = 0
            for i in idx:
                n = len(flat[i][2])
                out[flat[i][0]].append((st[at:at + n], flat[i][2]))
                at += n
            advance(1)
    return out
