"""Expectile tau sweep curve.

    python paper_figures/fig_tau.py results/tau_sweep.csv paper_figures/tau.png paper_figures/tau.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("tau")
