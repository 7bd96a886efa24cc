"""For the models the harness subclasses for speed: the subclass's loss and RecBole's, on the same input, must give the
same value and the same gradients (to float rounding)."""
import pytest
import torch


def loss_and_grads(model, loss_fn, *inputs):
    model.zero_grad()
    loss = loss_fn(*inputs)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def assert_same_loss_and_grads(model, ours, theirs, *inputs, atol: float = 1e-6):
    """Call with the model in eval mode, so that both losses see the same forward pass (no dropout)."""
    (loss, grads), (their_loss, their_grads) = (loss_and_grads(model, fn, *inputs) for fn in (ours, theirs))
    assert torch.isfinite(loss) and loss == pytest.approx(float(their_loss), rel=1e-5)
    assert grads.keys() == their_grads.keys()
    for k in grads:
        torch.testing.assert_close(grads[k], their_grads[k], rtol=1e-4, atol=atol, msg=k)
