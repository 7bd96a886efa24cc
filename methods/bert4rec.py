"""BERT4Rec (Sun et al., 2019) through RecBole, with its masked-item training transform. Defaults: RecBole 1.2.1's
BERT4Rec.yaml (2 layers, 2 heads, hidden 64, inner 256, dropout 0.2, mask ratio 0.2, CE loss).

The CE loss is RecBole's, computed on the masked positions only. RecBole scores every one of the
mask_ratio x MAX_ITEM_LIST_LENGTH mask slots of a sequence against all items and multiplies the slots that hold no
masked item by 0; on the Amazon 5-core sets (short histories) 88% of the slots are such padding, and that softmax
over all items is most of the step. Skipping those rows gives the same loss and gradients (to float rounding:
tests/test_bert4rec_loss.py) at 2.2x the speed per batch on beauty-5core (benchmarks/bert4rec_loss.py)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from bench.recbole_adapter import RecBoleMethod, RecBoleParams, quick_profile


@dataclass
class BERT4RecParams(RecBoleParams):
    n_layers: int = field(default=2, metadata={"help": "transformer layers"})
    n_heads: int = field(default=2, metadata={"help": "attention heads"})
    hidden_size: int = field(default=64, metadata={"help": "embedding / hidden size"})
    inner_size: int = field(default=256, metadata={"help": "feed-forward size"})
    hidden_dropout_prob: float = field(default=0.2, metadata={"help": "dropout on hidden states"})
    attn_dropout_prob: float = field(default=0.2, metadata={"help": "dropout on attention weights"})
    mask_ratio: float = field(default=0.2, metadata={"help": "share of items replaced by [MASK] in training"})
    MAX_ITEM_LIST_LENGTH: int = field(default=50, metadata={"help": "history length the model reads"})
    loss_type: str = field(default="CE", metadata={"help": "CE (softmax over all items) or BPR",
                                                   "choices": ("CE", "BPR")})


class BERT4Rec(RecBoleMethod):
    name = "bert4rec"
    recbole_model = "BERT4Rec"
    description = "bidirectional transformer with masked-item training (RecBole model + training)"
    Params = BERT4RecParams
    # quick budget in epochs, not minutes (reproducible under any load):
    # 7 epochs: what the old 8-minute cap allowed on `beauty` (2 shared cores)
    profiles = quick_profile(7)
    extra_config = {"train_neg_sample_args": None, "transform": "mask_itemseq", "ft_ratio": 0.5}

    def _model_class(self, config):
        return masked_rows_bert4rec()


@functools.cache
def masked_rows_bert4rec():
    """RecBole's BERT4Rec whose CE loss visits the masked positions only (see the module docstring)."""
    from recbole.model.sequential_recommender.bert4rec import BERT4Rec as RecBoleBERT4Rec

    class MaskedRowsBERT4Rec(RecBoleBERT4Rec):
        def calculate_loss(self, interaction):
            if self.loss_type != "CE":
                return super().calculate_loss(interaction)
            masked_index = interaction[self.MASK_INDEX]                 # [B mask_len] positions; 0 = no item
            seq_output = self.forward(interaction[self.MASK_ITEM_SEQ])  # [B L H]
            # RecBole's rule for a real slot (so a mask at position 0 is dropped there and here alike)
            rows = (masked_index > 0).nonzero(as_tuple=True)
            logits = (seq_output[rows[0], masked_index[rows]] @ self.item_embedding.weight[: self.n_items].t()
                      + self.output_bias)                               # [n_masked item_num]
            loss = torch.nn.functional.cross_entropy(logits, interaction[self.POS_ITEMS][rows], reduction="sum")
            return loss / len(rows[0])

    return MaskedRowsBERT4Rec
