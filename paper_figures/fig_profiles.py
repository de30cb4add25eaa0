"""Performance profiles.

    python paper_figures/fig_profiles.py results/aggregate.csv paper_figures/profiles.png paper_figures/profiles.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("profiles")
