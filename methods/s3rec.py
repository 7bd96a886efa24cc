"""S3-Rec (Zhou et al., 2020) through RecBole: self-supervised pre-training on item attributes (associated attribute,
masked item, masked attribute and segment prediction), then fine-tuning for next-item prediction.
The attribute field is the recipe's `attribute_field` (MovieLens `class`, Amazon `attributes` / `categories`).
Defaults: RecBole 1.2.1's S3Rec.yaml (2 layers, 2 heads, hidden 64, dropout 0.5, loss weights 0.2/1/1/0.5); the
pre-training budget is a knob (RecBole's default is 500 epochs).

The pre-trained state is handed to the fine-tuning stage as a plain state dict, which RecBole's torch.load reads
under weights-only loading.

The model is RecBole's, trained faster (`FastS3Rec`; scoring and the state dict are RecBole's):
- RecBole builds each pre-training batch in Python loops, down to a list of n_features ints per history slot (50 x 637
  per history on the Amazon sets). Here the batch is drawn with tensor operations from the same distributions (the
  masked slots, their negative items, the segments and their negatives: `tests/test_s3rec_fast.py` checks the
  batches' structure and frequencies against RecBole's loop). The draws come from torch's generator instead of
  Python's `random`, so a fit is not RecBole's number for number, but the same training.
- RecBole encodes every history on all 50 slots and computes the losses on every slot, padding included, before
  multiplying the padding by 0; on `beauty-5core` 83% of the slots are padding. Here each row is encoded on the slots
  its history fills (rounded up to a power of two: attention masks the padding out, so the kept slots come out the
  same) and each loss is summed over the slots RecBole's masks keep, in both stages: the same losses and gradients
  to float rounding (tests). `benchmarks/s3rec_speed.py` per batch, one core beside two other jobs: beauty-5core
  pre-training 5.7x, fine-tuning 2.4x; ml-100k (long histories, 19 attributes) 1.4x and 1.3x. A beauty-5core fit
  on one core beside one other job: pre-training epochs of about 3 minutes, fine-tuning epochs of about 1."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import torch

from bench.errors import MethodError
from bench.recbole_adapter import RecBoleMethod, RecBoleParams
from bench.training import CountedBatches, progress, report_budget_stop


@dataclass
class S3RecParams(RecBoleParams):
    n_layers: int = field(default=2, metadata={"help": "transformer layers"})
    n_heads: int = field(default=2, metadata={"help": "attention heads"})
    hidden_size: int = field(default=64, metadata={"help": "embedding / hidden size"})
    inner_size: int = field(default=256, metadata={"help": "feed-forward size"})
    hidden_dropout_prob: float = field(default=0.5, metadata={"help": "dropout on hidden states"})
    attn_dropout_prob: float = field(default=0.5, metadata={"help": "dropout on attention weights"})
    mask_ratio: float = field(default=0.2, metadata={"help": "share of items masked in pre-training"})
    aap_weight: float = field(default=0.2, metadata={"help": "associated attribute prediction loss weight"})
    mip_weight: float = field(default=1.0, metadata={"help": "masked item prediction loss weight"})
    map_weight: float = field(default=1.0, metadata={"help": "masked attribute prediction loss weight"})
    sp_weight: float = field(default=0.5, metadata={"help": "segment prediction loss weight"})
    pretrain_epochs: int = field(default=100, metadata={"help": "pre-training epochs"})
    pretrain_max_minutes: float | None = field(default=None, metadata={"help": "pre-training time budget"})
    MAX_ITEM_LIST_LENGTH: int = field(default=50, metadata={"help": "history length the model reads"})
    loss_type: str = field(default="CE", metadata={"help": "fine-tuning loss: CE or BPR", "choices": ("CE", "BPR")})


class S3Rec(RecBoleMethod):
    name = "s3rec"
    recbole_model = "S3Rec"
    description = "self-supervised pre-training on item attributes + fine-tuning (RecBole model + training)"
    Params = S3RecParams
    extra_config = {"train_neg_sample_args": None}
    # quick: 17 fine-tuning epochs, what the old 8-minute cap allowed on `beauty` (2 shared cores); the minutes are
    # safety stops only (a stop there marks the result budget-stopped)
    profiles = {"quick": {"epochs": 17, "max_minutes": 60, "patience": 10, "train_batch_size": 256,
                          "pretrain_epochs": 10, "pretrain_max_minutes": 60},
                "paper": {"epochs": 200, "patience": 10, "pretrain_epochs": 100}}

    def _model_class(self, config):
        return fast_s3rec()

    def _model_config(self):
        cfg = super()._model_config()
        cfg.pop("pretrain_max_minutes")
        return cfg

    def _item_features(self, data):
        if len(data.item_attrs) != 1:
            raise MethodError(f"s3rec needs exactly one item attribute field (recipe attribute_field); "
                              f"dataset {data.name} has {sorted(data.item_attrs) or 'none'}")
        return dict(data.item_attrs)

    def _fit_stages(self, data) -> None:
        attr = next(iter(data.item_attrs))
        trainer, train_data = self._build(data, train_stage="pretrain", item_attribute=attr)
        t0, losses, done, stopped = time.perf_counter(), [], False, False
        ckpt, state = self._resume(data, "pretrain", trainer, train_data)
        if state is not None:  # an interrupted fit continues its pre-training, or skips it once it was finished
            losses, done, stopped = list(state["losses"]), state["done"], state["budget_stopped"]
            t0 -= 60 * state["minutes"]
            if stopped:
                report_budget_stop("pretrain")
        for epoch in range(len(losses), 0 if done else self.params.pretrain_epochs):
            te = time.perf_counter()
            with progress(len(train_data), f"s3rec pretrain epoch {epoch + 1}/{self.params.pretrain_epochs}") as adv:
                loss = trainer._train_epoch(CountedBatches(train_data, adv), epoch)
            losses.append(float(sum(loss)) if isinstance(loss, tuple) else float(loss))
            data.log(f"s3rec pretrain epoch {epoch}: loss {losses[-1]:.4f} ({time.perf_counter() - te:.1f}s)")
            limit = self.params.pretrain_max_minutes
            stopped = limit is not None and time.perf_counter() - t0 > 60 * limit
            if stopped:
                report_budget_stop("pretrain")
            if ckpt is not None:
                self._save_epoch(ckpt, trainer, train_data, epoch + 1, losses=losses,
                                 minutes=(time.perf_counter() - t0) / 60, budget_stopped=stopped,
                                 done=stopped or epoch + 1 == self.params.pretrain_epochs)
            if stopped:
                break
        pretrain = {"epochs_run": len(losses), "losses": losses, "minutes": (time.perf_counter() - t0) / 60}
        path = self._tmp / "pretrained.pth"
        torch.save({"state_dict": self.model_.state_dict()}, path)
        trainer, train_data = self._build(data, train_stage="finetune", item_attribute=attr, pre_model_path=str(path))
        self._train(data, trainer, train_data, stage="finetune")
        self.fit_info_["pretrain"] = pretrain

    def _build_trained(self, data, weights) -> None:
        # RecBole's fine-tuning model starts from a state dict file: here the saved one (`load` puts it in again)
        from safetensors.torch import load_file
        path = self._tmp / "pretrained.pth"
        torch.save({"state_dict": load_file(str(weights))}, path)
        self._build(data, train_stage="finetune", item_attribute=next(iter(data.item_attrs)),
                    pre_model_path=str(path))


@functools.cache
def fast_s3rec():
    """RecBole's S3Rec with vectorised pre-training batches, each row encoded on the slots its history fills and the
    losses summed over the slots that enter them (module docstring). Scoring and the state dict are RecBole's."""
    from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec

    class FastS3Rec(RecBoleS3Rec):
        def _multi_hot(self, device) -> torch.Tensor:
            """[item_num, n_features] 0/1: each item's attributes, as RecBole's loop spells them (token - 1)."""
            cached = getattr(self, "_multi_hot_cache", None)
            if cached is None or cached.device != device:
                idx = self.item_feat[self.FEATURE_FIELD].long() - 1          # -1 = padding slot
                if idx.dim() != 2:
                    raise MethodError(f"s3rec: attribute field {self.FEATURE_FIELD} must be a token sequence "
                                      f"(one row of tokens per item), got {idx.dim()} dimension(s)")
                hot = torch.zeros(idx.size(0), self.n_features + 1)
                hot.scatter_(1, torch.where(idx >= 0, idx, self.n_features), 1.0)  # padding -> a spare column
                cached = self._multi_hot_cache = hot[:, : self.n_features].to(device)
            return cached

        def _negatives(self, seq: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
            """RecBole's `_neg_sample` for each masked slot: uniform on 1..n_items-1 (the mask token included, as
            there), redrawn while the item is in the slot's own history."""
            neg = torch.randint(1, self.n_items, seq.shape, device=seq.device)
            todo = masked & (neg.unsqueeze(-1) == seq.unsqueeze(1)).any(-1)
            while todo.any():
                rows, cols = todo.nonzero(as_tuple=True)
                neg[rows, cols] = torch.randint(1, self.n_items, (len(rows),), device=seq.device)
                todo[rows, cols] = (neg[rows, cols].unsqueeze(-1) == seq[rows]).any(-1)
            return neg

        def reconstruct_pretrain_data(self, item_seq, item_seq_len):
            """RecBole's batch (the same seven tensors, histories moved to the right, padding on the left), drawn
            with tensor operations."""
            b, width = item_seq.shape
            dev = item_seq.device
            lens = item_seq_len.long()
            src = torch.arange(width, device=dev).unsqueeze(0) - (width - lens).unsqueeze(1)  # slot -> history index
            real = src >= 0
            seq = torch.where(real, item_seq.gather(1, src.clamp(min=0)), 0)
            features = self._multi_hot(dev)[seq]                             # padding item 0 has no attributes
            mask = torch.full_like(seq, self.mask_token)

            # masked item (and attribute) prediction: each slot masked with probability mask_ratio
            masked = real & (torch.rand(seq.shape, device=dev) < self.mask_ratio)
            masked_items = torch.where(masked, mask, seq)
            neg_items = torch.where(masked, self._negatives(seq, masked), seq)

            # segment prediction: a segment of 1..len//2 items at a uniform start, its negative a window of the
            # batch's histories laid end to end (RecBole's `long_sequence`); histories shorter than 2 stay as they are
            pool = seq[real]
            seg = (lens >= 2).unsqueeze(1)
            u = torch.rand(3, b, dtype=torch.float64, device=dev)
            length = (u[0] * (lens // 2)).long() + 1
            start = (u[1] * (lens - length + 1)).long()
            neg_start = (u[2] * (len(pool) - length + 1)).long()
            inside = real & (src >= start.unsqueeze(1)) & (src < (start + length).unsqueeze(1))
            window = (neg_start.unsqueeze(1) + src - start.unsqueeze(1)).clamp(0, len(pool) - 1)
            outside = torch.where(real, mask, 0)
            masked_segment = torch.where(seg & inside, mask, seq)
            pos_segment = torch.where(seg, torch.where(inside, seq, outside), seq)
            neg_segment = torch.where(seg, torch.where(inside, pool[window], outside), seq)
            return features, masked_items, seq, neg_items, masked_segment, pos_segment, neg_segment

        def _encode(self, item_seq: torch.Tensor, first: int) -> torch.Tensor:
            """RecBole's bidirectional `forward` on the columns from `first` on, at their own positions: the
            columns before hold padding in these rows, which attention masks out, so the kept slots come out the same."""
            positions = torch.arange(first, first + item_seq.size(1), device=item_seq.device)
            emb = self.item_embedding(item_seq) + self.position_embedding(positions).unsqueeze(0)
            emb = self.dropout(self.LayerNorm(emb))
            mask = self.get_attention_mask(item_seq, bidirectional=True)
            return self.trm_encoder(emb, mask, output_all_encoded_layers=True)[-1]

        @staticmethod
        def width_groups(lengths: torch.Tensor, width: int) -> list[tuple[torch.Tensor, int]]:
            """Rows grouped by the narrowest of width / 2**k columns that holds their history."""
            widths = [width] + [2 ** k for k in range(width.bit_length() - 1, 0, -1) if 2 ** k < width]
            assigned = torch.full_like(lengths, width)
            for w in widths[1:]:
                assigned[lengths <= w] = w
            return [(rows, w) for w in widths if len(rows := (assigned == w).nonzero(as_tuple=True)[0])]

        def pretrain(self, features, masked_item_sequence, pos_items, neg_items, masked_segment_sequence,
                     pos_segment, neg_segment):
            """RecBole's four pre-training losses, each summed over the slots RecBole's masks keep: every row is
            encoded on just the columns its history fills (rounded up to a power of two), and the sums add up."""
            width = masked_item_sequence.size(1)
            lengths = (masked_item_sequence != 0).sum(1)
            losses = [self._pretrain_rows(rows, width - w, features, masked_item_sequence, pos_items, neg_items,
                                          masked_segment_sequence, pos_segment, neg_segment)
                      for rows, w in self.width_groups(lengths, width)]
            return torch.stack(losses).sum(0) @ torch.tensor(
                [self.aap_weight, self.mip_weight, self.map_weight, self.sp_weight], device=lengths.device)

        def calculate_loss(self, interaction):
            """Pre-training as RecBole calls it; the fine-tuning CE loss on the columns each row fills: the
            histories sit at the left there and attention is causal, so the columns after a history change nothing."""
            if self.train_stage == "pretrain" or self.loss_type != "CE":
                return super().calculate_loss(interaction)
            item_seq, lengths = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
            targets, total = interaction[self.POS_ITEM_ID], 0.0
            for rows, w in self.width_groups(lengths, item_seq.size(1)):
                out = self.gather_indexes(self.forward(item_seq[rows, :w], bidirectional=False), lengths[rows] - 1)
                logits = out @ self.item_embedding.weight.t()
                total = total + torch.nn.functional.cross_entropy(logits, targets[rows], reduction="sum")
            return total / len(item_seq)

        def _pretrain_rows(self, rows, first, features, masked_item_sequence, pos_items, neg_items,
                           masked_segment_sequence, pos_segment, neg_segment) -> torch.Tensor:
            """The AAP, MIP, MAP and SP loss sums of these rows, whose columns before `first` are padding."""
            b = len(rows)
            pick = lambda t: t[rows, first:]  # noqa: E731
            seqs = torch.cat([pick(masked_item_sequence), pick(masked_segment_sequence), pick(pos_segment),
                              pick(neg_segment)])
            out = self._encode(seqs, first)
            hidden = out.size(-1)
            items = pick(masked_item_sequence).reshape(-1)
            seq_out = out[:b].reshape(-1, hidden)
            feats = pick(features).reshape(-1, features.size(-1)).float()
            attr_emb = self.feature_embedding.weight
            kept = ((items != self.mask_token) & (items != 0)).nonzero(as_tuple=True)[0]
            aap = self.loss_fct(self.aap_norm(seq_out[kept]) @ attr_emb.t(), feats[kept]).sum()
            hid = (items == self.mask_token).nonzero(as_tuple=True)[0]
            mip_out = self.mip_norm(seq_out[hid])
            pos = torch.sigmoid((mip_out * self.item_embedding(pick(pos_items).reshape(-1)[hid])).sum(-1))
            neg = torch.sigmoid((mip_out * self.item_embedding(pick(neg_items).reshape(-1)[hid])).sum(-1))
            mip = self.loss_fct(pos - neg, torch.ones_like(pos)).sum()
            map_ = self.loss_fct(self.map_norm(seq_out[hid]) @ attr_emb.t(), feats[hid]).sum()
            context, pos_seg, neg_seg = out[b:, -1].chunk(3)
            context = self.sp_norm(context)
            sp_pos = torch.sigmoid((context * pos_seg).sum(-1))
            sp_neg = torch.sigmoid((context * neg_seg).sum(-1))
            sp = self.loss_fct(sp_pos - sp_neg, torch.ones_like(sp_pos)).sum()
            return torch.stack([aap, mip, map_, sp])

    return FastS3Rec
