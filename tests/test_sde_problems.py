"""Each toy problem's gradient, noise factor and information signal are what they claim to be."""

import numpy as np
import pytest

from sde.problems import PROBLEMS, DoubleWell, LeastSquares, TeacherStudentSoftmax, get_problem

NAMES = list(PROBLEMS)


def _points(p, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return p.theta0 + rng.standard_normal((n, p.dim))


@pytest.mark.parametrize("name", NAMES)
def test_noise_factor_reproduces_covariance_exactly(name):
    p = get_problem(name)
    x = _points(p)
    basis = np.eye(p.noise_dim)
    cols = [p.noise(x, np.tile(basis[i], (x.shape[0], 1)), np.empty_like(x)) for i in range(p.noise_dim)]
    S = np.stack(cols, axis=2)                              # (n, d, m): S(x) column by column
    np.testing.assert_allclose(S @ S.transpose(0, 2, 1), p.covariance(x), atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
    p = get_problem(name)
    x = _points(p, 3)
    g = p.grad(x, np.empty_like(x))
    eps = 1e-6
    for j in range(p.dim):
        e = np.zeros(p.dim)
        e[j] = eps
        fd = (p.loss(x + e) - p.loss(x - e)) / (2 * eps)
        np.testing.assert_allclose(g[:, j], fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_information_is_excess_loss_and_vanishes_at_the_minimum(name):
    p = get_problem(name)
    x = _points(p)
    info = p.info(x, np.empty(x.shape[0]))
    assert (info >= -1e-12).all()
    np.testing.assert_allclose(info, p.loss(x) - p.loss_min)


def test_softmax_information_is_exact_kl():
    p = TeacherStudentSoftmax()
    x = _points(p)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    kl = (p.q * (np.log(p.q) - logp)).sum(axis=1)
    np.testing.assert_allclose(p.info(x, np.empty(len(x))), kl, atol=1e-14)
    # covariance (diag q - q q^T)/B is singular: the all-ones direction carries no noise
    assert abs(np.linalg.det(p.noise_cov)) < 1e-15
    np.testing.assert_allclose(p.noise_cov @ np.ones(p.dim), 0.0, atol=1e-15)


def test_softmax_is_stable_for_huge_logits():
    p = TeacherStudentSoftmax()
    x = np.array([[1000.0, 0.0, -1000.0, 5.0]])
    g = p.grad(x, np.empty_like(x))
    assert np.isfinite(g).all() and np.isfinite(p.loss(x)).all()


def test_double_well_minima_and_lipschitz_gradient():
    p = DoubleWell(a=2.0)
    xs = np.array([[p.well], [-p.well]])
    np.testing.assert_allclose(p.grad(xs, np.empty_like(xs)), 0.0, atol=1e-12)
    grid = np.linspace(-50, 50, 20001)[:, None]
    g = p.grad(grid, np.empty_like(grid))[:, 0]
    lip = np.abs(np.diff(g)).max() / (grid[1, 0] - grid[0, 0])
    assert lip <= p.a ** 2 - 1 + 1e-6          # |V''| <= max(1, a^2 - 1)
    with pytest.raises(ValueError):
        DoubleWell(a=0.9)


@pytest.mark.parametrize("cls", [TeacherStudentSoftmax, LeastSquares])
def test_minibatch_gradient_is_unbiased_with_covariance_sigma(cls):
    """Sampling with replacement: E grad_B = grad L and Cov grad_B = Sigma(x), within 99.9 % intervals."""
    p = cls()
    x = _points(p, 1, seed=3)
    n = 200_000
    rng = np.random.default_rng(1)
    idx = rng.integers(0, p.n_data, size=(n, p.batch_size))
    g = p.batch_grad(np.repeat(x, n, axis=0), idx, np.empty((n, p.dim)))
    full = p.grad(x, np.empty_like(x))[0]
    sigma = p.covariance(x)[0]
    se = np.sqrt(np.diag(sigma) / n)
    assert (np.abs(g.mean(axis=0) - full) <= 3.3 * se + 1e-15).all()
    emp = np.cov(g.T)
    # var of a sample covariance entry ~ (s_ii s_jj + s_ij^2)/n for near-Gaussian data; allow 5 sd
    tol = 5 * np.sqrt((np.outer(np.diag(sigma), np.diag(sigma)) + sigma ** 2) * 3 / n)
    assert (np.abs(emp - sigma) <= tol + 1e-15).all()


@pytest.mark.parametrize("cls", [TeacherStudentSoftmax, LeastSquares])
def test_batch_information_is_unbiased(cls):
    p = cls()
    x = _points(p, 1, seed=4)
    n = 100_000
    rng = np.random.default_rng(2)
    idx = rng.integers(0, p.n_data, size=(n, p.batch_size))
    ib = p.batch_info(np.repeat(x, n, axis=0), idx, np.empty(n))
    exact = p.info(x, np.empty(1))[0]
    assert abs(ib.mean() - exact) <= 4 * ib.std() / np.sqrt(n)


def test_unknown_problem_has_clear_error():
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        get_problem("nope")
