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

from sde.problems.base import Problem
from sde.problems.double_well import DoubleWell
from sde.problems.finite_data import LeastSquares, TeacherStudentSoftmax
from sde.problems.quadratic import Quadratic, quadratic_2d, quadratic_10d, quadratic_rotated

__all__ = ["PROBLEMS", "DoubleWell", "LeastSquares", "Problem", "Quadratic", "TeacherStudentSoftmax", "get_problem",
           "quadratic_10d", "quadratic_2d", "quadratic_rotated"]

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
