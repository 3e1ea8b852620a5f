"""Block coordinate descent (§8.7.2): sparse coding and the strongly coupled quadratic."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "coordinate_descent"
  config.seeds = [0, 1, 2, 3, 4]  # each its own planted problem X and start (H₀, W₀)
  # (a) Sparse coding J(H, W) = Σ(X − HW)² + λΣ|H| + μΣW², X = H*W* + noise (planted dictionary).
  config.sparse_coding = ml_collections.ConfigDict(
    {
      "num_examples": 128,
      "num_features": 16,
      "num_atoms": 24,
      "code_density": 0.15,  # share of non-zero entries of the planted codes H*
      "noise_std": 0.05,
      "l1_penalty": 0.1,  # λ
      "weight_decay": 0.1,  # μ: without it J is unbounded in the scale of H vs W
      "steps": 4000,  # gradient steps, the same for every method
      "eval_every": 20,
      "learning_rate": [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1],  # the grid of every method
      "steps_per_block": [1, 10, 100, 500],  # k consecutive steps on H, then k on W, ...
    }
  )
  # (b) f(x) = (x₁ − x₂)² + α(x₁² + x₂²): exact coordinate minimization vs GD vs Newton.
  config.quadratic = ml_collections.ConfigDict(
    {
      "alphas": [0.01, 0.02, 0.05, 0.1, 0.3, 1.0],
      "start": [0.0, 1.0],  # (x₁, x₂) at step 0
      "tolerance": 1e-12,  # f below this counts as solved
      "sweeps": 3000,  # coordinate sweeps (2 steps each); GD gets 2 × sweeps steps
      "gd_learning_rate": [0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.49],
    }
  )
  config.lock()
  return config
