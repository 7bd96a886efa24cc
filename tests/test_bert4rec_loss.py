"""methods/bert4rec.py computes RecBole's BERT4Rec CE loss on the masked positions only: the same loss and the same
gradients as RecBole's own calculate_loss, which also scores the empty mask slots and multiplies them by 0."""
import itertools

import pytest

from bench.data.candidates import draw
from bench.data.view import FitData
from bench.method import get_method
from tests.same_loss import assert_same_loss_and_grads


@pytest.mark.parametrize("max_len", [10, 50])
def test_masked_rows_loss_and_gradients_equal_recboles(tiny_ds, max_len):
    from recbole.model.sequential_recommender.bert4rec import BERT4Rec as RecBoleBERT4Rec
    data = FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 9, "uniform", 0), seed=0)
    m = get_method("bert4rec")(epochs=1, train_batch_size=64, hidden_size=16, inner_size=32, n_layers=1,
                               MAX_ITEM_LIST_LENGTH=max_len)
    with m._recbole_view(data):
        _, loader = m._build(data)
        model = m.model_
        assert isinstance(model, RecBoleBERT4Rec) and type(model) is not RecBoleBERT4Rec
        model.eval()   # no dropout: both losses see the same forward pass
        empty_slots = 0
        for batch in itertools.islice(iter(loader), 4):
            empty_slots += int((batch[model.MASK_INDEX] == 0).sum())
            assert_same_loss_and_grads(model, model.calculate_loss, lambda b: RecBoleBERT4Rec.calculate_loss(model, b),
                                       batch)
        assert empty_slots > 0, "the batches must hold empty mask slots, or the test shows nothing"
