"""The optimizer comparison on a budget (tests and the tour): logistic regression only, on a
quarter of the digits, by SGD, Adam and Newton's method, fewer steps. Each optimizer compiles its
own sweep program (seconds each), so the full config alone runs every optimizer on both problems."""

from pathlib import Path

import ml_collections

from jaxopt_study.config import load_config


def get_config() -> ml_collections.ConfigDict:
  config = load_config(Path(__file__).with_name("optimizer_comparison.py"))
  config.unlock()
  config.data.test_fraction = 0.75
  config.problems = ml_collections.ConfigDict(
    {"logistic_regression": config.problems.logistic_regression}
  )
  config.minibatch.steps = 300
  config.minibatch.eval_every = 30
  config.full_batch.steps = 12
  optimizers = config.optimizers
  config.optimizers = ml_collections.ConfigDict(
    {"sgd": optimizers.sgd, "adam": optimizers.adam, "newton": optimizers.newton}
  )
  config.optimizers.newton.damping = [1e-2]
  config.lock()
  return config
