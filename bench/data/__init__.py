"""Data: recipes, readers, preprocessing, candidate sets and the leakage-free view methods train on."""
from bench.data.candidates import Candidates, get_candidates
from bench.data.prepare import SeqDataset, load_dataset
from bench.data.recipe import Recipe, available_recipes, load_recipe
from bench.data.view import FitData

__all__ = ["Candidates", "FitData", "Recipe", "SeqDataset", "available_recipes", "get_candidates", "load_dataset",
           "load_recipe"]
