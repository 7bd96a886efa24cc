"""The training view every benchmark fits on: the dataset's train split with seed-0 validation candidates drawn as
`bench.py run` draws them (`runner.valid_protocol`), unless a benchmark asks for another number of negatives."""
from bench.data.candidates import draw
from bench.data.view import FitData
from bench.runner import valid_protocol


def fit_data(ds, negatives: int | None = None) -> FitData:
    vp = valid_protocol(ds)
    n = vp.n_negatives if negatives is None else negatives
    return FitData.from_dataset(ds, valid_candidates=draw(ds, "valid", n, vp.sampler, 0), seed=0)
