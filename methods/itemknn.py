"""ItemKNN through RecBole: item-item cosine similarity over the training interactions, k nearest neighbours.
Defaults: RecBole 1.2.1's ItemKNN.yaml (k 100, shrink 0). No training loop: one pass builds the similarity."""
from __future__ import annotations

from dataclasses import dataclass, field

from bench.recbole_adapter import RecBoleMethod, RecBoleParams


@dataclass
class ItemKNNParams(RecBoleParams):
    k: int = field(default=100, metadata={"help": "neighbourhood size"})
    shrink: float = field(default=0.0, metadata={"help": "shrinkage term of the cosine similarity"})


class ItemKNN(RecBoleMethod):
    name = "itemknn"
    recbole_model = "ItemKNN"
    description = "item-based k-nearest-neighbour collaborative filtering (RecBole)"
    Params = ItemKNNParams
    extra_config = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}, "knn_method": "item"}
    profiles = {"quick": {"epochs": 1}, "paper": {"epochs": 1}}
