"""Continuation (Gaussian-smoothed losses) and curriculum learning (easy-to-hard order), §8.7.6."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.experiment = "continuation_curriculum"
  config.seed = 0
  # (a) Continuation: gradient descent on J_σ(θ) = E_{θ'~N(θ, σ²I)} J(θ') for a decreasing σ,
  # against plain gradient descent on J, from the same uniform starts, the same steps.
  config.continuation = ml_collections.ConfigDict(
    {
      "surfaces": ["cosine_bowl", "narrow_well"],
      "dim": 2,
      "num_starts": 1024,
      "box": 5.0,  # starts uniform in [−box, box]^dim
      "sigmas": [2.0, 1.0, 0.5, 0.25, 0.1, 0.0],  # one stage per σ; plain GD has σ = 0 throughout
      "steps_per_stage": 300,
      "learning_rate": 0.02,
      "global_radius": 0.25,  # a run found the global minimum if it ends this close to it
      "mc_samples": 4096,  # Monte Carlo check of the closed-form J_σ
    }
  )
  # (b) Curriculum: a digits MLP trained by SGD on minibatches drawn from a pool of the easiest
  # examples (margin of a logistic-regression reference) that grows to the whole set.
  config.curriculum = ml_collections.ConfigDict(
    {
      "data": {"test_fraction": 0.25, "split_seed": 0},
      "model": {"width": 32, "depth": 1, "activation": "tanh"},
      "reference_steps": 1000,  # logistic regression, full-batch gradient descent
      "reference_learning_rate": 0.5,
      "orders": ["random", "easy_to_hard", "hard_to_easy"],
      "start_fraction": 0.2,  # share of the data in the pool at step 0
      "ramp_fraction": 0.5,  # the pool holds every example from this share of the steps on
      "steps": 1500,
      "batch_size": 32,
      "learning_rate": 0.05,
      "eval_every": 50,
      "num_seeds": 8,
    }
  )
  config.lock()
  return config
