"""Science-QA figures and the paper's Tables 1 and 3 from a directory of run logs (the logic:
pgpo/analysis_report.py and pgpo/analysis.py).

    python paper_figures/science_qa.py --runs runs/science_qa [--out runs/science_qa/figures] \
        [--step-budget 200] [--time-budget-h 5]
"""

import sys

from pgpo.analysis_report import main

if __name__ == "__main__":
    sys.exit(main())
