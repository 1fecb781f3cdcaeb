import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgpo.multiplier import Multiplier, alpha_grid_for_span, multiplier, validate

alphas = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
caps = st.floats(min_value=1.0, max_value=20.0, allow_nan=False)
infos = st.floats(min_value=-5.0, max_value=1e3, allow_nan=False)
shapes = st.sampled_from(["clipped_linear", "smooth"])


@given(alphas, caps, infos, shapes)
def test_bounded_between_one_and_cap(alpha, m_max, info, shape):
    m = multiplier(info, alpha, m_max, shape)
    assert 1.0 <= m <= m_max * (1 + 1e-12)


@given(alphas, caps, infos, infos, shapes)
def test_monotone_and_lipschitz(alpha, m_max, i1, i2, shape):
    f = Multiplier(alpha, m_max, shape)
    lo, hi = sorted((i1, i2))
    assert f(lo) <= f(hi) + 1e-12
    assert abs(f(hi) - f(lo)) <= alpha * (hi - lo) * (1 + 1e-9) + 1e-12


@settings(max_examples=50)
@given(alphas, caps, shapes, st.lists(infos, min_size=1, max_size=30))
def test_array_equals_scalar(alpha, m_max, shape, values):
    f = Multiplier(alpha, m_max, shape)
    arr = f(np.array(values))
    assert arr.shape == (len(values),)
    np.testing.assert_allclose(arr, [f(v) for v in values], rtol=1e-14, atol=1e-14)
    out = np.empty(len(values))
    assert f(np.array(values), out=out) is out


def test_paper_rule_exact_values():
    f = Multiplier(alpha=2.0, m_max=3.0)
    assert f(0.0) == 1.0
    assert f(0.5) == 2.0
    assert f(1.0) == 3.0
    assert f(10.0) == 3.0
    assert f(-1.0) == 1.0          # negative estimate -> baseline step
    g = Multiplier(alpha=2.0, m_max=3.0, shape="smooth")
    assert g(0.5) == pytest.approx(1 + 2 * math.tanh(0.5))
    assert Multiplier(0.0, 5.0)(7.0) == 1.0 and Multiplier(3.0, 1.0)(7.0) == 1.0


def test_smooth_slope_at_zero_is_alpha():
    g = Multiplier(alpha=1.7, m_max=2.5, shape="smooth")
    eps = 1e-7
    assert (g(eps) - g(0.0)) / eps == pytest.approx(1.7, rel=1e-5)


@pytest.mark.parametrize("kwargs, field", [
    (dict(alpha=-0.1, m_max=2.0), "alpha"),
    (dict(alpha=1.0, m_max=0.5), "m_max"),
    (dict(alpha=float("nan"), m_max=2.0), "alpha"),
    (dict(alpha=1.0, m_max=float("inf")), "m_max"),
    (dict(alpha="1", m_max=2.0), "alpha"),
    (dict(alpha=1.0, m_max=2.0, shape="cubic"), "shape"),
])
def test_invalid_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        validate(**kwargs) if "shape" in kwargs else Multiplier(**kwargs)


def test_nan_information_is_rejected_not_propagated():
    f = Multiplier(1.0, 2.0)
    with pytest.raises(ValueError, match="NaN"):
        f(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        f(np.array([0.1, np.nan]))


def test_alpha_grid_spans_the_range():
    grid = alpha_grid_for_span(0.2, 3.0, fractions=(0.25, 1.0, 4.0))
    f = [Multiplier(a, 3.0) for a in grid]
    assert f[1](0.2) == pytest.approx(3.0)           # f = 1: the typical I reaches the cap
    assert f[0](0.2) == pytest.approx(1.5)           # f = 1/4: a quarter of the way
    assert f[2](0.05) == pytest.approx(3.0)          # f = 4: capped already at I/4
    with pytest.raises(ValueError):
        alpha_grid_for_span(0.0, 3.0)


def test_light_imports_do_not_pull_torch():
    code = ("import sys, pgpo.multiplier, sde, sde.simulate, sde.weak_error, sde.verify, sde.cli;"
            "bad = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
