"""`jaxopt_study.lab.digits_tasks`: the digits of a config, MLPs stacked over seeds, figures."""

import jax
import ml_collections
import numpy as np
import pytest

from jaxopt_study import data as data_lib
from jaxopt_study import models
from jaxopt_study.lab import digits_tasks


def test_load_is_the_configs_split():
  block = ml_collections.ConfigDict({"name": "digits", "test_fraction": 0.5, "split_seed": 3})
  loaded, expected = digits_tasks.load(block), data_lib.load_digits(0.5, 3)
  for a, b in zip(loaded, expected, strict=True):
    np.testing.assert_array_equal(a, b)


def test_mlp_is_build_model_on_the_digits():
  net = digits_tasks.mlp(2, width=8, depth=1)
  built = models.functional(models.build_model("mlp", 64, 10, seed=2, width=8, depth=1))
  for a, b in zip(jax.tree.leaves(net.params), jax.tree.leaves(built.params), strict=True):
    np.testing.assert_array_equal(a, b)


def test_mlps_stack_one_draw_per_seed_and_repeat_a_repeated_seed():
  net, params = digits_tasks.mlps([5, 6, 5], name="mlp", width=8, depth=1)
  assert jax.tree.leaves(params)[0].shape[0] == 3
  alone = {s: jax.tree.leaves(digits_tasks.mlp(s, width=8, depth=1).params) for s in (5, 6)}
  for leaf, five, six in zip(jax.tree.leaves(params), alone[5], alone[6], strict=True):
    np.testing.assert_array_equal(leaf[0], five)
    np.testing.assert_array_equal(leaf[1], six)
    np.testing.assert_array_equal(leaf[2], five)
  assert jax.tree.structure(net.params) == jax.tree.structure(params)


def test_digits_rule_refuses_other_data():
  digits_tasks.DIGITS("data.name", "digits", "here")
  with pytest.raises(ValueError, match="here: data.name='mnist' is not one of"):
    digits_tasks.DIGITS("data.name", "mnist", "here")


def test_metric_figures_draws_one_file_per_metric(tmp_path):
  def curves_of(metric):
    return {metric: ([0, 1, 2], [3.0, 2.0, 1.0])}

  paths = digits_tasks.metric_figures(
    tmp_path,
    (("train_loss", "NLL", True), ("test_error", "0-1 error", False)),
    curves_of,
    file="run_{metric}.png",
    title="{metric} per seed",
  )
  assert [p.name for p in paths] == ["run_train_loss.png", "run_test_error.png"]
  assert all(p.stat().st_size > 0 for p in paths)
