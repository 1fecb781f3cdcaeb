"""Toy problems on which discrete SGD/PGPO is compared with its SDE models.

Each problem defines, vectorised over paths (`x` has shape (n_paths, dim)):

- `grad(x, out)`      the full-batch gradient grad L(x)
- `info(x, out)`      the information signal I(x) that drives the multiplier m(I)
- `noise(x, z, out)`  S(x) z, where S S^T = Sigma(x) is the minibatch-gradient covariance (Eq. 5,
                      batch size included) and z ~ N(0, I_noise_dim); so grad L + S z has the law of the
                      Gaussian model of a minibatch gradient
- optionally, for a finite dataset: `batch_grad(x, idx, out)` and `batch_info(x, idx, out)` for genuine
  minibatches `idx` of shape (n_paths, B) drawn with replacement.

Information signal. In SDPO the per-step objective *is* the student-teacher divergence, so the
natural toy analogue of I is the excess loss I(x) = L(x) - L*: for the teacher-student softmax it is
exactly KL(q || p_x), the KL from the teacher's to the student's distribution (the paper's Eq. 8).
A minibatch estimate is I_B(x) = L_B(x) - L*.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize


def _sym_sqrt_factor(cov: np.ndarray) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------------
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
        self._factor = _sym_sqrt_factor(self.noise_cov)
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


# ----------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------
class TeacherStudentSoftmax(Problem):
    """Student p_x = softmax(x) over K classes learns the teacher distribution q from N labelled samples.

    Per-sample loss l_i(x) = -log p_x(y_i); L = cross-entropy(q, p_x), grad L = p_x - q with q the
    empirical label distribution. I(x) = KL(q || p_x) = L(x) - H(q) exactly. The minibatch gradient
    p_x - q_B has covariance (diag q - q q^T)/B: singular (rank K-1), so its factor comes from eigh.
    Row sums use a matrix-vector product (NumPy's reductions over a short last axis are slow).
    """

    def __init__(self, q_true=(0.4, 0.3, 0.2, 0.1), n_data: int = 64, batch_size: int = 4,
                 seed: int = 7, name: str = "softmax"):
        rng = np.random.default_rng(seed)
        k = len(q_true)
        labels = rng.choice(k, size=n_data, p=np.asarray(q_true) / np.sum(q_true))
        counts = np.bincount(labels, minlength=k)
        if (counts == 0).any():
            raise ValueError("every class needs at least one sample")
        self.name, self.labels, self.n_data, self.batch_size = name, labels, int(n_data), int(batch_size)
        self.q = counts / n_data
        self.dim = self.noise_dim = k
        self.theta0 = np.zeros(k)
        self.loss_min = float(-(self.q * np.log(self.q)).sum())  # H(q)
        self.noise_cov = (np.diag(self.q) - np.outer(self.q, self.q)) / self.batch_size
        self._factor = _sym_sqrt_factor(self.noise_cov)
        self._ones = np.ones(k)

    def _exp_shifted(self, x, out):
        """exp(x - c) with c a per-row shift only when needed for overflow safety; returns (e, c)."""
        if np.abs(x).max() < 300.0:
            np.exp(x, out=out)
            return out, 0.0
        c = x.max(axis=1, keepdims=True)
        np.subtract(x, c, out=out)
        np.exp(out, out=out)
        return out, c[:, 0]

    def _logsumexp(self, x):
        e, c = self._exp_shifted(x, np.empty_like(x))
        return np.log(e @ self._ones) + c

    def loss(self, x):
        return self._logsumexp(x) - x @ self.q

    def grad(self, x, out):
        e, _ = self._exp_shifted(x, out)
        e /= (e @ self._ones)[:, None]
        e -= self.q
        return e

    def hessian(self, x):
        p = np.exp(x - x.max())
        p /= p.sum()
        return np.diag(p) - np.outer(p, p)

    def hvp(self, x, v, out):
        p = self.grad(x, np.empty_like(x)) + self.q                 # softmax(x)
        np.multiply(p, v, out=out)
        out -= p * (out @ self._ones)[:, None]                      # (diag p - p p^T) v
        return out

    def noise(self, x, z, out):
        np.matmul(z, self._factor.T, out=out)
        return out

    def covariance(self, x):
        return np.broadcast_to(self.noise_cov, (x.shape[0], self.dim, self.dim)).copy()

    def class_info_grads(self, x):
        """Per-class I_c(x) = -log p_x(c) - H(q) (n, K) and gradients p_x - e_c (n, K, K), for sde.theory's sums over
        minibatches (the classes are sample_groups' order)."""
        info = self._logsumexp(x)[:, None] - x - self.loss_min
        p = self.grad(x, np.empty_like(x)) + self.q
        return info, p[:, None, :] - np.eye(self.dim)[None, :, :]

    def sample_groups(self):
        """Samples with one label are interchangeable: one representative index per class, with its frequency."""
        reps = np.array([int(np.flatnonzero(self.labels == k)[0]) for k in range(self.dim)])
        return reps, self.q.copy()

    def _batch_counts(self, idx):
        n, b = idx.shape
        y = self.labels[idx]
        flat = (np.arange(n)[:, None] * self.dim + y).ravel()
        return np.bincount(flat, minlength=n * self.dim).reshape(n, self.dim) / b

    def batch_grad(self, x, idx, out):
        self.grad(x, out)
        out += self.q
        out -= self._batch_counts(idx)
        return out

    def batch_info(self, x, idx, out):
        # mean_b -log p_x(y_b) - H(q) = logsumexp(x) - mean_b x[y_b] - H(q)
        out[...] = self._logsumexp(x) - np.take_along_axis(x, self.labels[idx], axis=1).mean(axis=1)
        out -= self.loss_min
        return out


# ----------------------------------------------------------------------------------------------------
class LeastSquares(Problem):
    """Linear regression on a fixed dataset (X, y): l_i(x) = (x_i^T x - y_i)^2 / 2.

    The gradient covariance Sigma(x) = Cov_i(g_i(x)) / B, g_i = x_i r_i(x), depends on the state
    (multiplicative noise). Because g_i is affine in x, g_i - g_bar = sum_j x_j C_j[i] - C_0[i] with
    fixed rows C_j[i] = x_i x_ij - mean and C_0[i] = x_i y_i - mean, the Gaussian noise
    S(x) z = sum_i (g_i - g_bar) z_i / sqrt(B N) depends on z ~ N(0, I_N) only through the
    d(d+1)-vector v = K z (K stacks C_0^T .. C_d^T). We draw v = F w directly, F F^T = K K^T (eigh),
    w ~ N(0, I_rank): the same law with noise_dim = rank <= d(d+1) instead of N.
    """

    def __init__(self, n_data: int = 32, dim: int = 2, batch_size: int = 4, noise_std: float = 0.5,
                 seed: int = 11, x0=None, name: str = "least-squares"):
        rng = np.random.default_rng(seed)
        self.name, self.n_data, self.dim, self.batch_size = name, int(n_data), int(dim), int(batch_size)
        self.X = rng.standard_normal((n_data, dim))
        self.theta_true = np.linspace(1.0, -1.0, dim)
        self.y = self.X @ self.theta_true + noise_std * rng.standard_normal(n_data)
        self.hess = self.X.T @ self.X / n_data
        self.rhs = self.X.T @ self.y / n_data
        self.y2_half = 0.5 * float(np.mean(self.y * self.y))
        self.theta_star = np.linalg.solve(self.hess, self.rhs)
        self.theta0 = np.asarray(x0 if x0 is not None else self.theta_star + 1.5, dtype=float)
        self.loss_min = float(self.loss(self.theta_star[None, :])[0])
        blocks = [self.X * self.y[:, None]] + [self.X * self.X[:, j:j + 1] for j in range(dim)]
        k = np.concatenate([(b - b.mean(axis=0)).T for b in blocks], axis=0)   # (d(d+1), N)
        w, v = np.linalg.eigh(k @ k.T)
        keep = w > w.max() * 1e-12
        self._factor = v[:, keep] * np.sqrt(w[keep]) / np.sqrt(self.batch_size * self.n_data)
        self.noise_dim = int(keep.sum())

    def loss(self, x):
        # (1/2N) |X x - y|^2 = 1/2 x^T H x - rhs^T x + mean(y^2)/2, without the (n, N) residuals
        return 0.5 * np.einsum("nd,de,ne->n", x, self.hess, x) - x @ self.rhs + self.y2_half

    def grad(self, x, out):
        np.matmul(x, self.hess, out=out)  # hessian is symmetric
        out -= self.rhs
        return out

    def hessian(self, x):
        return self.hess.copy()

    def hvp(self, x, v, out):
        np.matmul(v, self.hess, out=out)
        return out

    def noise(self, x, z, out):
        v = (z @ self._factor.T).reshape(x.shape[0], self.dim + 1, self.dim)   # rows: C_0 z, C_1 z, ...
        np.einsum("nj,njd->nd", x, v[:, 1:, :], out=out)
        out -= v[:, 0, :]
        return out

    def covariance(self, x):
        r = x @ self.X.T - self.y
        g = r[:, :, None] * self.X[None, :, :]                # (n, N, d)
        gc = g - g.mean(axis=1, keepdims=True)
        return np.einsum("nid,nie->nde", gc, gc) / (self.n_data * self.batch_size)

    def batch_grad(self, x, idx, out):
        xb = self.X[idx]                                      # (n, B, d)
        r = np.einsum("nbd,nd->nb", xb, x) - self.y[idx]
        np.einsum("nbd,nb->nd", xb, r, out=out)
        out /= idx.shape[1]
        return out

    def batch_info(self, x, idx, out):
        xb = self.X[idx]
        r = np.einsum("nbd,nd->nb", xb, x) - self.y[idx]
        out[...] = 0.5 * (r * r).mean(axis=1)
        out -= self.loss_min
        return out


# ----------------------------------------------------------------------------------------------------
PROBLEMS = {
    "quadratic": quadratic_2d,
    "quadratic-rotated": quadratic_rotated,
    "quadratic-d10": quadratic_10d,
    "double-well": DoubleWell,
    "double-well-escape": lambda: DoubleWell(sigma=2.5, name="double-well-escape"),   # hot enough to escape (sde.escape)
    "softmax": TeacherStudentSoftmax,
    "least-squares": LeastSquares,
}


def get_problem(name: str) -> Problem:
    try:
        factory = PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose one of {', '.join(PROBLEMS)}") from None
    return factory()
