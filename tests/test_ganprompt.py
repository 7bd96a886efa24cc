"""GANPrompt: loss terms against hand-computed values, every stage with tiny random models, checkpoint round trip."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax

from bench.data.candidates import draw
from bench.data.view import FitData
from bench.method import get_method
from methods.ganprompt.attributes import generate_attributes, top_attributes
from bench.lm.pooling import masked_mean
from bench.lm.prompts import Encoded
from methods.ganprompt.losses import Discriminator, adversarial_loss, distance, diversity_loss, js_divergence

from tests.tiny_lm import TINY_GAN as TINY, TINY_LM


def test_js_and_distance_match_hand_computation():
    a, b = np.array([0.3, -1.2, 2.0, 0.1]), np.array([1.0, 0.5, -0.4, 0.0])
    p, q = softmax(a / 0.5), softmax(b / 0.5)
    js = jensenshannon(p, q) ** 2  # scipy returns the square root, in nats by default
    ta, tb = torch.tensor(a), torch.tensor(b)
    assert js_divergence(ta, tb, 0.5).item() == pytest.approx(js, abs=1e-10)
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert distance(ta, tb, 0.7, 0.3, 0.5).item() == pytest.approx(0.7 * (1 - cos) + 0.3 * js, abs=1e-10)
    assert distance(ta, ta).item() == pytest.approx(0.0, abs=1e-12)


def test_diversity_loss_is_minus_mean_pairwise_distance():
    z = torch.randn(2, 3, 5, dtype=torch.float64)
    by_hand = np.mean([np.mean([distance(z[s, i], z[s, j]).item() for i, j in [(0, 1), (0, 2), (1, 2)]])
                       for s in range(2)])
    assert diversity_loss(z).item() == pytest.approx(-by_hand, abs=1e-10)
    flat = z.reshape(1, 6, 5)
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    assert diversity_loss(z, scope="batch").item() == pytest.approx(
        -np.mean([distance(flat[0, i], flat[0, j]).item() for i, j in pairs]), abs=1e-10)
    assert diversity_loss(z[:, :1]).item() == 0.0


def test_adversarial_modes_and_discriminator_shape():
    logits, classes = torch.tensor([[2.0, 0.1, -1.0], [0.0, 1.0, 0.5]]), torch.tensor([0, 2])
    ce = torch.nn.functional.cross_entropy(logits, classes).item()
    by_hand = -np.mean([np.log(softmax([2.0, 0.1, -1.0])[0]), np.log(softmax([0.0, 1.0, 0.5])[2])])
    assert ce == pytest.approx(by_hand, abs=1e-6)
    assert adversarial_loss(logits, classes, "cooperative").item() == pytest.approx(ce)
    assert adversarial_loss(logits, classes, "minimax").item() == pytest.approx(-ce)
    assert adversarial_loss(logits, classes, "off").item() == 0.0
    d = Discriminator(8, 6)
    assert sum(isinstance(m, torch.nn.Linear) for m in d.modules()) == 3 and d(torch.zeros(4, 8)).shape == (4, 6)
    states, mask = torch.ones(2, 3, 4), torch.tensor([[1, 1, 0], [1, 0, 0]])
    states[0, 2] = 100.0  # padding must not leak into the mean
    assert torch.equal(masked_mean(states, mask), torch.ones(2, 4))


def test_top_attributes_counts_and_breaks_ties_alphabetically():
    assert top_attributes(["b", "a", "c", "a", "b", "d"], 3) == ["a", "b", "c"]


@pytest.fixture(scope="module")
def data(tiny_ds):
    return FitData.from_dataset(tiny_ds, valid_candidates=draw(tiny_ds, "valid", 10, "uniform", 0), seed=0)


def test_attributes_are_cached_and_the_cache_never_loads_the_model(data, tmp_path, monkeypatch):
    from bench.lm.models import tiny_causal_lm
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path))  # a cache left by an earlier run would skip the first call
    hist = [data.train_seq(u)[-4:] for u in range(6)]
    calls = []
    def gen():
        calls.append(1)
        return tiny_causal_lm()
    from bench.lm.prompts import PromptStyle
    a1, r1 = generate_attributes(data, hist, gen, 3, PromptStyle(), cache_key={"t": "x"})
    a2, r2 = generate_attributes(data, hist, gen, 3, PromptStyle(), cache_key={"t": "x"})
    assert a1 == a2 and len(a1) == 3 and len(calls) == 1 and r2["cached"] and not r1["cached"]
    assert all(w.isalpha() and len(w) >= 3 for w in a1)


@pytest.mark.parametrize("name, extra", [
    ("ganprompt", {}),
    ("ganprompt", {"encoder_context": "split"}),
    ("ganprompt", {"backbone": "t5", "adversarial": "minimax", "attribute_generator": "tiny-mlm"}),
    ("ganprompt", {"backbone": "t5", "decoder_tuning": "full"}),
    ("ganprompt-plain", {}),
    ("ganprompt-noattr", {}),
    ("tallrec", {"epochs": 2}),
])
def test_stages_run_and_checkpoint_round_trip_gives_identical_scores(name, extra, data, tiny_ds, tmp_path):
    base = TINY_LM if name == "tallrec" else TINY
    m = get_method(name)(**{**base, **extra}).fit(data)
    info = m.fit_info_
    if name in ("ganprompt", "ganprompt-noattr"):
        assert set(info["timings_s"]) == {"stage0_attributes", "stage1_diversity_encoder", "stage2_finetune"}
        curve = info["stage2"]["curve"]
        assert curve["valid"][0]["step"] == 0 and len(curve["train_loss"]) == info["stage2"]["steps"]
    if name == "ganprompt":
        assert len(m.attributes_) == 3
        log = info["stage1"]["log"]
        assert log and all(k in log[0] for k in ("loss_llm", "loss_div", "loss_g", "mean_pair_distance"))
        if m.params.adversarial != "off":
            assert "d_acc" in log[0] and "loss_d" in log[0] and info["stage1"]["d_chance"] == 1 / 4
    if name == "ganprompt-noattr":
        assert m.attributes_ == [] and m.discriminator_ is None
        assert m.params.diversity_scope == "variants", "the no-attribute ablation changes one thing only"
    if name == "tallrec":
        assert m.template_.id == "tallrec-0" and info["finetune"]["steps"] == 2 * 2
        assert [e["step"] for e in info["finetune"]["curve"]["valid"]] == [0, 2, 4]
    test = draw(tiny_ds, "test", 10, "uniform", 0)
    scores = m.score(test.users[:4], test.items[:4])
    assert scores.shape == (4, 11) and np.isfinite(scores).all() and scores.std() > 0
    m.save(tmp_path)
    assert (tmp_path / "trained.safetensors").is_file()
    again = type(m).load(tmp_path, data).score(test.users[:4], test.items[:4])
    np.testing.assert_array_equal(again, scores)


def test_encoder_is_trained_in_stage1_then_frozen_without_dropout_in_stage2(data):
    m = get_method("ganprompt")(**{**TINY, "stage1_lr": 1e-2})
    from bench.lm.models import tiny_encoder
    before = {k: v.clone() for k, v in tiny_encoder().model.state_dict().items()}
    m.fit(data)
    after = m.backbone_.encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "stage 1 must update the encoder"
    assert not any(p.requires_grad for p in m.backbone_.encoder.parameters()), "stage 2 freezes the encoder"
    m.backbone_.train()  # what the fine-tuning loop does each step
    assert not m.backbone_.encoder.training, "a frozen encoder keeps dropout off"


def test_t5_stage1_leaves_the_tied_embedding_alone_and_full_tuning_trains_an_untied_head(data):
    m = get_method("ganprompt")(**{**TINY, "backbone": "t5", "decoder_tuning": "full", "stage1_lr": 1e-2})
    m.fit_diversity_encoder(data)
    t5 = m.backbone_.t5
    assert not t5.get_input_embeddings().weight.requires_grad, "shared embedding (tied to lm_head) not trained in stage 1"
    shared = t5.get_input_embeddings().weight.detach().clone()
    m._start_stage2()
    head = t5.get_output_embeddings().weight
    assert head.requires_grad and head is not t5.get_input_embeddings().weight
    assert not t5.get_input_embeddings().weight.requires_grad
    assert torch.equal(t5.get_input_embeddings().weight, shared)


def test_stage1_micro_batches_give_the_same_gradient_as_one_batch(data):
    """L_LLM in micro-batches (gradient accumulation) equals the whole batch at once."""
    grads = []
    for max_tokens in (100_000, 64):
        m = get_method("ganprompt")(**{**TINY, "max_tokens": max_tokens, "stage1_batch": 4, "adversarial": "off",
                                       "lambda_div": 0.0, "stage1_epochs": 0})
        m.fit_diversity_encoder(data)
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        batch = m._train_groups[:4]
        m.backbone_.eval()  # no dropout: the two computations must see the same network
        m.backbone_.zero_grad()
        k1 = 1 + len(m.attributes_)
        n_rows = sum(len(g.items) for g in batch) * k1
        micro = 4 if max_tokens > 1000 else 1
        for s in range(0, 4, micro):
            _, loss = m._stage1_loss(batch[s:s + micro], k1, rng)
            (loss / n_rows).backward()
        grads.append(m.backbone_.proj[0].weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def test_attribute_cache_key_follows_seed_and_histories(tiny_ds, monkeypatch, tmp_path):
    monkeypatch.setenv("LLMREC_CACHE", str(tmp_path))
    for seed in (0, 1, 0):
        m = get_method("ganprompt")(**{**TINY, "stage1_epochs": 0})
        m.fit_diversity_encoder(FitData.from_dataset(tiny_ds, seed=seed))
    files = list((tmp_path / "attributes").glob("*.json"))
    assert len(files) == 2, "two seeds sample two sets of histories: two cache entries (the third run reuses one)"


def test_ablations_fix_their_setting():
    from bench.errors import MethodError
    assert get_method("ganprompt-nodiv")().params.lambda_div == 0.0
    assert get_method("ganprompt-nogan")().params.adversarial == "off"
    with pytest.raises(MethodError, match="adversarial is fixed by this configuration"):
        get_method("ganprompt-nogan")(adversarial="minimax")


@pytest.mark.parametrize("name", ["ganprompt-plain", "ganprompt-noattr", "tallrec", "pop"])
def test_diversity_analysis_refuses_methods_without_variants_before_any_work(name):
    from bench.errors import MethodError
    from methods.ganprompt.diversity import run
    with pytest.raises(MethodError, match="diversity analysis needs GANPrompt"):
        run(None, get_method(name)(), "unused")


def test_diversity_analysis_writes_png_and_table(data, tmp_path):
    from methods.ganprompt.diversity import run
    m = get_method("ganprompt")(**TINY)
    out = run(data, m, tmp_path, n_eval=8)
    assert (tmp_path / "diversity-tsne.png").stat().st_size > 1000
    for side in ("before", "after"):
        st = out["stats"][side]
        assert -1 <= st["silhouette_by_class"] <= 1 and st["mean_pairwise_cosine_distance"] >= 0
        assert st["mean_js_divergence"] >= 0
    assert out["stats"]["before"] != out["stats"]["after"]
    md = (tmp_path / "diversity.md").read_text()
    assert "silhouette_by_class" in md
    # RQ2 reads the spread beside D's accuracy curve: every stage-1 step's accuracy is in the report and the json
    import json
    info = json.loads((tmp_path / "diversity.json").read_text())
    acc = [e["d_acc"] for e in info["stage1"]["log"]]
    assert acc and "Discriminator accuracy per stage-1 step" in md
    assert ", ".join(f"{a:.3f}" for a in acc) in md
    assert set(info["environment"]["git"]) == {"commit", "dirty", "diff_sha256"}


def test_diversity_analysis_refuses_to_publish_from_a_dirty_tree(monkeypatch, tmp_path):
    import bench.api as api
    import bench.results as results
    from bench.errors import BenchError
    monkeypatch.setattr(results, "git_state", lambda: {"commit": "abc", "dirty": True, "diff_sha256": "x"})
    with pytest.raises(BenchError, match="refusing to publish"):
        api.diversity("ml-100k", out=results.published_root())


def test_alignment_targets_are_the_lm_embeddings_of_the_same_characters(data):
    """Tiny encoder and LM share MiniLM's tokenizer, so every non-special encoder token's target is exactly the LM's
    embedding of that token id, and [CLS]/[SEP] get the separator's embedding."""
    m = get_method("ganprompt")(**{**TINY, "stage1_epochs": 0})
    m.fit_diversity_encoder(data)
    bb = m.backbone_
    text = "The user bought shampoo, conditioner"
    x, y = bb.alignment_pairs([(text, True), (" lipstick red", False)])
    ids = bb.enc_tok(text).input_ids + bb.enc_tok(" lipstick red", add_special_tokens=False).input_ids
    table = bb.lm.get_input_embeddings().weight.detach().float()
    newline = table[bb.separator_id()]
    assert x.shape == (len(ids), bb.hidden_size) and y.shape == (len(ids), table.shape[1])
    special = set(bb.enc_tok.all_special_ids)
    for row, i in enumerate(ids):
        torch.testing.assert_close(y[row], newline if i in special else table[i])


@pytest.mark.parametrize("states", ["last", "input+last"])
def test_projection_alignment_learns_and_a_frozen_projection_gives_a_cached_readout(states, data):
    m = get_method("ganprompt")(**{**TINY, "encoder_states": states, "align_steps": 150, "align_lr": 1e-2, "align_titles": 50,
                                   "stage2_projection": False, "lora_targets": "lm_head", "lora_layers": 0})
    m.fit(data)
    rec = m.fit_info_["alignment"]
    assert rec["after"]["mse"] < 0.8 * rec["before"]["mse"]
    assert rec["after"]["nearest_token_acc"] > rec["before"]["nearest_token_acc"] + 0.1
    assert "projection_alignment" in m.fit_info_["timings_s"]
    assert not any(q.requires_grad for q in m.backbone_.proj.parameters()), "stage 2 leaves the projection alone"
    assert m.fit_info_["stage2"]["cached_states"], "only the output head trains: the body runs once per prompt"
    assert m.backbone_.proj[0].in_features == (2 if states == "input+last" else 1) * m.backbone_.hidden_size
    assert m.discriminator_.net[0].in_features == m.backbone_.hidden_size, "z is the last layer either way"


def test_diversity_report_with_overrides_gets_a_folder_of_its_own(monkeypatch, tmp_path):
    import bench.api as api
    import methods.ganprompt.diversity as div
    from bench.results import params_hash
    monkeypatch.setattr(div, "run", lambda data, m, folder, **kw: {"params": m.get_params()})
    plain = api.diversity("ml-100k", out=tmp_path)
    changed = api.diversity("ml-100k", out=tmp_path, overrides=["ganprompt.d_lr=0.001"])
    assert plain["folder"].name == "ganprompt-quick-seed0"   # the published report's place is unchanged
    assert changed["folder"].name == f"ganprompt-quick-{params_hash(changed['params'])}-seed0"
    assert changed["params"]["d_lr"] == 0.001


def _record_encoder_batches(bb, monkeypatch) -> list[tuple[int, int]]:
    """(segments, longest segment) of every encoder batch the backbone runs from now on."""
    batches, real = [], bb.encode_segments
    monkeypatch.setattr(bb, "encode_segments", lambda s: (batches.append((len(s), max(len(e) for e in s))),
                                                           real(s))[1])
    return batches


def test_scoring_embeds_in_token_bounded_batches_with_the_same_soft_tokens(data, monkeypatch):
    """Without gradients the encoder reads segments in length-sorted batches of at most EMBED_TOKENS padded tokens
    (one batch of a whole scoring chunk took 17.7 GB); each segment's soft tokens equal the one-batch computation."""
    import methods.ganprompt.backbone as backbone
    m = get_method("ganprompt")(**{**TINY, "stage1_epochs": 0})
    m.fit_diversity_encoder(data)
    bb = m.backbone_.eval()
    tok = bb.enc_tok
    texts = ["The user bought shampoo, conditioner, a comb and a long list of other things " * 3, "", " lipstick",
             " red nail polish", " a brush", "", " moisturiser for dry skin"]
    segs = [(Encoded(tok(t, add_special_tokens=k == 0).input_ids if t else []), 0, k) for k, t in enumerate(texts)]
    with torch.enable_grad():
        whole = [x.detach() for x in bb.embed(segs)]
    batches = _record_encoder_batches(bb, monkeypatch)
    monkeypatch.setattr(backbone, "EMBED_TOKENS", 12)
    with torch.no_grad():
        parts = bb.embed(segs)
    padded = [(n, n * longest) for n, longest in batches]
    assert len(padded) > 1 and all(p <= 12 or n == 1 for n, p in padded), padded
    assert sum(p for _, p in padded) < 5 * len(segs[0][0]), "sorted batches pad far less than one batch"
    for a, b, (e, _, _) in zip(whole, parts, segs):
        assert a.shape == b.shape == (len(e), bb.lm.config.hidden_size)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_t5_scoring_encodes_in_token_bounded_batches_of_whole_rows(data, tiny_ds, monkeypatch):
    """The T5 engine's encoder runs inside margins(), once per token-bounded batch of rows (a row is one user's
    prompts), not over a whole scoring chunk of users at once as the causal backbone's embed once did."""
    m = get_method("ganprompt")(**{**TINY, "backbone": "t5", "stage1_epochs": 0, "max_tokens": 64}).fit(data)
    calls = _record_encoder_batches(m.backbone_, monkeypatch)
    test = draw(tiny_ds, "test", 10, "uniform", 0)
    scores = m.score(test.users[:6], test.items[:6])
    assert np.isfinite(scores).all() and scores.shape == (6, 11)
    assert len(calls) >= 6, f"six users' rows each exceed 64 tokens, so at least six encoder batches: {calls}"
    assert all(n <= 11 for n, _ in calls), f"no batch holds more than one user's 11 prompts: {calls}"
