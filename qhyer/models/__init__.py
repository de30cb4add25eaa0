"""Neural-network building blocks shared by QHyer and the baselines."""
