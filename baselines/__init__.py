"""Baselines on the shared data, training and evaluation layers: DT, QT, LSDT, GCIQL, HIQL, GCBC."""
