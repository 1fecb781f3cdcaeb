"""The problem interface: a loss L, its gradient-noise model Sigma(x) and information signal I(x) (sde.problems says
what each method computes)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


def sym_sqrt_factor(cov: np.ndarray) -> np.ndarray:
    """A factor S with S S^T = cov for a symmetric PSD (possibly singular) matrix, via eigh."""
    w, v = np.linalg.eigh(cov)
    tol = max(w.max(), 0.0) * cov.shape[0] * np.finfo(float).eps * 10
    if w.min() < -tol:
        raise ValueError(f"covariance is not positive semi-definite (min eigenvalue {w.min():.3e})")
    return v * np.sqrt(np.clip(w, 0.0, None))


class Problem(ABC):
    """A loss L, its gradient-noise model Sigma(x) and information signal I(x)."""

    name: str
    dim: int
    noise_dim: int
    batch_size: int
    theta0: np.ndarray
    loss_min: float = 0.0
    n_data: int | None = None  # finite dataset size, or None when only the Gaussian model exists

    @abstractmethod
    def loss(self, x: np.ndarray) -> np.ndarray:
        """L(x) for each path, shape (n,)."""

    @abstractmethod
    def grad(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """grad L(x) into out (n, dim)."""

    @abstractmethod
    def hessian(self, x: np.ndarray) -> np.ndarray:
        """The Hessian of L at one state x (shape (dim,)), shape (dim, dim) (sde.theory's linearisation)."""

    def hvp(self, x: np.ndarray, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Hess L(x) v into out (n, dim), per path (the order-2 modified equation's drift, sde.simulate). This default
        loops over paths; the problems below override it with a vectorised product."""
        for i in range(x.shape[0]):
            out[i] = self.hessian(x[i]) @ v[i]
        return out

    @abstractmethod
    def noise(self, x: np.ndarray, z: np.ndarray, out: np.ndarray) -> np.ndarray:
        """S(x) z into out (n, dim), z of shape (n, noise_dim)."""

    @abstractmethod
    def covariance(self, x: np.ndarray) -> np.ndarray:
        """Sigma(x), shape (n, dim, dim): the exact minibatch-gradient covariance (for checks)."""

    def info(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """I(x) = L(x) - L* into out (n,)."""
        out[...] = self.loss(x)
        out -= self.loss_min
        return out

    # -- genuine minibatches (finite-dataset problems only) -----------------------------------------
    @property
    def has_dataset(self) -> bool:
        return self.n_data is not None

    def batch_grad(self, x: np.ndarray, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"problem {self.name!r} has no finite dataset: use Gaussian noise")

    def batch_info(self, x: np.ndarray, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"problem {self.name!r} has no finite dataset: use Gaussian noise")

    def sample_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(representative indices, probabilities) of the classes of interchangeable samples, for enumerating
        minibatch laws (sde.theory); by default every sample is its own class, with probability 1/N."""
        if not self.has_dataset:
            raise NotImplementedError(f"problem {self.name!r} has no finite dataset")
        return np.arange(self.n_data), np.full(self.n_data, 1.0 / self.n_data)

