"""Independent members vs snapshot ensembles vs Polyak averaging on a digits MLP (lecture 7)."""

import ml_collections
from common import digits, mlp


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "ensembles"
  config.seed = 0
  config.steps = 3000  # per model, for every method
  config.batch_size = 32
  config.learning_rate = 0.05  # ε: the singles' cosine starts here; Polyak's constant rate
  config.momentum = 0.9
  config.members = 5  # K independent singles per ensemble
  config.repeats = 8  # independent repeats of everything, for the standard errors
  config.cycles = 5  # M snapshots of one run, every steps / cycles steps
  config.snapshot_learning_rate = 0.3  # ε_0 of every SGDR cycle (Huang et al. restart high)
  config.polyak_decay = 0.99  # β of the EMA of the parameters
  config.l2_penalty = 1e-3  # α of the weight decay (α/2)‖θ‖² (§7.1.1), as Huang et al. train
  config.data = digits(test_fraction=0.8)  # 359 training examples: members differ
  config.model = mlp(width=64, depth=2)
  config.lock()
  return config
