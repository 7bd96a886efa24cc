"""GRU4Rec (Hidasi et al., 2016) through RecBole. Defaults: RecBole 1.2.1's GRU4Rec.yaml (embedding 64, hidden 128,
1 layer, dropout 0.3, CE loss)."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.recbole_adapter import RecBoleMethod, RecBoleParams, quick_profile


@dataclass
class GRU4RecParams(RecBoleParams):
    embedding_size: int = field(default=64, metadata={"help": "item embedding size"})
    hidden_size: int = field(default=128, metadata={"help": "GRU hidden size"})
    num_layers: int = field(default=1, metadata={"help": "GRU layers"})
    dropout_prob: float = field(default=0.3, metadata={"help": "embedding dropout"})
    MAX_ITEM_LIST_LENGTH: int = field(default=50, metadata={"help": "history length the model reads"})
    loss_type: str = field(default="CE", metadata={"help": "CE (softmax over all items) or BPR",
                                                   "choices": ("CE", "BPR")})


class GRU4Rec(RecBoleMethod):
    name = "gru4rec"
    recbole_model = "GRU4Rec"
    description = "GRU session/sequential recommender (RecBole model + training)"
    Params = GRU4RecParams
    # quick budget in epochs, not minutes (reproducible under any load):
    # 18 epochs: what the old 8-minute cap allowed on `beauty` (2 shared cores)
    profiles = quick_profile(18)
    extra_config = {"train_neg_sample_args": None}
