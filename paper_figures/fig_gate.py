"""Gate share to attention, play vs noisy.

    python paper_figures/fig_gate.py results/dt_stats.csv paper_figures/gate.png paper_figures/gate.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("gate")
