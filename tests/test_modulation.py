"""pgpo.modulation: the moving average Ibar and the batch-level step rules (torch-free)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgpo.modulation import InfoEMA, StepRule, relative_info
from pgpo.multiplier import Multiplier

infos = st.lists(st.floats(0.0, 50.0, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(infos, st.floats(1.0, 500.0))
def test_ema_equals_the_bias_corrected_adam_form(values, n):
    """Ibar_k = S_k / (1 - (1 - w)^k) with S_k = (1 - w) S_{k-1} + w I_k, S_0 = 0, computed here independently."""
    w = 1.0 / n
    ema, s = InfoEMA(w), 0.0
    for k, v in enumerate(values, start=1):
        s = (1 - w) * s + w * v
        want = s / (1 - (1 - w) ** k) if w < 1 else v
        assert ema.update(v) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert ema.steps == len(values)


@settings(max_examples=100, deadline=None)
@given(infos, st.floats(1.0, 100.0))
def test_ema_is_a_weighted_mean_within_the_range_of_its_inputs(values, n):
    ema = InfoEMA(1.0 / n)
    for k, v in enumerate(values, start=1):
        ibar = ema.update(v)
        lo, hi = min(values[:k]), max(values[:k])
        assert lo - 1e-9 * (1 + hi) <= ibar <= hi + 1e-9 * (1 + hi)


def test_ema_first_value_and_unit_weight():
    e = InfoEMA(0.1)
    assert e.update(3.0) == 3.0                    # bias correction: Ibar_1 = I_1
    one = InfoEMA(1.0)
    assert [one.update(v) for v in (1.0, 5.0, 2.0)] == [1.0, 5.0, 2.0]


def test_ema_array_path_matches_scalar_path():
    rng = np.random.default_rng(0)
    vals = rng.uniform(0, 2, size=(30, 5))
    arr, scal = InfoEMA(0.2), [InfoEMA(0.2) for _ in range(5)]
    for row in vals:
        a = arr.update(row)
        assert np.array_equal(a, [e.update(float(v)) for e, v in zip(scal, row)])


def test_ema_state_round_trip_and_refusals():
    e = InfoEMA(0.25)
    for v in (1.0, 2.0, 0.5):
        e.update(v)
    f = InfoEMA(0.25)
    f.load_state_dict(e.state_dict())
    assert (f.steps, f.value) == (e.steps, e.value) and f.update(4.0) == e.update(4.0)
    with pytest.raises(ValueError, match="weight"):
        InfoEMA(0.5).load_state_dict(e.state_dict())
    with pytest.raises(ValueError, match="finite"):
        e.update(float("nan"))
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            InfoEMA(bad)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 10), st.floats(1e-6, 10), st.floats(0, 5), st.floats(1, 4))
def test_scale_free_rule_is_clipped_linear_in_the_relative_information(info, ibar, beta, m_max):
    rule = StepRule(Multiplier(beta, m_max), scale_free=True)
    assert rule(info, ibar) == pytest.approx(min(1 + beta * info / ibar, m_max), rel=1e-12)
    # dimensionless: rescaling I and Ibar together leaves m unchanged
    assert rule(7.3 * info, 7.3 * ibar) == pytest.approx(rule(info, ibar), rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 10), st.floats(0, 10), st.floats(0, 5), st.floats(1, 4))
def test_smoothed_rule_ignores_the_raw_information(info, ibar, alpha, m_max):
    rule = StepRule(Multiplier(alpha, m_max), signal="smoothed")
    assert rule(info, ibar) == min(1 + alpha * ibar, m_max)
    assert StepRule(Multiplier(alpha, m_max))(info) == Multiplier(alpha, m_max)(info)


def test_relative_info_and_rule_refusals():
    assert relative_info(2.0, 0.0) == 0.0 and relative_info(2.0, 4.0) == 0.5
    assert np.array_equal(relative_info(np.array([1.0, 2.0]), np.array([0.0, 4.0])), [0.0, 0.5])
    with pytest.raises(ValueError, match="constant"):
        StepRule(Multiplier(1.0, 2.0), signal="smoothed", scale_free=True)
    with pytest.raises(ValueError, match="needs Ibar"):
        StepRule(Multiplier(1.0, 2.0), scale_free=True)(1.0)
    with pytest.raises(ValueError, match="signal"):
        StepRule(Multiplier(1.0, 2.0), signal="ema")
    assert math.isclose(StepRule(Multiplier(0.5, 3.0), scale_free=True)(1.0, 1.0), 1.5)
