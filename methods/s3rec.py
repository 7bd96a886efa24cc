"""S3-Rec (Zhou et al., 2020) through RecBole: self-supervised pre-training on item attributes (associated attribute,
masked item, masked attribute and segment prediction), then fine-tuning for next-item prediction.
The attribute field is the recipe's `attribute_field` (MovieLens `class`, Amazon `attributes` / `categories`).
Defaults: RecBole 1.2.1's S3Rec.yaml (2 layers, 2 heads, hidden 64, dropout 0.5, loss weights 0.2/1/1/0.5); the
pre-training budget is a knob (RecBole's default is 500 epochs; ~10 minutes per epoch on ml-100k on 2 CPU cores).

The pre-trained state is handed to the fine-tuning stage as a plain state dict, which RecBole's torch.load reads
under weights-only loading."""
from __future__ import annotations

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
