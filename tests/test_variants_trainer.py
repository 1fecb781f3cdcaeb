"""PGPO's variants in the trainer (pgpo.modulation): smoothed I, the scale-free rule, per-sample / per-token weights.

Each against an independent float64 recomputation from the recorded student / teacher logits (tests/reference_sdpo),
SDPO bit for bit at zero sensitivity and exact resume of Ibar (on two gloo ranks: test_trainer_two_ranks.py)."""

import json
import os

import pytest
import torch

import reference_sdpo as ref
from trainer_helpers import make_trainer, params, recording_trainer_cls, reference_ema

pytestmark = pytest.mark.slow

K = 100                      # smoke preset: top-100 + tail support, JSD weight 0.5, IS clip 2
EXACT = ["training.distillation_is_clip=null"]      # TRL's SDPO never applies the IS weight (see test_trainer.py)


def _log(out_dir):
    with open(os.path.join(out_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f if json.loads(line)["kind"] == "train"]


@pytest.mark.parametrize("variant", [["pgpo.granularity=token"], ["pgpo.granularity=sample", "pgpo.normalize=false"],
                                     ["pgpo.beta=0.5", "pgpo.m_max=1", "pgpo.ema_steps=3"],
                                     ["pgpo.ema_steps=3", "pgpo.signal=smoothed"]],
                         ids=["token-alpha0", "sample-alpha0", "scale-free-mmax1", "smoothed-alpha0"])
def test_zero_sensitivity_variants_are_sdpo_bit_for_bit(tmp_path, variant, sdpo_reference_params):
    """Against TRL's SDPOTrainer with the same settings (conftest.sdpo_reference_params: alpha 0, no IS weight)."""
    a = make_trainer(tmp_path / "variant", ["pgpo.alpha=0", *EXACT, *variant])
    a.train()
    pa, pb = params(a), sdpo_reference_params
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    hist = a.pgpo_controller().modulator.history
    assert len(hist) == 2 and all(r.multiplier == 1.0 for r in hist)
    if "pgpo.ema_steps=3" in variant:     # Ibar is still kept (and logged), and the rule still runs, at zero sensitivity
        assert [r.info_ema for r in hist] == pytest.approx(reference_ema([r.info for r in hist], 3), rel=1e-12)
        assert all(rec["info_ema"] is not None for rec in _log(tmp_path / "variant"))


@pytest.mark.parametrize("rule", ["scale_free", "smoothed"])
def test_batch_variants_multiplier_from_recomputed_information(tmp_path, rule):
    """Three steps: I_k recomputed in float64 from the logits, Ibar_k by the Adam-form EMA (weight 1/2), and
    m_k = min(1 + 0.5 I_k / Ibar_k, 3) (scale-free) or min(1 + 2 Ibar_k, 3) (smoothed)."""
    ov = (["pgpo.alpha=0", "pgpo.beta=0.5"] if rule == "scale_free" else ["pgpo.alpha=2", "pgpo.signal=smoothed"])
    tr = make_trainer(tmp_path, [*ov, "pgpo.m_max=3", "pgpo.ema_steps=2"], max_steps=3,
                      trainer_cls=recording_trainer_cls())
    tr.train()
    hist = tr.pgpo_controller().modulator.history
    infos = [ref.information([r for r in tr.records if r["step"] == k], K) for k in range(3)]
    ibar = reference_ema(infos, 2)
    assert [r.info for r in hist] == pytest.approx(infos, rel=1e-5)
    assert [r.info_ema for r in hist] == pytest.approx(ibar, rel=1e-5)
    want = [min(1 + 0.5 * i / b, 3.0) if rule == "scale_free" else min(1 + 2 * b, 3.0) for i, b in zip(infos, ibar)]
    assert [r.multiplier for r in hist] == pytest.approx(want, rel=1e-5)
    assert hist[0].multiplier == pytest.approx(1.5 if rule == "scale_free" else min(1 + 2 * infos[0], 3.0))
    assert len({round(r.multiplier, 9) for r in hist}) == 3          # m moves with I (not a constant)
    log = _log(tmp_path)
    assert [rec["info_ema"] for rec in log] == pytest.approx(ibar, rel=1e-5)


def _weighted_loss(record, weights):
    """SDPO's per-sequence-normalised loss (JSD 0.5 on top-100 + tail, IS clip 2) with per-token weights."""
    s, t = ref.topk_tail_support(record["student_logits"], record["teacher_logits"], K)
    per_token = ref.generalised_jsd(s, t, 0.5)
    ratio = (ref.token_logprobs(record["student_logits"], record["completion_ids"])
             - record["rollout_logps"].double()).exp()
    per_token = per_token * ratio.clamp(max=2.0) * weights
    mask = record["loss_mask"].double()
    return float(((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean())


@pytest.mark.parametrize("granularity,normalize", [("token", True), ("sample", True), ("token", False)])
def test_loss_weights_equal_independent_recomputation(tmp_path, granularity, normalize):
    """The loss the trainer backpropagates equals SDPO's loss with weights recomputed here: I_t = KL(teacher ||
    student) per distilled token on the top-100 + tail support (float64), w = min(1 + 2 I, 3) per token or of the
    sample's token mean, divided when normalised by the loss's own average of w (the mean over sequences of their
    token-mean weight); and the step is not multiplied (m_k = 1)."""
    tr = make_trainer(tmp_path, ["pgpo.alpha=2", "pgpo.m_max=3", f"pgpo.granularity={granularity}",
                                 f"pgpo.normalize={str(normalize).lower()}"], max_steps=2,
                      trainer_cls=recording_trainer_cls())
    tr.train()
    assert all(r.multiplier == 1.0 for r in tr.pgpo_controller().modulator.history)
    spread = []
    for rec in tr.records:
        s, t = ref.topk_tail_support(rec["student_logits"], rec["teacher_logits"], K)
        info = ref.kl(t, s)                                               # (B, T)
        mask = rec["loss_mask"].double()
        if granularity == "sample":
            info = ((info * mask).sum(-1) / mask.sum(-1).clamp(min=1.0))[:, None].expand_as(mask)
        w = (1 + 2 * info.clamp(min=0)).clamp(max=3.0)
        if normalize:                       # the loss's own average: mean over sequences of their token-mean weight
            n = mask.sum(-1)
            w = w / ((w * mask).sum(-1) / n.clamp(min=1.0))[n > 0].mean()
        spread.append(float(w[mask.bool()].max() - w[mask.bool()].min()))
        assert float(rec["loss"]) == pytest.approx(_weighted_loss(rec, w), rel=1e-5)
        assert float(rec["loss"]) != pytest.approx(_weighted_loss(rec, torch.ones_like(w)), rel=1e-4)
    assert max(spread) > 0.02                                            # the weights really differ
    log = _log(tmp_path)
    assert all(1.0 < rec["weight_mean"] <= rec["weight_max"] <= 3.0 for rec in log)


def test_resume_restores_info_ema_exactly(tmp_path):
    ov = ["pgpo.alpha=0", "pgpo.beta=0.5", "pgpo.ema_steps=3"]
    full = make_trainer(tmp_path / "full", ov, max_steps=3)
    full.train()
    first = make_trainer(tmp_path / "split", ov, max_steps=2)
    first.train()
    with open(tmp_path / "split" / "checkpoint-2" / "pgpo_state.json") as f:
        saved = json.load(f)["controller"]["info_ema"]
    assert saved["steps"] == 2 and saved["value"] == first.pgpo_controller().ema.value
    resumed = make_trainer(tmp_path / "split", ov, max_steps=3)
    resumed.train(resume_from_checkpoint=str(tmp_path / "split" / "checkpoint-2"))
    pf, pr = params(full), params(resumed)
    assert all(torch.equal(pf[k], pr[k]) for k in pf)
    hf, hr = full.pgpo_controller().modulator.history, resumed.pgpo_controller().modulator.history
    assert [(r.multiplier, r.info, r.info_ema) for r in hf] == [(r.multiplier, r.info, r.info_ema) for r in hr]
    assert resumed.pgpo_controller().ema.steps == 3
    # a checkpoint written without the moving average cannot resume a run that needs one
    plain = make_trainer(tmp_path / "plain", ["pgpo.alpha=2"], max_steps=1)
    plain.train()
    again = make_trainer(tmp_path / "plain", ov, max_steps=2)
    with pytest.raises(ValueError, match="no moving average"):
        again.train(resume_from_checkpoint=str(tmp_path / "plain" / "checkpoint-1"))


def test_skipped_step_leaves_no_trace_in_info_ema(tmp_path):
    """A NaN gradient at step 2 skips the step: Ibar after step 3 is the moving average of I_1 and I_3 alone (two
    updates), as if step 2 had never been observed."""
    from transformers import TrainerCallback

    tr = make_trainer(tmp_path, ["pgpo.alpha=2", "pgpo.ema_steps=2", "pgpo.signal=smoothed"], max_steps=3)

    class InjectNaN(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kw):
            if state.global_step == 1:
                next(tr.model.parameters()).grad[0, 0] = float("nan")

    tr.add_callback(InjectNaN())
    tr.train()
    ctl = tr.pgpo_controller()
    hist = ctl.modulator.history
    assert ctl.guard.skipped == 1 and len(hist) == 2 and ctl.ema.steps == 2
    assert [r.info_ema for r in hist] == pytest.approx(reference_ema([r.info for r in hist], 2), rel=1e-12)
    assert hist[1].multiplier == pytest.approx(min(1 + 2 * hist[1].info_ema, 2.0), rel=1e-12)


def test_weights_are_detached_and_normalised_by_the_losss_own_average():
    """The weights carry no gradient (d loss / d per-token loss is the weight itself), and after normalisation the
    loss's own average of the weights is 1 even with completions of different lengths."""
    from pgpo.controller import PGPOController
    from pgpo.settings import PGPOSettings
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ctl = PGPOController(opt, PGPOSettings(alpha=2.0, m_max=3.0, granularity="token"))
    info = torch.tensor([[0.1, 0.9, 0.0, 0.0], [0.2, 0.3, 0.4, 0.5]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.float32)
    loss_tok = torch.ones(2, 4, requires_grad=True)
    out = ctl.weigh(loss_tok, info, mask)
    seq = (out * mask).sum(-1) / mask.sum(-1)
    assert float(seq.mean()) == pytest.approx(1.0, rel=1e-6)       # the constant loss is unchanged (float32)
    w = (1 + 2 * info.detach().double()).clamp(max=3.0)
    c = float((((w * mask).sum(-1) / mask.sum(-1))).mean())
    seq.mean().backward()
    assert info.grad is None
    want = (w / c) * mask / mask.sum(-1, keepdim=True) / 2
    assert torch.allclose(loss_tok.grad.double(), want, rtol=1e-6)
