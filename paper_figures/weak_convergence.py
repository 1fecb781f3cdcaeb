"""Figures and the slopes table of the weak-convergence study, from saved results (the logic: sde/report.py).

    python paper_figures/weak_convergence.py --results results/weak_convergence --out paper_figures/weak_convergence
"""

import sys

from sde.report import main

if __name__ == "__main__":
    sys.exit(main())
