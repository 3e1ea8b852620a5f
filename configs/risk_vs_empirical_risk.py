"""§8.1.1: the risk x·cos(πx) against a rippled empirical risk, and a digits MLP's training
minimizer against its held-out minimizer."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "risk_vs_empirical_risk"
  config.seed = 0  # kept for the common layout; the model part uses `seeds`
  # (a) f(x) = x·cos(πx) and g(x) = f(x) + amplitude·cos(frequency·πx), on a fine grid.
  config.toy = ml_collections.ConfigDict(
    {"interval": [0.5, 1.5], "amplitude": 0.2, "frequency": 5.0, "num_points": 100001}
  )
  # (b) A small training set (10% of the digits, ≈ 180 examples) and a large held-out set.
  config.data = digits(test_fraction=0.9)
  config.model = mlp(width=32, depth=1)
  config.seeds = [0, 1, 2, 3, 4]  # each its own initialization, shared by both minimizers
  config.l2_penalty = 1e-3  # α of (α/2)‖θ‖², the same on both objectives
  config.steps = 3000  # full-batch Adam steps to each minimizer
  config.learning_rate = 0.01
  config.line_range = [-0.5, 1.5]  # t of θ(t) = (1 − t) θ_E + t θ_R
  config.num_line_points = 81
  config.lock()
  return config
