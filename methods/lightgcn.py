"""LightGCN (He et al., 2020) through RecBole. Defaults: RecBole 1.2.1's LightGCN.yaml (embedding 64, 2 layers,
reg 1e-5, BPR loss with one uniform negative). A general (non-sequential) model."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.recbole_adapter import RecBoleMethod, RecBoleParams


@dataclass
class LightGCNParams(RecBoleParams):
    embedding_size: int = field(default=64, metadata={"help": "user and item embedding size"})
    n_layers: int = field(default=2, metadata={"help": "graph propagation layers"})
    reg_weight: float = field(default=1e-5, metadata={"help": "L2 regularisation weight"})


class LightGCN(RecBoleMethod):
    name = "lightgcn"
    recbole_model = "LightGCN"
    description = "simplified graph convolution collaborative filtering (RecBole model + training)"
    Params = LightGCNParams
    extra_config = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}}
