"""A sped-up loss against RecBole's on the same batches: its time per batch, and how far it is (the largest relative
loss difference, the largest gradient difference and the largest gradient entry for scale, without dropout)."""
import time


def differences(model, fns, inputs_of, batches):
    """Largest relative loss difference, largest gradient difference and largest gradient entry, without dropout."""
    model.eval()
    loss_diff = grad_diff = grad_max = 0.0
    for batch in batches[:5]:
        inputs = inputs_of(batch)
        out = []
        for fn in fns:
            model.zero_grad()
            loss = fn(*inputs)
            loss.backward()
            out.append((float(loss.detach()), {k: p.grad.clone() for k, p in model.named_parameters()
                                               if p.grad is not None}))
        loss_diff = max(loss_diff, abs(out[0][0] - out[1][0]) / abs(out[0][0]))
        grad_diff = max(grad_diff, max(float((out[0][1][k] - out[1][1][k]).abs().max()) for k in out[0][1]))
        grad_max = max(grad_max, max(float(g.abs().max()) for g in out[0][1].values()))
    model.train()
    return loss_diff, grad_diff, grad_max


def timed(model, build, loss_fn, batches):
    """Mean seconds per batch: building the loss input, then forward + backward."""
    t_build = t_step = 0.0
    for batch in batches:
        t0 = time.perf_counter()
        inputs = build(batch)
        t1 = time.perf_counter()
        model.zero_grad()
        loss_fn(*inputs).backward()
        t_step += time.perf_counter() - t1
        t_build += t1 - t0
    return t_build / len(batches), t_step / len(batches)
