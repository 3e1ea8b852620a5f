"""Every optimizer, first and second order, on digits logistic regression and an MLP (§8.5.4)."""

from pathlib import Path

import ml_collections
from common import digits

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "optimizer_comparison"
  # Each seed: an initialization and minibatch order (full-batch methods on a problem that starts
  # from θ = 0, where every seed's run is the same, run from the first seed only).
  config.seeds = [0, 1, 2]
  # The best adaptive-rate and best other first-order methods trained again from these (never seen
  # by the selection), and judged.
  config.evaluation_seeds = [100, 101, 102]
  config.data = digits()
  # Each problem: a model (its `models.build_model` options) and the L2 penalty α of its
  # objective J + (α/2) θᵀθ (§7.1.1). Depth 0 is logistic regression: convex, and with α > 0
  # strictly convex, so its optimum is unique and computed in float64 as a reference; it starts
  # from θ = 0 (init_scale 0), the usual start of a convex problem.
  config.problems = ml_collections.ConfigDict(
    {
      "logistic_regression": {
        "model": {"name": "mlp", "depth": 0, "init_scale": 0.0},
        "l2_penalty": 1e-3,
      },
      "mlp": {
        "model": {
          "name": "mlp",
          "width": 16,
          "depth": 1,
          "activation": "tanh",
          "init": "glorot_uniform",
        },
        "l2_penalty": 1e-4,
      },
    }
  )
  # First-order methods: minibatch steps; Newton, saddle-free Newton, CG, BFGS, L-BFGS: full batch.
  config.minibatch = ml_collections.ConfigDict({"steps": 2000, "batch_size": 64, "eval_every": 50})
  config.full_batch = ml_collections.ConfigDict({"steps": 40, "eval_every": 1})
  config.optimum_rtol = 1e-4  # "at the optimum": J ≤ J* (1 + optimum_rtol)
  # One entry per optimizer, hyperparameters by their Optax names; a list is a sweep axis. The
  # first-order grids are those of the `optimizers` experiment. A line
  # search sets the step of CG, BFGS and L-BFGS: their only rate is 1 (the direction unscaled).
  first_order = load_config(Path(__file__).with_name("optimizers.py")).optimizers.to_dict()
  config.optimizers = ml_collections.ConfigDict(
    {
      **first_order,
      "newton": {"learning_rate": [1.0], "damping": [1e-3, 1e-2, 1e-1], "adaptive": True},
      "saddle_free_newton": {"learning_rate": [1.0], "damping": [1e-3, 1e-2, 1e-1]},
      "conjugate_gradient": {"learning_rate": [1.0]},
      "bfgs": {"learning_rate": [1.0]},
      "lbfgs": {"learning_rate": [1.0], "memory_size": 10},
    }
  )
  config.lock()
  return config
