"""W^t, the power method and the gradient norm of a linear RNN vs t (§8.2.5)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "long_term_dependencies"
  config.seed = 0
  config.hidden = 64  # units of the recurrent network, the size of W
  config.horizon = 200  # time steps: W^t for t = 0 .. horizon − 1
  config.num_seeds = 3  # random matrices per (family, radius)
  # Spectral radii ρ of W: vanishing below 1, critical at 1, exploding above.
  config.radii = [0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2]
  config.vanish_radius = 0.9
  config.explode_radius = 1.1
  # Symmetric W: eigenvalues ρ · linspace(1, −spread, hidden).
  config.eigenvalue_spread = 0.5
  config.lock()
  return config
