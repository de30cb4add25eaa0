"""Ablation heatmaps (backbone x conditioning).

    python paper_figures/fig_ablation.py results/ablation.csv paper_figures/ablation.png paper_figures/ablation.pdf
"""

from qhyer.report.figures import script

if __name__ == "__main__":
    script("ablation")
