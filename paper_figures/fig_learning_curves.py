"""Learning curves: training losses and evaluation score over updates, per method and dataset, seeds as bands.

    python paper_figures/fig_learning_curves.py --runs runs/quick/main/*/*/*/seed*/summary.json \
        --out paper_figures/learning_curves.png paper_figures/learning_curves.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("learning_curves")
