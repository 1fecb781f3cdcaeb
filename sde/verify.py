"""`sde verify`: the built-in verification study of one problem (sde.panels / sde.study, like every study).

For a problem it compares, on every test function and an eta grid,
  - discrete SGD with the SGD-SDE and gradient flow (Gaussian noise, coupled Monte Carlo), and on the
    quadratic also with exact discrete and OU moments (closed form, a finer grid);
  - discrete PGPO (m = min(1 + alpha I, m_max), alpha = 2 / I(theta_0), m_max = 2.5: a run starts at the cap)
    with the paper's SDE, the moment-matched SDE and gradient flow;
  - in the full version, on the finite-data problems (softmax, least squares), PGPO with genuine minibatch
    noise and I_k from an independent or the same batch, against the matched and the paper's SDE (control
    variate on the Gaussian process, 1 000 000 discrete paths).
Monte Carlo panels use a fixed number of paths per eta (10 000 quick, 100 000 full; `--paths` sets every count),
every SDE on the same discrete paths.
`python -m sde verify` writes the study document as <out>/results.json and draws <out>/weak_error.png.
"""

from __future__ import annotations


from sde.panels import MinibatchPanel, WeakErrorPanel
from sde.specs import MultiplierSpec, PathSizing
from sde.studyfile import Study

VERIFY_M_MAX = 2.5


def verification_study(problem: str, quick: bool = False, *, etas: list[float] | None = None,
                       T: float | None = None, paths: int | None = None, r: int | None = None,
                       alpha: float | None = None, m_max: float | None = None, shape: str | None = None,
                       seed: int = 0) -> Study:
    """The built-in study for `problem`; keyword arguments override its grid, horizon, path count, fine steps,
    multiplier and seed (ConfigError names the offending field)."""
    grid = [0.1, 0.05, 0.025, 0.0125, 0.00625] if quick else [0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125]
    grid = sorted(etas, reverse=True) if etas else grid
    n = paths or (10_000 if quick else 100_000)
    tests = ["sq_norm", "linear", "fluctuation"]      # of TEST_FUNCTIONS, those every problem has (cross needs d >= 2)
    mult = MultiplierSpec(alpha, VERIFY_M_MAX if m_max is None else m_max, shape or "clipped_linear")
    common = dict(problem=problem, T=1.0 if T is None else T, r=4 if r is None else r, seed=seed)
    panels = []
    if problem in ("quadratic", "quadratic-d10"):
        exact_grid = sorted(etas, reverse=True) if etas else [2.0 ** -j for j in range(5, 13)]
        panels.append(WeakErrorPanel("sgd_exact", etas=exact_grid, tests=tests, sdes=["sgd_sde", "gradient_flow"],
                                     discrete="sgd", method="closed_form", label="SGD, exact moments", **common))
    panels.append(WeakErrorPanel("sgd", etas=grid, tests=tests, sdes=["sgd_sde", "gradient_flow"], discrete="sgd",
                                 paths=PathSizing(fixed=n), label="SGD, Gaussian noise", **common))
    panels.append(WeakErrorPanel("pgpo", etas=grid, tests=tests, sdes=["paper", "matched", "gradient_flow"],
                                 multiplier=mult, paths=PathSizing(fixed=n), label="PGPO, Gaussian noise", **common))
    if problem in ("softmax", "least-squares") and not quick:
        for sde in ("matched", "paper"):
            panels.append(MinibatchPanel(f"pgpo_minibatch_{sde}", etas=grid[:4], tests=["sq_norm", "linear"],
                                         sde=sde, multiplier=mult, coupled_paths=n, discrete_paths=paths or 1_000_000,
                                         label=f"PGPO, minibatch noise, vs {sde}", **common))
    for i, p in enumerate(panels):
        p.validate(f"verify {problem}: panels[{i}] ({p.id})")
    return Study(name=f"verify-{problem}", panels=panels,
                 title=f"Weak-error verification: {problem}{' (quick)' if quick else ''}")


__all__ = ["verification_study", "VERIFY_M_MAX"]
