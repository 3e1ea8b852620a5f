"""Grid vs random vs coarse-to-fine search of Adam's learning rate and β₁ on a digits MLP
(Bergstra & Bengio 2012, Fig. 1; lecture notes: hyperparameter search)."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "search"
  config.seed = 0
  config.num_searches = 8  # independent searches: seeds seed, seed + 1, ...
  config.steps = 200
  config.eval_every = 200
  config.batch_size = 32
  config.data = digits()  # its held-out quarter is the test set, which no search sees
  config.validation_fraction = 0.25  # of the training split: the set every search minimizes
  config.model = mlp(width=32, depth=1)
  config.optimizer = ml_collections.ConfigDict({"name": "adam"})
  # The learning rate matters (four decades, log-uniform); β₁ within [0, 0.9] barely does.
  config.space = ml_collections.ConfigDict(
    {"learning_rate": {"log_uniform": [1e-4, 1.0]}, "b1": {"uniform": [0.0, 0.9]}}
  )
  config.important = "learning_rate"
  config.budgets = [16, 36, 64]  # squares: grids of 4 × 4, 6 × 6, 8 × 8
  config.coarse_to_fine = ml_collections.ConfigDict({"rounds": 2, "top_k": 3, "widen": 2.0})
  config.lock()
  return config
