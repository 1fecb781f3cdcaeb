"""The double well: a one-dimensional non-convex loss with two minima (sde.escape's setting)."""

from __future__ import annotations

import numpy as np
from scipy import optimize

from sde.problems.base import Problem


class DoubleWell(Problem):
    """V(x) = x^2/2 - log cosh(a x), a > 1: two wells at x = +-x*, x* = a tanh(a x*).

    V'(x) = x - a tanh(a x) and V''(x) = 1 - a^2 sech^2(a x) is bounded, so the gradient is globally
    Lipschitz (the theorem's assumption). Constant gradient noise Sigma = sigma^2.
    """

    def __init__(self, a: float = 2.0, sigma: float = 1.0, x0: float = 0.5, name: str = "double-well"):
        if a <= 1:
            raise ValueError("double well needs a > 1")
        self.a, self.sigma, self.name = float(a), float(sigma), name
        self.dim = self.noise_dim = 1
        self.batch_size = 1
        self.theta0 = np.array([float(x0)])
        xstar = optimize.brentq(lambda x: x - a * np.tanh(a * x), 0.5, a + 1.0)
        self.well = xstar
        self.loss_min = float(self._v(np.array([xstar]))[0])

    def _v(self, x):
        ax = self.a * x
        # log cosh(y) = |y| + log1p(exp(-2|y|)) - log 2, stable for large |y|
        lc = np.abs(ax) + np.log1p(np.exp(-2.0 * np.abs(ax))) - np.log(2.0)
        return 0.5 * x * x - lc

    def loss(self, x):
        return self._v(x[:, 0])

    def grad(self, x, out):
        np.multiply(x, self.a, out=out)
        np.tanh(out, out=out)
        out *= -self.a
        out += x
        return out

    def hessian(self, x):
        return np.array([[1.0 - self.a ** 2 / np.cosh(self.a * float(x[0])) ** 2]])

    def hvp(self, x, v, out):
        np.multiply(x, self.a, out=out)
        np.cosh(out, out=out)
        np.reciprocal(out, out=out)
        out *= out
        out *= -self.a ** 2
        out += 1.0
        out *= v
        return out

    def noise(self, x, z, out):
        np.multiply(z, self.sigma, out=out)
        return out

    def covariance(self, x):
        return np.full((x.shape[0], 1, 1), self.sigma ** 2)

