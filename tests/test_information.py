import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pgpo.information import (InfoStats, add_tail_bucket, divergence, information_from_logits,
                              information_from_topk, normalise_support, topk_support)


def _logits(b=3, t=11, v=50, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(b, t, v, generator=g, dtype=torch.float64),
            scale * torch.randn(b, t, v, generator=g, dtype=torch.float64))


def _mask(b=3, t=11, seed=1):
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(b, t, generator=g) > 0.3).float()
    m[0] = 0.0          # a sample with no distilled token
    m[1, :4] = 1.0
    return m


def test_kl_estimators_match_direct_formulas():
    s, t = _logits()
    mask = _mask()
    ls, lt = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
    kl_ts = (lt.exp() * (lt - ls)).sum(-1)
    kl_st = (ls.exp() * (ls - lt)).sum(-1)
    for est, ref in (("kl_teacher_student", kl_ts), ("kl_student_teacher", kl_st)):
        got = information_from_logits(s, t, mask, estimator=est)
        assert got.count == mask.sum().item()
        assert got.value == pytest.approx(((ref * mask).sum() / mask.sum()).item(), rel=1e-6)
    # KL(T||S) via torch.distributions as an independent implementation
    d = torch.distributions
    ref2 = d.kl_divergence(d.Categorical(logits=t), d.Categorical(logits=s))
    np.testing.assert_allclose(divergence(ls, lt).numpy(), ref2.numpy(), rtol=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_sdpo_divergence_is_trls(alpha):
    trl_loss = pytest.importorskip("trl.experimental.sdpo.loss_utils")
    s, t = _logits(seed=3)
    ls, lt = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
    ours = divergence(ls, lt, "sdpo_divergence", alpha)
    theirs = trl_loss.compute_divergence(ls, lt, alpha)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert torch.equal(add_tail_bucket(ls[..., :5]), trl_loss.add_tail_bucket(ls[..., :5]))


@pytest.mark.parametrize("chunk", [1, 4, 7, 11, 1000])
def test_chunking_does_not_change_the_result(chunk):
    s, t = _logits()
    mask = _mask()
    ref = information_from_logits(s, t, mask, chunk_size=10_000)
    got = information_from_logits(s, t, mask, chunk_size=chunk)
    assert got == ref


def test_token_and_sample_means():
    # per-token KL values can be read off with a one-token mask; build a case by hand
    s, t = _logits(b=2, t=3, v=5)
    per = divergence(torch.log_softmax(s.float(), -1), torch.log_softmax(t.float(), -1)).double()
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    tok = information_from_logits(s, t, mask, reduction="token_mean")
    smp = information_from_logits(s, t, mask, reduction="sample_mean")
    assert tok.count == 3 and smp.count == 2
    assert tok.value == pytest.approx(((per[0, 0] + per[0, 1] + per[1, 0]) / 3).item(), rel=1e-6)
    assert smp.value == pytest.approx((((per[0, 0] + per[0, 1]) / 2 + per[1, 0]) / 2).item(), rel=1e-6)


def test_topk_with_full_support_equals_full_vocabulary():
    s, t = _logits(v=20)
    mask = _mask()
    ls, lt = topk_support(s, t, k=20)
    full = information_from_logits(s, t, mask)
    top = information_from_topk(ls, lt, mask, add_tail=False)
    assert top.value == pytest.approx(full.value, rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(0, 10_000), st.floats(0.1, 4.0),
       st.sampled_from(["kl_teacher_student", "kl_student_teacher", "sdpo_divergence"]))
@example(30, 0, 3.0, "kl_teacher_student")            # a student tail of 1.5e-8 (see the docstring)
def test_topk_tail_never_exceeds_full_divergence(k, seed, scale, est):
    """Merging the tail into one bucket is a coarse-graining: f-divergences can only shrink. Checked per position on
    the estimator's own formulas (normalise_support, divergence) in float64: information_from_topk runs them in
    float32, where 1 - sum(top-k) cannot resolve a tail mass near 1e-7 (found at k = 30 of 31, scale 3: a student tail
    of 1.5e-8 came out 4e-5 above the full divergence). TRL's bucket clamps a tail mass at 1e-7, which raises a
    divergence by at most 1e-7 (1 + max |log q - log p|): the tolerance."""
    s, t = _logits(b=2, t=4, v=31, seed=seed, scale=scale)
    ls, lt = topk_support(s, t, k=k)
    top = divergence(*normalise_support(ls, lt, add_tail=True), est)
    full = divergence(torch.log_softmax(s, -1), torch.log_softmax(t, -1), est)
    clamp = 1e-7 * (1 + (torch.log_softmax(s, -1) - torch.log_softmax(t, -1)).abs().amax(-1))
    assert top.dtype == full.dtype == torch.float64
    assert bool((top <= full + clamp + 1e-12).all()), (top - full).max()
    mask = torch.ones(2, 4)
    assert information_from_topk(ls, lt, mask, add_tail=True, estimator=est).ok      # the float32 path runs


def test_masked_out_nonfinite_values_are_ignored_and_masked_in_ones_flagged():
    s, t = _logits()
    mask = _mask()
    s2 = s.clone()
    s2[0] = float("nan")                       # sample 0 is fully masked out (padding)
    clean = information_from_logits(s2, t, mask)
    assert clean.ok and clean == information_from_logits(s, t, mask)
    s2[1, 0] = float("nan")                    # a distilled token
    s2[1, 1, 3] = float("inf")
    bad = information_from_logits(s2, t, mask)
    assert not bad.ok and bad.nonfinite == 2
    assert math.isfinite(bad.total) and bad.count == mask.sum().item() - 2


def test_empty_mask_is_not_ok_and_not_nan_in_sums():
    s, t = _logits()
    st_ = information_from_logits(s, t, torch.zeros(3, 11))
    assert st_.count == 0 and st_.total == 0.0 and not st_.ok and math.isnan(st_.value)


def test_no_autograd_graph_and_bf16_inputs():
    s, t = _logits()
    s = s.float().requires_grad_(True)
    out = information_from_logits(s.to(torch.bfloat16), t.to(torch.bfloat16), _mask())
    assert isinstance(out.total, float) and out.ok


@pytest.mark.parametrize("kw, field", [(dict(estimator="js"), "estimator"), (dict(reduction="max"), "reduction"),
                                       (dict(estimator="sdpo_divergence", jsd_weight=1.5), "jsd_weight"),
                                       (dict(chunk_size=0), "chunk_size")])
def test_invalid_options_name_the_field(kw, field):
    s, t = _logits()
    with pytest.raises(ValueError, match=field):
        information_from_logits(s, t, _mask(), **kw)


def test_shape_mismatch_is_reported():
    s, t = _logits()
    with pytest.raises(ValueError, match="differ in shape"):
        information_from_logits(s, t[:, :5], _mask())
    with pytest.raises(ValueError, match="mask shape"):
        information_from_logits(s, t, torch.ones(3, 5))


def test_stats_tensor_round_trip_and_merge():
    a, b = InfoStats(1.5, 3, 0), InfoStats(2.0, 1, 1)
    m = a.merge(b)
    assert m == InfoStats(3.5, 4, 1) and not m.ok
    assert InfoStats.from_tensor(m.as_tensor()) == m


_MEM_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    from pgpo.information import information_from_logits

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

    torch.manual_seed(0)
    T, V, chunk = 2048, 32768, int(sys.argv[1])
    s = torch.randn(1, T, V); t = torch.randn(1, T, V); mask = torch.ones(1, T)
    information_from_logits(s[:, :8], t[:, :8], mask[:, :8])          # warm up the allocator/kernels
    with open("/proc/self/clear_refs", "w") as f:                      # reset the peak RSS (VmHWM) to now, so
        f.write("5")                                                   # earlier transients cannot mask the op
    base = status("VmRSS")
    out = information_from_logits(s, t, mask, chunk_size=chunk)
    print(json.dumps({"extra_kib": status("VmHWM") - base, "value": out.value}))
""")


def _extra_memory(chunk):
    res = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, str(chunk)], capture_output=True, text=True,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_chunked_peak_memory_is_bounded_on_32k_vocab_2k_tokens():
    """Extra peak RSS of I on a (1, 2048, 32768) pair, measured from a reset high-water mark: one full fp32
    (T, V) tensor is 256 MiB, one 64-token chunk 8 MiB. Chunked, the extra memory is a few chunk buffers
    (measured here: ~64 MiB); in one piece it is several full tensors (measured: ~1.3 GiB)."""
    full_tensor_kib = 2048 * 32768 * 4 // 1024
    chunk_kib = 64 * 32768 * 4 // 1024
    chunked = _extra_memory(64)
    unchunked = _extra_memory(2048)
    assert chunked["value"] == pytest.approx(unchunked["value"], rel=1e-6)
    assert chunked["extra_kib"] < 16 * chunk_kib, chunked                 # < 128 MiB: O(chunk x vocab)
    assert unchunked["extra_kib"] > 2 * full_tensor_kib, unchunked      # > 512 MiB: O(length x vocab)
    assert unchunked["extra_kib"] > 8 * chunked["extra_kib"]
