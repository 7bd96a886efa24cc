"""DIN (Zhou et al., 2018), deep interest network, through RecBole: target-aware attention over the history,
trained pointwise with BCE on one uniform negative per positive. Item features: the item id plus the recipe's
attribute field (e.g. MovieLens genres, Amazon categories / attributes). Defaults: RecBole 1.2.1's DIN.yaml
(embedding 10, MLP 256-256-256, mean pooling, no dropout).

RecBole's DIN has no full_sort_predict: candidates are scored with forward() on repeated interactions. The harness
ranks by the logit, not sigmoid(logit): float32 sigmoid saturates at 1.0 and would turn distinct scores into ties."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.recbole_adapter import RecBoleMethod, RecBoleParams, quick_profile


@dataclass
class DINParams(RecBoleParams):
    embedding_size: int = field(default=10, metadata={"help": "embedding size of each feature"})
    mlp_hidden_size: str = field(default="256,256,256", metadata={"help": "MLP layer sizes, comma-separated"})
    dropout_prob: float = field(default=0.0, metadata={"help": "MLP dropout"})
    pooling_mode: str = field(default="mean", metadata={"help": "pooling of token_seq features: mean, max or sum",
                                                        "choices": ("mean", "max", "sum")})
    use_attributes: bool = field(default=True, metadata={"help": "add the recipe's item attribute field as a feature"})
    MAX_ITEM_LIST_LENGTH: int = field(default=50, metadata={"help": "history length the model reads"})
    full_batch_items: int = field(default=4096, metadata={"help": "items per forward pass in full ranking"})


class DIN(RecBoleMethod):
    name = "din"
    recbole_model = "DIN"
    description = "deep interest network, target attention over the history (RecBole model + training)"
    Params = DINParams
    # quick budget in epochs, not minutes (reproducible under any load):
    # 4 epochs: what the old 8-minute cap allowed on `beauty` (2 shared cores)
    profiles = quick_profile(4)
    # RecBole refuses full-sort evaluation for value metrics; its own evaluation is never used here anyway
    extra_config = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
                    "eval_args": {"split": {"LS": "valid_only"}, "order": "TO", "group_by": "user", "mode": "labeled"},
                    "metrics": ["AUC"], "valid_metric": "AUC"}

    def _model_config(self):
        cfg = super()._model_config()
        cfg["mlp_hidden_size"] = [int(x) for x in str(cfg["mlp_hidden_size"]).split(",")]
        cfg.pop("use_attributes"), cfg.pop("full_batch_items")
        return cfg

    def _item_features(self, data):
        if not self.params.use_attributes:
            return {}
        return {name: tokens for name, tokens in data.item_attrs.items()}

    def _logits(self, users: np.ndarray, items: np.ndarray, split: str) -> np.ndarray:
        """users [B], items [B, C] harness ids -> logits [B, C]."""
        import torch
        b, c = items.shape
        inter = self._interaction(np.repeat(users, c), split)
        with torch.no_grad():
            out = self.model_.forward(inter[self.model_.USER_ID], inter[self.model_.ITEM_SEQ],
                                      inter[self.model_.ITEM_SEQ_LEN],
                                      torch.as_tensor(self.item_map_[items.ravel()], device=self.config_["device"]))
        return out.view(b, c).float().cpu().numpy()

    def score(self, users, candidates, split="test"):
        users, candidates = np.asarray(users), np.asarray(candidates)
        rows = max(1, self.params.full_batch_items // candidates.shape[1])
        return np.concatenate([self._logits(users[s:s + rows], candidates[s:s + rows], split)
                               for s in range(0, len(users), rows)])

    def score_full(self, users, split="test"):
        users = np.asarray(users)
        n = len(self.item_map_)
        out = np.empty((len(users), n), dtype=np.float32)
        step = self.params.full_batch_items
        for r, u in enumerate(users):
            for s in range(0, n, step):
                items = np.arange(s, min(s + step, n))[None, :]
                out[r, s:s + items.shape[1]] = self._logits(np.array([u]), items, split)[0]
        return out
