"""Claims check as a forest plot: each claim's band, measured interval and verdict.

    python paper_figures/fig_claims.py results/claims_check.csv paper_figures/claims.png paper_figures/claims.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("claims")
