"""`validate`: one argument order, `require_*(name, value, where)`, messages naming the field."""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxopt_study import validate


@pytest.mark.parametrize("value", [3, np.int64(3), jnp.asarray(3, jnp.int32)])
def test_integers_pass(value):
  validate.require_int("steps", value, "train", low=1, high=3)


@pytest.mark.parametrize(
  ("value", "message"),
  [
    (2.0, "train: steps=2.0 must be an integer"),
    (True, "train: steps=True must be an integer"),
    ("3", "train: steps='3' must be an integer"),
    (0, r"train: steps=0 must be an integer in \[1, 3\]"),
    (4, r"train: steps=4 must be an integer in \[1, 3\]"),
  ],
)
def test_non_integers_and_out_of_range_are_refused_by_name(value, message):
  with pytest.raises(ValueError, match=message):
    validate.require_int("steps", value, "train", low=1, high=3)


def test_a_lower_bound_alone_is_stated():
  with pytest.raises(ValueError, match="seed=-1 must be an integer >= 0"):
    validate.require_int("seed", -1, "sweep", low=0)


def test_an_ordered_pair_names_both_and_skips_traced_values():
  validate.require_ordered("base", 0.1, "max_value", 0.1, "here")
  with pytest.raises(ValueError, match=r"here: max_value=0.05 must be >= base=0.1"):
    validate.require_ordered("base", 0.1, "max_value", 0.05, "here")
  with pytest.raises(ValueError, match=r"here: low=1.0 must be < high=1.0"):
    validate.require_ordered("low", 1.0, "high", 1.0, "here", strict=True)
  jax.jit(lambda high: validate.require_ordered("low", 1.0, "high", high, "here") or high)(0.0)


@pytest.mark.parametrize("value", [1, 0, "True", None, 1.0])
def test_a_flag_is_true_or_false_only(value):
  validate.require_bool("flag", True, "here")
  validate.require_bool("flag", np.bool_(False), "here")
  with pytest.raises(ValueError, match=r"here: flag=.* must be True or False"):
    validate.require_bool("flag", value, "here")


def test_choices_and_sequences_name_the_item():
  validate.require_choice("sampling", "epoch", "train", ("epoch", "replacement"))
  with pytest.raises(ValueError, match=r"sampling='epochs' is not one of \['epoch'"):
    validate.require_choice("sampling", "epochs", "train", ("epoch", "replacement"))
  rates = validate.each(validate.require_positive)
  rates("rates", [0.1, 1], "grid")
  with pytest.raises(ValueError, match=r"grid: rates\[1\]=-1 must be finite and > 0"):
    rates("rates", [0.1, -1], "grid")
  for bad in ([], "abc", 0.1):
    with pytest.raises(ValueError, match="grid: rates=.* must be a list of at least 1 item"):
      rates("rates", bad, "grid")


def test_a_list_of_seeds_is_distinct_and_each_seed_fits_32_bits():
  rule = validate.seeds(min_length=2)
  rule("seeds", [0, 1, validate.MAX_SEED], "exp")
  with pytest.raises(ValueError, match=r"exp: seeds=\[0, 3, 0\] repeats 0: give each once"):
    rule("seeds", [0, 3, 0], "exp")
  with pytest.raises(ValueError, match=r"seeds\[1\]=4294967296 must be an integer in \[0, "):
    rule("seeds", [0, 2**32], "exp")
  with pytest.raises(ValueError, match=r"seeds=\[5\] must be a list of at least 2 item"):
    rule("seeds", [5], "exp")
  validate.require_sequence("widths", [2, 2], "exp")  # repeats are refused only when asked


def test_fields_of_a_config_reach_nested_blocks_and_name_missing_ones():
  config = ml_collections.ConfigDict({"steps": 5, "model": {"width": 0, "name": "mlp"}})
  rules = {
    "steps": validate.require_positive_int,
    "model.name": functools.partial(validate.require_choice, choices=["mlp"]),
  }
  validate.require_fields(config, "toy", rules)
  with pytest.raises(ValueError, match="toy: model.width=0 must be an integer >= 1"):
    validate.require_fields(config, "toy", {"model.width": validate.require_positive_int})
  with pytest.raises(ValueError, match="toy: the config has no field 'model.depth'"):
    validate.require_fields(config, "toy", {"model.depth": validate.require_positive_int})


def test_bfloat16_hyperparameters_are_numbers():
  validate.require_positive("learning_rate", jnp.asarray(0.5, jnp.bfloat16), "sgd")
  with pytest.raises(ValueError, match="sgd: learning_rate=-0.5 must be finite and > 0"):
    validate.require_positive("learning_rate", jnp.asarray(-0.5, jnp.bfloat16), "sgd")


@pytest.mark.parametrize(
  ("value", "match"),
  [
    ([0.1], r"=\[0.1\] must be a number, not a list"),
    (np.array([0.1, 0.2]), r" has shape \(2,\): it must be a number \(a scalar\)"),
    (1 + 1j, r"=\(1\+1j\) must be a real number, not complex"),
    (1e300, r"=1e\+300 must be finite and >= 0 \(at most 3.4e\+38, float32's largest\)"),
    (2**40, "=1099511627776 is an integer beyond int32: write 1099511627776.0"),
    (np.int64(2**40), r"=np.int64\(1099511627776\) is an integer beyond int32"),
  ],
)
def test_a_hyperparameter_is_a_real_scalar_that_float32_holds(value, match):
  """What the fuzzing of issue 20 found: each of these used to pass and fail deep in JAX (a list,
  an array of several values, an int beyond int32), or give a complex or NaN step (1 + 1j; an eps
  of 1e300, which is inf in float32, makes AdaDelta's √(s + ε)/√(r + ε) NaN)."""
  with pytest.raises(ValueError, match="sgd: learning_rate" + match):
    validate.require_non_negative("learning_rate", value, "sgd")


def test_counts_fit_an_int32_and_choices_refuse_arrays():
  validate.require_positive_int("steps", 2**31 - 1, "train")
  with pytest.raises(ValueError, match="train: steps=2147483648 must be an integer >= 1 and <= "):
    validate.require_positive_int("steps", 2**31, "train")
  with pytest.raises(ValueError, match=r"indefinite=array\(\[0.1, 0.2\]\) is not one of"):
    validate.require_choice("indefinite", np.array([0.1, 0.2]), "newton", ["shift", "solve"])


def test_is_finite_number_tells_a_measured_value_from_a_missing_one():
  """NumPy scalars count (np.float32 is not a Python float); a bool, None, a string, an array or
  a non-finite value does not."""
  for value in (0, 1.5, -2, np.float32(0.25), np.int64(3), np.float64(1e300)):
    assert validate.is_finite_number(value), value
  for value in (True, None, "1.0", np.ones(1), float("nan"), np.float32("inf"), -math.inf):
    assert not validate.is_finite_number(value), value
