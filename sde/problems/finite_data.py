"""The finite-dataset problems: genuine minibatches of samples (batch_grad, batch_info) besides the Gaussian model."""

from __future__ import annotations

import numpy as np

from sde.problems.base import Problem, sym_sqrt_factor


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
        self._factor = sym_sqrt_factor(self.noise_cov)
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


