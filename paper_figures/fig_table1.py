"""Table 1 bars with 95% CIs.

    python paper_figures/fig_table1.py results/table1.csv paper_figures/table1.png paper_figures/table1.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("table1")
