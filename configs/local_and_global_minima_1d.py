"""§8.2.2 in one dimension: descent with and without gradient noise on x·cos(πx), and x³."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "local_and_global_minima_1d"
  config.seed = 0  # kept for the common layout; the noise uses `seeds`
  config.interval = [-1.0, 2.0]
  config.num_starts = 61  # evenly spaced starts on the interval, its ends included
  config.seeds = [0, 1, 2, 3, 4]  # noise seeds: each start draws its own noise per seed
  config.steps = 5000
  config.learning_rate = 0.01
  # Gradient noise of variance eta / (1 + t)^gamma (optax.add_noise; Neelakantan et al. 2015).
  config.noisy = ml_collections.ConfigDict({"eta": 30.0})  # constant: gamma = 0
  config.annealed = ml_collections.ConfigDict({"eta": 1000.0, "gamma": 0.55})
  config.grid_points = 30001  # the fine grid that locates f's critical points
  config.x_cubed = ml_collections.ConfigDict(
    {"starts": [0.5, -0.05], "steps": 2000, "learning_rate": 0.1}
  )
  config.lock()
  return config
