"""The SDE family that models PGPO, declared once: each member's drift term and diffusion term.

Discrete PGPO with Gaussian gradient noise is theta_{k+1} = theta_k - eta m_k (grad L(theta_k) + S(theta_k) Z_k)
(SGD is m_k = 1). Every member of the family is

    dTheta = -d(m) grad L dt  [+ the order-2 correction]  + s(m) sqrt(eta) S dW,     m = m(I(Theta)),

with its drift factor d(m) and diffusion factor s(m):

    member          d(m)   s(m)   order 2
    gradient_flow   m      0      no       (no noise)
    sgd_sde         1      1      no       (Eq. 7: the SGD-SDE ignores m)
    paper           m      1      no       (Theorem A.2 (ii))
    matched         m      m      no       (moment-matched)
    matched_2       m      m      yes      (order-2 modified equation)
    paper_2         m      1      yes      (order-2 drift, the paper's diffusion)

The order-2 drift is b - (eta/2) (grad b) b with b = -m(I) grad L; since grad I = grad L, the Jacobian is
grad b = -m H - m'(I) grad L grad L^T (H = Hess L), so the correction is -(eta/2) (m^2 H grad L + m m'(I) |grad L|^2
grad L) (`ModelSDE`, which sde.simulate.em_steps steps).
Why order 2 (Li, Tai & E's moment conditions): one discrete step has mean eta b and second moment
eta^2 (b b^T + m^2 Sigma); an SDE with drift b + eta b1 and diffusion sqrt(eta) D has mean eta b + eta^2 (b1 +
(grad b) b / 2) + O(eta^3) and second moment eta^2 (b b^T + D D^T) + O(eta^3) over the same time eta. Matching
both to O(eta^3) needs b1 = -(grad b) b / 2 and D D^T = m^2 Sigma + O(eta): the matched diffusion. The paper's
D D^T = Sigma leaves an O(eta^2) second-moment mismatch per step whenever m != 1, so paper_2 stays order 1.
For SGD (m = 1) both are the Li-Tai-E modified equation, drift -grad(L + eta |grad L|^2 / 4).
The clipped m has a kink where m' jumps (alpha to 0); whether it caps the order below 2 is measured, not assumed.

Besides ModelSDE, sde.exact's Ornstein-Uhlenbeck closed forms (constant m = c: drift rate d(c) a, diffusion
s(c) sqrt(eta) S), sde.stationary's floors, sde.escape's quadrature and temperatures, sde.theory's plateaus and
sde.variants' smoothed SDE read d, s and the order from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pgpo.multiplier import Multiplier
from sde.parallel import Scratch
from sde.problems import Problem


@dataclass(frozen=True)
class Member:
    """One SDE of the family: whether m scales the drift (`drift_m`) and the diffusion (`noise_m`), whether there is
    noise at all (`noisy`), and whether the drift carries the order-2 correction (`order2`)."""

    name: str
    drift_m: bool
    noisy: bool
    noise_m: bool
    order2: bool

    def drift_factor(self, m):
        """d(m): m, or 1 where the member ignores m (sgd_sde)."""
        return m if self.drift_m else 1.0

    def diffusion_factor(self, m):
        """s(m): m (matched diffusion), 1 (the paper's), 0 (no noise)."""
        if not self.noisy:
            return 0.0
        return m if self.noise_m else 1.0

    @property
    def base(self) -> str:
        """The order-1 member with the same diffusion (itself when it is order 1)."""
        return self.name[:-2] if self.order2 else self.name


FAMILY = {m.name: m for m in (
    Member("gradient_flow", drift_m=True, noisy=False, noise_m=False, order2=False),
    Member("sgd_sde", drift_m=False, noisy=True, noise_m=False, order2=False),
    Member("paper", drift_m=True, noisy=True, noise_m=False, order2=False),
    Member("matched", drift_m=True, noisy=True, noise_m=True, order2=False),
    Member("matched_2", drift_m=True, noisy=True, noise_m=True, order2=True),
    Member("paper_2", drift_m=True, noisy=True, noise_m=False, order2=True),
)}
SDE_KINDS = tuple(FAMILY)
ORDER2_KINDS = {k: m.base for k, m in FAMILY.items() if m.order2}   # order-2 drift, and the diffusion of the base kind


def drifts_apart(kind: str, multiplier) -> bool:
    """Whether member `kind`'s drift differs from discrete PGPO's -m grad L under `multiplier`: a member that ignores m
    (sgd_sde) against any m but the identity. False for a name outside the family (the averaged-drift SDE)."""
    k = FAMILY.get(kind)
    return k is not None and not k.drift_m and not multiplier.is_identity


def member(kind: str) -> Member:
    """The declaration of SDE kind `kind`; ValueError naming the kinds for an unknown one."""
    try:
        return FAMILY[kind]
    except KeyError:
        raise ValueError(f"unknown SDE kind {kind!r}; choose one of {SDE_KINDS}") from None


@dataclass
class ModelSDE:
    """Member `kind` of the family for (problem, multiplier, eta): the Euler-Maruyama increment of its drift and
    diffusion terms, with the factors of m its declaration gives (a member that scales its noise by m scales its
    drift too: matched, matched_2)."""

    problem: Problem
    multiplier: Multiplier
    eta: float
    kind: str
    _scratch: Scratch = field(default_factory=Scratch, repr=False)

    def __post_init__(self) -> None:
        kind = member(self.kind)
        self.dim = self.problem.dim
        self.noise_dim = self.problem.noise_dim
        self._sqrt_eta = math.sqrt(self.eta)
        self._noisy = kind.noisy
        self._modulated = kind.drift_m and not self.multiplier.is_identity
        self._order2 = kind.order2
        self._matched = kind.noise_m

    def increment(self, x, dw, h, out):
        n, scratch = x.shape[0], self._scratch             # one set of buffers per thread (sde.parallel)
        g = self.problem.grad(x, scratch.get("g", (n, self.dim)))
        if not self._noisy:
            out.fill(0.0)
        else:
            self.problem.noise(x, dw, out)
            out *= self._sqrt_eta
        m = None
        if self._modulated:
            info = self.problem.info(x, scratch.get("info", (n,)))
            m = self.multiplier(info, out=scratch.get("m", (n,)))[:, None]
            if self._matched:
                out *= m
        if self._order2:
            # b - (eta/2)(grad b) b = -m g - (eta/2)(m^2 H g + m m' |g|^2 g)   (module docstring)
            corr = self.problem.hvp(x, g, scratch.get("hvp", x.shape))
            if m is not None:
                corr *= m * m
                mm = m[:, 0] * self.multiplier.derivative(info)
                corr += (mm * np.einsum("nd,nd->n", g, g))[:, None] * g
            corr *= 0.5 * self.eta * h
            out -= corr
        if m is not None:
            g *= m
        g *= h
        out -= g
        return out


__all__ = ["Member", "FAMILY", "SDE_KINDS", "ORDER2_KINDS", "member", "drifts_apart", "ModelSDE"]
