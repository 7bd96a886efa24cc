"""The training view every benchmark fits on: the dataset's train split with the seed-0 uniform validation
candidates, the same view `bench.py run` builds for seed 0."""
from bench.data.candidates import draw
from bench.data.view import FitData


def fit_data(ds, negatives: int = 99) -> FitData:
    return FitData.from_dataset(ds, valid_candidates=draw(ds, "valid", negatives, "uniform", 0), seed=0)
