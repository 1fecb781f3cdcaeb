"""Quadratic losses L(x) = x^T A x / 2 with a constant gradient-noise covariance: the linear case with closed forms."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sde.problems.base import Problem, sym_sqrt_factor


@dataclass
class Quadratic(Problem):
    """L(x) = 1/2 x^T A x with constant gradient covariance Sigma: the linear case with closed forms.

    A = R diag(curvatures) R^T with R an orthogonal `rotation` (None: A is diagonal), Sigma = `noise_cov` (any
    symmetric PSD matrix). Discrete SGD (and PGPO with a constant multiplier) is then a linear recursion and every
    SDE of the family an Ornstein-Uhlenbeck process, so their moments are known exactly (see sde.exact, which works
    in A's eigenbasis).
    """

    curvatures: np.ndarray
    noise_cov: np.ndarray
    theta0: np.ndarray
    name: str = "quadratic"
    rotation: np.ndarray | None = None
    batch_size: int = 1
    loss_min: float = 0.0
    n_data: int | None = None
    _factor: np.ndarray = field(init=False, repr=False)
    _diag: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.curvatures = np.asarray(self.curvatures, dtype=float)
        self.noise_cov = np.asarray(self.noise_cov, dtype=float)
        self.theta0 = np.asarray(self.theta0, dtype=float)
        self.dim = self.curvatures.size
        if self.noise_cov.shape != (self.dim, self.dim):
            raise ValueError("noise_cov must be (dim, dim)")
        if np.any(self.curvatures <= 0):
            raise ValueError("curvatures must be positive")
        if self.rotation is not None:
            self.rotation = np.asarray(self.rotation, dtype=float)
            if self.rotation.shape != (self.dim, self.dim) or not np.allclose(self.rotation.T @ self.rotation,
                                                                              np.eye(self.dim), atol=1e-12):
                raise ValueError("rotation must be an orthogonal (dim, dim) matrix")
        self.A = (self.curvatures[:, None] * np.eye(self.dim) if self.rotation is None
                  else (self.rotation * self.curvatures) @ self.rotation.T)
        off = self.noise_cov - np.diag(np.diag(self.noise_cov))
        self._diag = np.sqrt(np.diag(self.noise_cov)).copy() if not off.any() else None
        self._factor = sym_sqrt_factor(self.noise_cov)
        self.noise_dim = self.dim

    @property
    def eigenbasis(self) -> np.ndarray:
        """R, with A = R diag(curvatures) R^T (the identity for a diagonal A)."""
        return np.eye(self.dim) if self.rotation is None else self.rotation

    def loss(self, x):
        if self.rotation is None:
            return 0.5 * np.einsum("nd,d,nd->n", x, self.curvatures, x)
        return 0.5 * np.einsum("nd,de,ne->n", x, self.A, x)

    def grad(self, x, out):
        if self.rotation is None:
            np.multiply(x, self.curvatures, out=out)
        else:
            np.matmul(x, self.A, out=out)           # A is symmetric
        return out

    def hvp(self, x, v, out):
        return self.grad(v, out)

    def hessian(self, x):
        return self.A.copy()

    def noise(self, x, z, out):
        if self._diag is not None:
            np.multiply(z, self._diag, out=out)
        else:
            np.matmul(z, self._factor.T, out=out)
        return out

    def covariance(self, x):
        return np.broadcast_to(self.noise_cov, (x.shape[0], self.dim, self.dim)).copy()


def quadratic_2d() -> Quadratic:
    return Quadratic(curvatures=np.array([1.0, 0.5]),
                     noise_cov=np.array([[1.0, 0.3], [0.3, 0.5]]),
                     theta0=np.array([1.0, 1.0]), name="quadratic")


def quadratic_rotated() -> Quadratic:
    """The 2-d quadratic with its Hessian turned by 30 degrees: A and Sigma are both non-diagonal and do not commute,
    so the off-diagonal noise enters every test function (L, theta_1 theta_2, ...)."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    return Quadratic(curvatures=np.array([1.0, 0.5]), noise_cov=np.array([[1.0, 0.3], [0.3, 0.5]]),
                     theta0=np.array([1.0, 1.0]), rotation=np.array([[c, -s], [s, c]]), name="quadratic-rotated")


def quadratic_10d() -> Quadratic:
    rng = np.random.default_rng(20260101)
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    cov = q @ np.diag(np.linspace(0.2, 1.0, 10)) @ q.T
    return Quadratic(curvatures=np.linspace(0.5, 2.0, 10), noise_cov=0.5 * (cov + cov.T),
                     theta0=np.full(10, 0.5), name="quadratic-d10")

