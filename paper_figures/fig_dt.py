"""Mamba Delta_t, Abar_t and effective memory, play vs noisy.

    python paper_figures/fig_dt.py results/dt_stats.csv paper_figures/dt.png paper_figures/dt.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("dt")
