"""Aggregate metrics (IQM, mean, optimality gap) with CIs.

    python paper_figures/fig_aggregate.py results/aggregate.csv paper_figures/aggregate.png paper_figures/aggregate.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("aggregate")
