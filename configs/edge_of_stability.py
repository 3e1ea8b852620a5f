"""Cohen et al. (2021, 2022): full-batch GD and Adam on digits, λ_max against 2/η."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "edge_of_stability"
  config.seed = 0  # the curvature monitor's Lanczos start vector, the same for every member
  config.seeds = [0, 1, 2]  # of the initial parameters: every η is trained from each
  config.data = digits()
  config.data.num_examples = 1000  # the first 1,000 of the 1,347 training digits; full batch
  # PyTorch's default nn.Linear variance 1/(3 fan_in), as in Cohen et al.: LeCun times 1/√3
  config.model = mlp(width=32, depth=2, activation="tanh", init="lecun_normal", init_scale=0.577)
  config.steps = 2000
  config.eval_every = 10
  config.curvature_every = 20
  config.curvature = ml_collections.ConfigDict({"lanczos_steps": 20, "probes": 1})
  # Gradient descent at η = 2/T for thresholds T inside the range progressive sharpening reaches
  # at a small η (Cohen et al. 2021 Fig. 1 pick η = 2/T the same way)
  config.gd = ml_collections.ConfigDict(
    {"mse": [2 / 6, 2 / 5, 2 / 4, 2 / 3], "cross_entropy": [2 / 1.1, 2 / 1.0]}
  )
  config.adam = ml_collections.ConfigDict(
    {"loss": "mse", "learning_rates": [0.003, 0.01], "b1": 0.9, "b2": 0.999, "eps": 1e-8}
  )
  config.lock()
  return config
