"""Sweeps: members equal their runs alone, divergence isolation, devices, processes, resuming."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from jaxopt_study import cli, hessian, optim, results, sweep, train
from jaxopt_study import data as data_lib
from jaxopt_study import problem as problem_lib
from jaxopt_study.config import ConfigError
from jaxopt_study.results import read_csv
from jaxopt_study.sweep import checkpoint, program, runner

ROOT = Path(__file__).parents[1]
# Batch sizes 250 and 1000 share one program (1000 ≤ 4 × 250) and cross epochs within 24 steps
# (5 and 1 steps per epoch of 1347 examples), so the masked epoch order is exercised.
AXES = {"batch_size": [250, 1000], "init_scale": [0.5, 2.0], "learning_rate": [0.03, 0.1, 0.3]}


def make_config(sweep_axes: dict | None = None, **fields) -> ml_collections.ConfigDict:
  """A tiny momentum-SGD MLP on digits: 24 steps, evaluations every 8, a checkpoint every 8."""
  config = ml_collections.ConfigDict(
    {
      "seed": 0,
      "steps": 24,
      "batch_size": 250,
      "learning_rate": 0.1,
      "eval_every": 8,
      "checkpoint_every": 8,
      "sampling": "epoch",
      "data": {"name": "digits", "test_fraction": 0.25, "split_seed": 0},
      "model": {
        "name": "mlp",
        "width": 8,
        "depth": 1,
        "activation": "tanh",
        "batchnorm": False,
        "init": "glorot_uniform",
        "init_scale": 1.0,
      },
      "optimizer": {"name": "momentum", "momentum": 0.9},
      "sweep": AXES if sweep_axes is None else sweep_axes,
    }
  )
  config.update(fields)
  return config


def history_array(result, members=None) -> np.ndarray:
  """(member, metric, step) values of a result's history, members in table order."""
  names = members or [row["member"] for row in result.table]
  values = {(r["member"], r["metric"], r["step"]): r["value"] for r in result.history}
  steps = sorted({r["step"] for r in result.history})
  return np.asarray([[[values[(m, k, s)] for s in steps] for k in train.METRICS] for m in names])


def run_alone(
  config: ml_collections.ConfigDict, row: dict, optimizer=None, **train_options
) -> train.TrainResult:
  """The member of `row` trained by itself with `train.train` (by default with momentum);
  `train_options` are more of its arguments."""
  options = {k: v for k, v in config.model.to_dict().items() if k not in ("name", "init_scale")}
  problem = problem_lib.builtin("mlp", data_lib.load_digits(), **options)
  return train.train(
    problem,
    optimizer or optim.momentum(row["learning_rate"], momentum=0.9),
    init_scale=row["init_scale"],
    batch_size=row["batch_size"],
    seed=row["seed"],
    l2_penalty=config.get("l2_penalty", 0.0),
    **({"steps": config.steps, "eval_every": config.eval_every} | train_options),
  )


@pytest.fixture(scope="module")
def reference() -> sweep.SweepResult:
  """The 12-member sweep of `AXES` on the one device of this process."""
  return sweep.run_config(make_config())


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_members_equal_their_runs_alone(reference):
  """Different batch sizes in one masked program, each member as `train.train` runs it alone."""
  assert len(reference.table) == 12 and reference.stats.chunks == 1
  for index in (1, 6, 11):  # (250, 0.5, 0.1), (1000, 0.5, 0.03), (1000, 2.0, 0.3)
    row = reference.table[index]
    alone = run_alone(make_config(), row)
    expected = np.asarray([alone.history[k] for k in train.METRICS])
    np.testing.assert_allclose(history_array(reference, [row["member"]])[0], expected, rtol=1e-5)
    params, _ = results.member_state(
      reference.arrays, row["member"], alone.params, alone.model_state
    )
    for ours, theirs in zip(jax.tree.leaves(params), jax.tree.leaves(alone.params), strict=True):
      np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
  assert len({key.split("/")[0] for key in reference.arrays}) == 12
  assert [r["batch_size"] for r in reference.table[:6]] == [250] * 6
  assert not any(r["diverged"] for r in reference.table)


def test_segments_end_at_checkpoints_and_share_one_width():
  """Evaluations at 0, 10, ..., 50 with checkpoints every 20 steps: step 0's block leads the
  first segment, the shorter last ones are padded with inactive blocks."""
  plan = sweep.check_config(
    make_config(steps=50, eval_every=10, checkpoint_every=20, curvature_every=20)
  )
  segments = runner._segments(plan)
  lengths = [[0, 10, 10], [10, 10, 0], [10, 0, 0]]
  np.testing.assert_array_equal([s.lengths for s in segments], lengths)
  np.testing.assert_array_equal([s.active.sum() for s in segments], [3, 2, 1])
  measured = [s.measure[s.active] for s in segments]  # at steps 0, 20, 40 and the last, 50
  np.testing.assert_array_equal(np.concatenate(measured), [1, 0, 1, 0, 1, 1])
  assert not any(s.measure[~s.active].any() for s in segments)


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_a_grid_of_one_member_is_a_plain_run():
  """Three segments (steps 0-8, 16, 24), the last two padded: one compiled segment program."""
  config = make_config({})
  before = program.compiled_segment.cache_info().misses
  result = sweep.run_config(config)
  assert program.compiled_segment.cache_info().misses == before + 1
  (row,) = result.table
  assert (row["batch_size"], row["init_scale"], row["learning_rate"]) == (250, 1.0, 0.1)
  alone = run_alone(config, row)
  expected = np.asarray([alone.history[k] for k in train.METRICS])
  np.testing.assert_allclose(history_array(result)[0], expected, rtol=1e-5)
  assert row["final_train_loss"] < 0.5 * result.history[0]["value"]


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_divergence_is_a_rise_above_the_initial_loss_by_factor_minus_one_times_its_size():
  """L₀ > 0: above factor · L₀; a loss that starts negative is not flagged for falling (it was:
  every member of a Gaussian-NLL sweep read diverged at step 0), and is flagged when it rises by
  more than (factor − 1)|L₀|; L₀ = 0: only a non-finite loss; a frozen member at its step."""
  steps = np.arange(0, 50, 10)

  def diverged_at(losses, frozen_at=None):
    history = {"step": steps, "train_loss": np.asarray(losses, float)}
    return runner._divergence(history, 10.0, frozen_at)

  assert diverged_at([1.0, 0.5, 9.9, 10.0, 3.0]) is None
  assert diverged_at([1.0, 0.5, 9.9, 10.1, 3.0]) == 30
  assert diverged_at([-97.4, -98.0, -99.0, -100.0, -100.0]) is None
  assert diverged_at([-2.0, -1.0, 15.9, 0.0, 0.0]) is None  # rose by 17.9 < 9 · 2 = 18
  assert diverged_at([-2.0, -1.0, 16.1, 0.0, 0.0]) == 20
  assert diverged_at([0.0, 5.0, 1e6, 0.0, 0.0]) is None
  assert diverged_at([0.0, 5.0, np.nan, 0.0, 0.0]) == 20
  assert diverged_at([1.0, 0.5, 0.4, 0.3, 0.2], frozen_at=17) == 17
  # above 10 L₀ at the evaluation of step 10, frozen (non-finite) at 23: the first, 10
  assert diverged_at([1.0, 5.8e17, np.inf, np.inf, np.inf], frozen_at=23) == 10


def test_a_diverged_member_leaves_the_others_bit_for_bit_unchanged():
  """With and without a member whose parameters overflow (3 members are padded to 4 per device)."""
  without = sweep.run_config(make_config({"learning_rate": [0.03, 0.1, 0.3]}))
  with_absurd = sweep.run_config(make_config({"learning_rate": [0.03, 0.1, 0.3, 1e38]}))
  *sane, absurd = with_absurd.table
  np.testing.assert_array_equal(
    history_array(with_absurd, [r["member"] for r in sane]), history_array(without)
  )
  assert absurd["diverged"] and not any(r["diverged"] for r in without.table)
  at = absurd["diverged_at_step"]  # frozen at its last finite parameters from then on
  assert 0 <= at < 24
  frozen = history_array(with_absurd, [absurd["member"]])[0][:, np.asarray([0, 8, 16, 24]) >= at]
  np.testing.assert_array_equal(frozen, np.repeat(frozen[:, -1:], frozen.shape[1], axis=1))


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_an_l2_penalized_member_equals_its_run_alone():
  """`l2_penalty` (§7.1.1) trains every member on J + (α/2)‖θ‖², as `train.train` does."""
  config = make_config({"learning_rate": [0.1]}, l2_penalty=0.05)
  (row,) = sweep.run_config(config).table
  alone = run_alone(config, row)
  assert row["final_train_loss"] == pytest.approx(alone.history["train_loss"][-1], rel=1e-5)
  unpenalized = sweep.run_config(make_config({"learning_rate": [0.1]})).table[0]
  assert row["final_train_loss"] > unpenalized["final_train_loss"]


def test_a_member_keeps_the_parameters_early_stopping_kept():
  """A sweep with early stopping keeps each member's best evaluation's parameters
  (`member_state(..., best=True)`), those of `train.train`'s `best_params`, besides its final
  ones (it kept the final ones only, which do not reach the table's best_ value)."""
  config = make_config(
    {"learning_rate": [1.0]},
    steps=48,
    eval_every=4,
    checkpoint_every=48,
    early_stopping="test_error",
  )
  problem = problem_lib.builtin("mlp", data_lib.load_digits(), width=8, depth=1, activation="tanh")
  result = sweep.run_config(config)
  (row,) = result.table
  alone = run_alone(config, row, optim.momentum(1.0, momentum=0.9), early_stopping="test_error")
  assert row["best_step"] == alone.best_step < config.steps  # the best is not the end
  best, state = sweep.member_state(problem, result, row["member"], best=True)
  final, _ = sweep.member_state(problem, result, row["member"])
  for ours, theirs in zip(jax.tree.leaves(best), jax.tree.leaves(alone.best_params), strict=True):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
  error = problem.metrics["error"]
  heldout = problem.heldout_data
  assert float(error(problem.module(best, state), heldout)) == pytest.approx(row["best_test_error"])
  assert float(error(problem.module(final, state), heldout)) == pytest.approx(
    row["final_test_error"]
  )
  with pytest.raises(ValueError, match="no early-stopped parameters"):
    sweep.member_state(
      problem,
      sweep.run_config(make_config({"learning_rate": [1.0]}, early_stopping=None)),
      "m0000",
      best=True,
    )


class Linear64(nnx.Module):
  """A float64 linear classifier of the digits."""

  def __init__(self, rngs: nnx.Rngs):
    self.layer = nnx.Linear(64, 10, rngs=rngs, param_dtype=jnp.float64)

  def __call__(self, x):
    return self.layer(x)


def nll(model, batch):
  return optax.softmax_cross_entropy_with_integer_labels(model(batch[0]), batch[1]).mean()


def test_a_float64_members_hyperparameters_are_float64(x64):
  """b₂ = 1 − 1e-9 was rounded to 1 in float32, and Adam's bias correction 1 − b₂ᵗ divided by
  0 (the member was flagged diverged at step 0); each member now equals its run alone in float64."""
  digits = data_lib.load_digits()
  x, y = digits.x_train[:64].astype(np.float64), digits.y_train[:64]
  problem = problem_lib.Problem(model=Linear64, loss=nll, train_data=(x, y))
  options = dict(init_scale=0.7, steps=6, eval_every=3, batch_size=16)
  axes = {"b2": [1 - 1e-9, 0.999]}
  result = sweep.run(problem, optim.adam, axes, learning_rate=0.003, **options)
  for row in result.table:
    alone = train.train(problem, optim.adam(0.003, b2=row["b2"]), **options)
    assert not row["diverged"]
    assert row["final_train_loss"] == pytest.approx(alone.history["train_loss"][-1], rel=1e-13)


class MixedPrecision(nnx.Module):
  """A bfloat16 hidden layer under a float32 head."""

  def __init__(self, rngs):
    self.hidden = nnx.Linear(64, 8, param_dtype=jnp.bfloat16, dtype=jnp.bfloat16, rngs=rngs)
    self.head = nnx.Linear(8, 10, rngs=rngs)

  def __call__(self, x):
    return self.head(jnp.tanh(self.hidden(x)).astype(jnp.float32))


@pytest.mark.parametrize("axes", [{"learning_rate": [0.01, 0.003]}, {"b1": [0.9, 0.8]}])
def test_a_half_precision_member_keeps_its_defaults_and_equals_its_run_alone(axes):
  """`optim.adam` passed as the factory of a bfloat16 model: optax injected its defaults in the
  parameters' lowest precision, so b₂ = 0.999 became 1 and every member was NaN at step 0
  ("diverged"); a b₁ axis failed to compile (a bfloat16 moment became float32 in the loop's
  carry). Each member now equals its run alone with float32 hyperparameters, to the rounding of
  a bfloat16 layer (ε = 2⁻⁸; the vmapped program's matmuls round in another order)."""
  digits = data_lib.load_digits()
  problem = problem_lib.Problem(
    model=MixedPrecision, loss=nll, train_data=(digits.x_train[:64], digits.y_train[:64])
  )
  options = dict(steps=6, eval_every=3, batch_size=16)
  fixed = {"learning_rate": 0.01, "b1": 0.9}
  result = sweep.run(problem, optim.adam, axes, learning_rate=0.01, **options)
  for row in result.table:
    values = fixed | {k: row[k] for k in axes}
    tx = optax.inject_hyperparams(optim.adam, hyperparam_dtype=jnp.float32)(**values)
    alone = train.train(problem, tx, **options)
    assert not row["diverged"]
    assert row["final_train_loss"] == pytest.approx(alone.history["train_loss"][-1], rel=1e-4)
    assert row["final_train_loss"] < alone.history["train_loss"][0]


def test_a_member_seeded_above_two_to_the_31_equals_its_run_alone():
  """Every seed train.train takes (up to 2³² − 1) is a sweep's too: seeds of 2³¹ and more passed
  the check, then overflowed the program's int32 seed array."""
  digits = data_lib.load_digits()
  problem = problem_lib.Problem(
    model=lambda rngs: nnx.Linear(64, 10, rngs=rngs),
    loss=nll,
    train_data=(digits.x_train[:64], digits.y_train[:64]),
  )
  options = dict(steps=4, eval_every=2, batch_size=16)
  seeds = [3, 2**31 + 5, train.MAX_SEED]
  result = sweep.run(problem, optim.sgd, {"seed": seeds}, learning_rate=0.1, **options)
  for row in result.table:
    alone = train.train(problem, optim.sgd(0.1), seed=row["seed"], **options)
    assert row["final_train_loss"] == pytest.approx(alone.history["train_loss"][-1], rel=1e-6)
  assert len({row["final_train_loss"] for row in result.table}) == 3


def test_equal_epochs_scale_the_step_counts_by_the_smallest_batch_size():
  """b₀ = 100 runs the given 50 steps (evaluations every 10, checkpoints every 20, curvature every
  20); b = 400 sees the same 3.7 epochs of 1347 examples in ⌈50/4⌉ = 13 steps, every ⌈10/4⌉ = 3."""
  config = make_config(
    {"batch_size": [100, 400]}, steps=50, eval_every=10, checkpoint_every=20, curvature_every=20
  )
  plan = sweep.check_config(config)
  assert plan.for_batch_size(100) == plan  # off by default
  config.equal_epochs = True
  plan = sweep.check_config(config)
  assert plan.for_batch_size(100).steps == 50
  large = plan.for_batch_size(400)
  assert (large.steps, large.eval_every, large.checkpoint_every, large.curvature_every) == (
    13,
    3,
    6,
    6,
  )
  assert sweep.batch_groups([100, 400]) == [(100, 400)]  # one program, unless at equal epochs


@pytest.mark.parametrize(
  ("fields", "message"),
  [
    ({"l2_penallty": 0.5}, "l2_penallty: a sweep config has no such field"),
    ({"patiance": 3}, "patiance: a sweep config has no such field"),
    ({"problem": "my_problem.py:make"}, "remove data, model.activation, model.batchnorm"),
    ({"problem": "my_problem.py:make", "model": {"init_scale": 0.5}}, "^data: the config names"),
  ],
)
def test_a_field_the_sweep_would_ignore_is_refused(fields, message):
  """A misspelled field trained without what it meant to set (l2_penallty: no penalty), and a
  built-in problem's data or model options beside the user's own problem were ignored: refused,
  naming the field, before the problem is built."""
  config = make_config()
  for field, value in fields.items():
    config[field] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
  with pytest.raises(ConfigError, match=message):
    sweep.check_config(config)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_equal_epochs_must_be_a_boolean(value):
  with pytest.raises(ValueError, match=r"equal_epochs=.* must be True or False"):
    sweep.check_config(make_config(equal_epochs=value))


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_at_equal_epochs_each_batch_size_trains_its_own_steps_as_alone():
  """Batch 250 runs 24 steps (4.5 epochs), batch 1000 ⌈24/4⌉ = 6 steps, evaluated every 2: each
  member equals `train.train` with its own step counts."""
  config = make_config({"batch_size": [250, 1000], "learning_rate": [0.1]}, equal_epochs=True)
  result = sweep.run_config(config)
  assert [(r["batch_size"], r["steps"]) for r in result.table] == [(250, 24), (1000, 6)]
  for row, steps, eval_every in zip(result.table, (24, 6), (8, 2), strict=True):
    alone = run_alone(config, row, steps=steps, eval_every=eval_every)
    expected = np.asarray([alone.history[k] for k in train.METRICS])
    ours = [r for r in result.history if r["member"] == row["member"]]
    assert sorted({r["step"] for r in ours}) == list(alone.history["step"])
    values = {(r["metric"], r["step"]): r["value"] for r in ours}
    got = np.asarray([[values[(k, t)] for t in alone.history["step"]] for k in train.METRICS])
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_the_curvature_monitor_gives_each_member_its_values_alone():
  """λ_max, tr H, gᵀHg, gᵀg and Adam's preconditioned λ_max of every member, measured at once
  inside the vmapped program, equal the member's run alone; unmeasured steps are NaN."""
  config = make_config({"batch_size": [250, 1000], "learning_rate": [0.01, 0.03]})
  config.optimizer = ml_collections.ConfigDict({"name": "adam"})
  config.curvature_every = 16
  config.curvature = {"preconditioned": True, "probes": 2}
  result = sweep.run_config(config)
  names = hessian.CurvatureOptions(preconditioner=len).metric_names()
  for row in result.table[::3]:
    alone = run_alone(
      config,
      row,
      optim.adam(row["learning_rate"]),
      curvature_every=16,
      curvature=hessian.CurvatureOptions(probes=2, preconditioner=optim.adam_preconditioner()),
    )
    member = [r for r in result.history if r["member"] == row["member"]]
    ours = {k: [r["value"] for r in member if r["metric"] == k] for k in names}
    for name in names:
      np.testing.assert_allclose(ours[name], alone.history[name], rtol=2e-3, err_msg=name)
    measured = ~np.isnan(alone.history["lambda_max"])
    np.testing.assert_array_equal(alone.history["step"][measured], [0, 16, 24])
    assert row["final_lambda_max"] == pytest.approx(alone.history["lambda_max"][-1], rel=2e-3)


def test_an_integer_hyperparameter_is_static_and_refused_as_an_axis():
  """L-BFGS's memory size shapes its state: it is passed as a Python int, not traced."""
  assert sweep.grid.integer_hyperparameters(optim.lbfgs) == ("memory_size",)
  assert sweep.grid.integer_hyperparameters(optim.saddle_free_newton) == ("krylov_dim",)
  assert sweep.grid.integer_hyperparameters(optim.adam) == ()
  config = make_config({"memory_size": [3, 5]}, steps=4, eval_every=4, checkpoint_every=4)
  config.optimizer = {"name": "lbfgs", "memory_size": 3}
  with pytest.raises(ValueError, match="sweep axis 'memory_size'.*set optimizer.memory_size"):
    sweep.check_config(config)


def test_a_numpy_scalar_hyperparameter_is_traced_as_a_python_float_is():
  """np.float32(0.8) from a config computed with NumPy is a real value the sweep traces, not a
  static one that would compile a program per value."""
  factories = []
  for b1 in (0.8, np.float32(0.8)):
    config = make_config({"learning_rate": [0.1]})
    config.optimizer = {"name": "adam", "b1": b1}
    factory, real = sweep.optimizer_factory(config)
    assert real == {"b1": pytest.approx(0.8)}
    factories.append(factory)
  assert factories[0] is factories[1]


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_a_member_of_a_sweep_with_an_integer_hyperparameter_equals_its_run_alone():
  config = make_config({"learning_rate": [0.5, 1.0]}, steps=4, eval_every=4, checkpoint_every=4)
  config.optimizer = {"name": "lbfgs", "memory_size": 3}
  row = sweep.run_config(config).table[1]
  alone = run_alone(config, row, optim.lbfgs(memory_size=3, learning_rate=1.0))
  assert row["final_train_loss"] == pytest.approx(alone.history["train_loss"][-1], rel=1e-5)


def test_a_hyperparameter_set_only_by_the_sweep_is_checked_at_its_values():
  """Adaptive Newton needs damping > 0: an axis of positive dampings is valid without a damping
  in the optimizer's config (the other axes are checked with it at its first value)."""
  config = make_config({"damping": [0.01, 0.1]}, learning_rate=1.0)
  config.optimizer = {"name": "newton", "adaptive": True}
  plan = sweep.check_config(config)
  assert [m.hyperparams["damping"] for m in plan.members] == [0.01, 0.1]
  config.sweep = {"damping": [0.01, 0.0]}
  with pytest.raises(ValueError, match="sweep axis 'damping': newton.*damping=0.0"):
    sweep.check_config(config)


def test_a_bad_first_value_is_not_blamed_on_another_axis():
  """momentum=1.5 (one value) was reported as "sweep axis 'learning_rate': momentum=1.5 must be
  in [0, 1)", the axis tried first; the point of first values is now named as a whole. A factory
  that returns no Optax transformation is refused before anything compiles."""
  digits = data_lib.load_digits()
  problem = problem_lib.Problem(
    model=Linear, loss=smoothed_nll, train_data=(digits.x_train[:64], digits.y_train[:64])
  )
  options = dict(steps=2, eval_every=2, batch_size=16)
  axes = {"learning_rate": [0.1, 0.2], "momentum": [1.5]}
  with pytest.raises(ValueError, match=r"^sweep, with learning_rate=0.1, momentum=1.5: momentum"):
    sweep.run(problem, optim.momentum, axes, **options)
  axes = {"learning_rate": [0.1, 0.2], "momentum": [0.5, 1.5]}
  with pytest.raises(
    ValueError, match=r"^sweep axis 'momentum': momentum: momentum=1.5 must be in \[0, 1\)"
  ):
    sweep.run(problem, optim.momentum, axes, **options)
  with pytest.raises(TypeError, match="the optimizer factory's result must be an Optax trans"):
    sweep.run(problem, lambda learning_rate: "adam", {"learning_rate": [0.1]}, **options)


@pytest.mark.parametrize(
  ("name", "factory"),
  [
    ("memory_size", lambda memory_size: optim.lbfgs(memory_size=memory_size)),
    ("restart_every", lambda restart_every: optim.conjugate_gradient(restart_every=restart_every)),
    ("krylov_dim", lambda krylov_dim: optim.saddle_free_newton(1.0, krylov_dim=krylov_dim)),
    (
      "steps_per_block",
      lambda steps_per_block: optim.coordinate_descent(
        optim.sgd(0.1), steps_per_block=steps_per_block
      ),
    ),
  ],
)
def test_an_integer_swept_through_a_users_factory_is_refused_by_name(name, factory):
  """A factory of one's own hides the `int` annotation that refuses optim.lbfgs's memory_size
  as an axis: swept through it, the integer failed deep in tracing (an OverflowError, a
  TracerBoolConversionError) naming nothing. It is refused before compiling, naming the axis."""
  digits = data_lib.load_digits()
  problem = problem_lib.Problem(
    model=Linear, loss=smoothed_nll, train_data=(digits.x_train[:64], digits.y_train[:64])
  )
  before = program.compiled_start.cache_info().misses
  with pytest.raises(ValueError, match=f"^sweep axis '{name}': the optimizer factory fails when"):
    sweep.run(problem, factory, {name: [2, 3]}, steps=2, eval_every=2, batch_size=16)
  assert program.compiled_start.cache_info().misses == before


def test_a_transformation_that_fails_on_the_parameters_is_not_blamed_on_tracing():
  """A failure with every hyperparameter a plain number is the transformation's own (e.g. a
  dtype it cannot take), and says so rather than that a hyperparameter cannot be traced."""
  digits = data_lib.load_digits()
  problem = problem_lib.Problem(
    model=Linear, loss=smoothed_nll, train_data=(digits.x_train[:64], digits.y_train[:64])
  )

  def refuse(params):
    raise ValueError("this transformation takes no such parameters")

  def factory(learning_rate):
    return optax.GradientTransformation(refuse, optax.identity().update)

  with pytest.raises(ValueError, match=r"^sweep: the optimizer \(learning_rate=0.1\) fails on"):
    sweep.run(problem, factory, {"learning_rate": [0.1]}, steps=2, eval_every=2, batch_size=16)


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_new_values_reuse_the_compiled_programs(reference):
  sweep.run_config(make_config())  # the reference's programs, in the bounded cache again
  before = program.compiled_segment.cache_info().misses, program.compiled_start.cache_info().misses
  config = make_config(
    AXES | {"learning_rate": [0.02, 0.05, 0.2], "init_scale": [0.7, 1.5]}, seed=3
  )
  config.optimizer.momentum = 0.5
  result = sweep.run_config(config)
  after = program.compiled_segment.cache_info().misses, program.compiled_start.cache_info().misses
  assert after == before
  assert result.table[0]["final_train_loss"] != reference.table[0]["final_train_loss"]


SMOOTHING = 0.0  # read by `smoothed_nll` at trace time; the test below changes it


def smoothed_nll(model, batch):
  targets = optax.smooth_labels(jax.nn.one_hot(batch[1], 10), SMOOTHING)
  return optax.softmax_cross_entropy(model(batch[0]), targets).mean()


class Linear(nnx.Module):
  def __init__(self, rngs):
    self.layer = nnx.Linear(64, 10, rngs=rngs)

  def __call__(self, x):
    return self.layer(x)


def test_a_loss_that_reads_a_changed_global_compiles_again(monkeypatch):
  """A notebook user changes a global the loss reads and sweeps again: the sweep once reused
  the program traced with the old value (the problem and the factory were its cache key by
  identity); it now gives what a run alone gives with the new value."""
  digits = data_lib.load_digits()
  problem = problem_lib.Problem(
    model=Linear, loss=smoothed_nll, train_data=(digits.x_train[:64], digits.y_train[:64])
  )
  options = dict(steps=4, eval_every=4, batch_size=16)
  losses = []
  for smoothing in (0.0, 0.5):
    monkeypatch.setitem(globals(), "SMOOTHING", smoothing)
    row = sweep.run(problem, optim.sgd, {"learning_rate": [0.1]}, **options).table[0]
    alone = train.train(problem, optim.sgd(0.1), **options)
    assert row["final_train_loss"] == pytest.approx(alone.history["train_loss"][-1], rel=1e-6)
    losses.append(row["final_train_loss"])
  assert losses[1] > losses[0] + 0.1  # smoothed targets: a higher cross-entropy


WORKER = textwrap.dedent(
  """
  import json, sys
  import jax
  jax.config.update("jax_numpy_rank_promotion", "raise")
  process, processes, port, config_file, out_file = sys.argv[1:]
  if int(processes) > 1:
    jax.distributed.initialize(f"localhost:{port}", int(processes), int(process))
  import ml_collections
  from jaxopt_study import sweep
  config = ml_collections.ConfigDict(json.loads(open(config_file).read()))
  result = sweep.run_config(config)
  if jax.process_index() == 0:
    with open(out_file, "w") as f:
      json.dump({"table": result.table, "history": result.history,
                 "devices": result.stats.devices, "processes": jax.process_count()}, f)
  """
)


def run_workers(tmp_path: Path, config, processes: int, env: dict) -> dict:
  (tmp_path / "worker.py").write_text(WORKER)
  (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  workers = [
    subprocess.Popen(
      [sys.executable, str(tmp_path / "worker.py"), str(i), str(processes), str(port)]
      + [str(tmp_path / "config.json"), str(tmp_path / "out.json")],
      env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(processes)
  ]
  for worker in workers:
    output, _ = worker.communicate(timeout=240)
    assert worker.returncode == 0, output[-3000:]
  return json.loads((tmp_path / "out.json").read_text())


def assert_same_numbers(theirs: dict, ours: sweep.SweepResult) -> None:
  """Same members and numbers to float32 rounding (see the sweep README section for why not bit
  for bit: XLA splits a program's loops by the number of devices, which reorders some sums)."""
  assert [r["member"] for r in theirs["table"]] == [r["member"] for r in ours.table]
  np.testing.assert_allclose(
    [r["value"] for r in theirs["history"]], [r["value"] for r in ours.history], rtol=1e-5
  )
  for row, other in zip(theirs["table"], ours.table, strict=True):
    assert row["diverged"] == other["diverged"] and row["best_step"] == other["best_step"]


@pytest.mark.slow  # several processes, or the CLI end to end
def test_eight_devices_give_the_numbers_of_one(tmp_path, reference):
  flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  theirs = run_workers(tmp_path, make_config(), 1, {"XLA_FLAGS": flags})
  assert theirs["devices"] == 8 and reference.stats.devices == 1
  assert_same_numbers(theirs, reference)


@pytest.mark.slow  # several processes, or the CLI end to end
def test_two_processes_give_the_numbers_of_one(tmp_path, reference):
  """`jax.distributed` on localhost: 2 processes of 1 CPU device each share the member axis."""
  theirs = run_workers(tmp_path, make_config(), 2, {})
  assert theirs["devices"] == 2 and theirs["processes"] == 2
  assert_same_numbers(theirs, reference)


class Interrupted(Exception):
  """Stands for a kill after a checkpoint has been written."""


@pytest.mark.slow  # several processes, or the CLI end to end
def test_an_interrupted_sweep_resumes_to_the_same_numbers(tmp_path, monkeypatch, reference):
  """Two chunks of 6 (a budget below the 12-member program); stop in the second, run again."""
  budget = reference.stats.bytes_per_device - 1
  config = make_config()
  uninterrupted = sweep.run_config(config, tmp_path / "once", memory_budget=budget)
  assert uninterrupted.stats.chunks == 2
  saves, restores = [], []
  save, restore = checkpoint.ChunkCheckpoint.save, checkpoint.ChunkCheckpoint.restore

  def save_then_stop(self, blocks_done, *args):
    save(self, blocks_done, *args)
    saves.append(blocks_done)
    if len(saves) == 4:  # chunk 1 done (3 segments), chunk 2 after its first segment
      raise Interrupted

  def counted_restore(self, blocks_done, *args):
    restores.append(blocks_done)
    return restore(self, blocks_done, *args)

  monkeypatch.setattr(checkpoint.ChunkCheckpoint, "save", save_then_stop)
  monkeypatch.setattr(checkpoint.ChunkCheckpoint, "restore", counted_restore)
  out = tmp_path / "resumed"
  with pytest.raises(Interrupted):
    sweep.run_config(config, out, memory_budget=budget)
  assert len(list((out / ".members").glob("*.json"))) == 6 and not (out / "results.csv").exists()
  resumed = sweep.run_config(config, out, memory_budget=budget)
  assert restores == [2], "the second chunk continues from its checkpoint after one segment"
  assert resumed.stats.member_steps == 6 * 16, "only the 6 unfinished members' last 16 steps"
  assert not (out / ".checkpoints").exists()
  np.testing.assert_array_equal(history_array(resumed), history_array(uninterrupted))
  assert resumed.arrays.keys() == uninterrupted.arrays.keys()
  for key, value in uninterrupted.arrays.items():
    np.testing.assert_array_equal(resumed.arrays[key], value, err_msg=key)
  for name in ("results.csv", "history.csv"):
    assert read_csv(out / name) == read_csv(tmp_path / "once" / name)


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_a_sweep_resumed_with_other_checkpoints_starts_its_chunk_again(tmp_path, monkeypatch):
  """`sweep.run(out_dir=...)` stopped after a checkpoint at 2 evaluation blocks and run again with
  another `checkpoint_every` (segments ending at 4, 7): it continued the old checkpoint from a
  segment start, re-ran blocks and failed ("zip() argument 2 is longer"), leaving a checkpoint
  past the end that every later run tripped on. The chunk starts again and ends where an
  uninterrupted run does."""
  problem = problem_lib.builtin("mlp", data_lib.load_digits(), width=8, depth=1)
  options = dict(steps=24, eval_every=4, batch_size=64, learning_rate=0.1)
  axes = {"momentum": [0.0, 0.9]}
  once = sweep.run(problem, optim.momentum, axes, **options)
  save = checkpoint.ChunkCheckpoint.save

  def save_then_stop(self, blocks_done, *args):
    save(self, blocks_done, *args)
    raise Interrupted

  monkeypatch.setattr(checkpoint.ChunkCheckpoint, "save", save_then_stop)
  out = tmp_path / "run"
  with pytest.raises(Interrupted):
    sweep.run(problem, optim.momentum, axes, **options, checkpoint_every=4, out_dir=out)
  monkeypatch.setattr(checkpoint.ChunkCheckpoint, "save", save)
  # a chunk of another layout (a run on another device count): no chunk of this run matches it
  (out / ".checkpoints" / "chunk-0001-0123456789" / "2").mkdir(parents=True)
  resumed = sweep.run(problem, optim.momentum, axes, **options, checkpoint_every=12, out_dir=out)
  assert not (out / ".checkpoints").exists()
  for row, alone in zip(resumed.table, once.table, strict=True):
    assert row["final_train_loss"] == pytest.approx(alone["final_train_loss"], rel=1e-6)
  assert len(resumed.history) == len(once.history)


@pytest.mark.parametrize(
  "change, culprit",
  [
    ({"sweep": {"widht": [1, 2]}}, "unknown sweep axis 'widht'"),
    ({"sweep": {"learning_rate": []}}, "sweep axis 'learning_rate'"),
    (
      {"sweep": {"batch_size": [8, 0]}},
      "sweep axis 'batch_size': batch_size=0 must be an integer >= 1",
    ),
    ({"sweep": {"batch_size": [8, 5000]}}, "sweep axis 'batch_size': batch_size=5000"),
    ({"sweep": {"batch_size": [8.5]}}, "sweep axis 'batch_size'"),
    ({"sweep": {"learning_rate": [0.1, -1.0]}}, "sweep axis 'learning_rate': .*learning_rate=-1.0"),
    ({"sweep": {"momentum": [0.5, 1.5]}}, "sweep axis 'momentum': .*momentum=1.5"),
    ({"sweep": {"seed": [0, 0]}}, "sweep axis 'seed'"),
    ({"sweep": {"init_scale": [float("nan")]}}, "sweep axis 'init_scale'"),
    ({"batch_size": 0, "sweep": {}}, "sweep: batch_size=0"),
    ({"checkpoint_every": 12}, "checkpoint_every=12"),
    ({"l2_penalty": -1.0}, "l2_penalty=-1.0"),
  ],
)
def test_bad_configs_are_refused_before_compiling(change, culprit):
  before = program.compiled_start.cache_info().misses
  config = make_config(change.pop("sweep", None), **change)
  with pytest.raises(ValueError, match=culprit.replace("(", r"\(")):
    sweep.run_config(config)
  assert program.compiled_start.cache_info().misses == before


def test_batch_sizes_group_by_a_factor_of_four():
  assert sweep.batch_groups([1024, 8, 16, 32, 33, 128, 1024]) == [(8, 16, 32), (33, 128), (1024,)]
  assert sweep.batch_groups([8, 16], separate=True) == [(8,), (16,)]


@pytest.mark.slow  # several processes, or the CLI end to end
def test_the_quick_config_runs_from_the_command_line(tmp_path):
  out = tmp_path / "sweep"
  config = str(ROOT / "configs" / "sweep_init_batch_quick.py")
  assert cli.main(["run", config, "--out", str(out), "--no-progress"]) == 0
  names = {p.name for p in out.iterdir()}
  assert {
    "results.csv",
    "history.csv",
    "report.html",
    "summary.json",
    "config.json",
    "params.npz",
  } <= names
  assert {"heatmap_final_train_loss.png", "heatmap_final_test_error.png"} <= names
  assert (out / "report.html").read_text().count("data:image/png;base64,") == 2
  table = read_csv(out / "results.csv")
  assert len(table) == 48 and {r["batch_size"] for r in table} == {16.0, 64.0}
  assert {r["seed"] for r in table} == {0, 1}
  summary = json.loads((out / "summary.json").read_text())
  initial = [r["value"] for r in read_csv(out / "history.csv") if r["metric"] == "train_loss"]
  assert summary["best_test_error"] < 0.1 and min(r["final_train_loss"] for r in table) < 0.1
  assert max(initial) > 1.0
  assert not (out / ".checkpoints").exists()


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow  # several processes, or the CLI end to end
def test_the_command_line_on_two_processes_writes_once_the_numbers_of_one(tmp_path):
  """`jaxopt-study run --distributed` on localhost: process 0 alone writes, the same numbers.

  Learning rate 0.1 only: at 1.0 the minibatch-16 members are chaotic enough that the float32
  rounding differences of a 6-member vs 12-member program (see `assert_same_numbers`) grow to
  ~3e-3 in 20 steps, which says nothing about the wiring tested here.
  """
  config = str(ROOT / "configs" / "sweep_init_batch_quick.py")
  small = ["--set", "steps=20", "--set", "eval_every=10", "--set", "checkpoint_every=10"]
  small += ["--set", "sweep.learning_rate=[0.1]", "--set", "sweep.seed=[0]"]
  alone = tmp_path / "alone"
  assert cli.main(["run", config, "--out", str(alone), "--no-progress", *small]) == 0
  out, port = tmp_path / "two", free_port()
  command = [sys.executable, "-m", "jaxopt_study.cli", "run", config, "--out", str(out)]
  command += ["--no-progress", *small, "--distributed", "--coordinator", f"localhost:{port}"]
  workers = [
    subprocess.Popen(
      [*command, "--num-processes", "2", "--process-id", str(i)],
      env={**os.environ, "JAX_PLATFORMS": "cpu"},
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  outputs = [worker.communicate(timeout=300)[0] for worker in workers]
  for worker, output in zip(workers, outputs, strict=True):
    assert worker.returncode == 0, output[-3000:]
  assert "report.html" in outputs[0] and "report.html" not in outputs[1]
  hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
  assert hidden == [".lock", ".members"]  # no temporary file left; the writer lock stays
  ours, theirs = read_csv(alone / "results.csv"), read_csv(out / "results.csv")
  assert [r["member"] for r in theirs] == [r["member"] for r in ours] and len(ours) == 6
  for metric in ("final_train_loss", "final_test_error"):
    np.testing.assert_allclose([r[metric] for r in theirs], [r[metric] for r in ours], rtol=1e-5)


@pytest.mark.parametrize(
  "options, culprit",
  [
    (["--coordinator", "localhost:1"], "need --distributed"),
    (["--distributed", "--coordinator", "localhost:1"], "give all of"),
    (
      ["--distributed", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"],
      "--process-id=2",
    ),
  ],
)
def test_host_options_are_checked_before_joining(options, culprit, tmp_path, capsys):
  config = str(ROOT / "configs" / "sweep_init_batch_quick.py")
  assert cli.main(["run", config, "--out", str(tmp_path / "x"), *options]) == 2
  assert culprit in capsys.readouterr().err
  assert not (tmp_path / "x").exists()


def minibatch_log(rows: list[dict], member: str) -> np.ndarray:
  """(steps, 2) loss and gradient norm of `member`'s rows of `SweepResult.minibatches`."""
  ours = [r for r in rows if r["member"] == member]
  assert [r["step"] for r in ours] == list(range(len(ours)))
  return np.asarray([[r[name] for name in train.MINIBATCH_LOG] for r in ours], float)


def alone_log(alone: train.TrainResult) -> np.ndarray:
  return np.stack([alone.minibatches[name] for name in train.MINIBATCH_LOG], axis=1)


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_a_members_minibatch_log_equals_its_run_alone(tmp_path):
  """Batch sizes 250 and 1000 in one masked program, three segments of 8 steps, 3 members padded
  to 4 by a copy of the last one, which diverges: each logged step equals `train.train(...,
  log_minibatches=True)` alone until a member is frozen, NaN after; the log leaves training as it
  was, and `minibatches.csv` holds it (only with the option)."""
  config = make_config(log_minibatches=True)
  options = sweep.configured.arguments(config)
  options["axes"] = {
    ("batch_size", "learning_rate"): [(250, 0.1), (1000, 0.3), (250, 1e38)],
    "momentum": [0.9],
  }
  result = sweep.run(**options, out_dir=tmp_path / "logged")
  assert result.stats.chunks == 1 and len(result.minibatches) == 3 * 24
  for row in result.table:
    ours = minibatch_log(result.minibatches, row["member"])
    theirs = alone_log(run_alone(config, row, log_minibatches=True))
    at = row["diverged_at_step"] if row["diverged"] else 24
    assert row["diverged"] == (row["learning_rate"] == 1e38) and 0 < at
    np.testing.assert_allclose(ours[:at], theirs[:at], rtol=1e-5)
    assert np.isnan(ours[at:]).all()
  written = read_csv(tmp_path / "logged" / "minibatches.csv")
  assert [r["member"] for r in written] == [r["member"] for r in result.minibatches]
  np.testing.assert_array_equal(
    [[r["step"], r["loss"], r["grad_norm"]] for r in written],
    [[r["step"], r["loss"], r["grad_norm"]] for r in result.minibatches],
  )
  plain = sweep.run(**options | {"log_minibatches": False}, out_dir=tmp_path / "plain")
  assert plain.minibatches == [] and not (tmp_path / "plain" / "minibatches.csv").exists()
  np.testing.assert_array_equal(history_array(plain), history_array(result))


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_at_equal_epochs_each_member_logs_its_own_steps():
  """Batch 250 logs its 24 steps, batch 1000 its ⌈24/4⌉ = 6, each as `train.train` alone."""
  config = make_config(
    {"batch_size": [250, 1000], "learning_rate": [0.1]}, equal_epochs=True, log_minibatches=True
  )
  result = sweep.run_config(config)
  for row, steps, eval_every in zip(result.table, (24, 6), (8, 2), strict=True):
    alone = run_alone(config, row, steps=steps, eval_every=eval_every, log_minibatches=True)
    ours = minibatch_log(result.minibatches, row["member"])
    assert ours.shape == (steps, 2)
    np.testing.assert_allclose(ours, alone_log(alone), rtol=1e-5)


def test_the_minibatch_log_has_the_steps_of_its_batch_size_group():
  """At equal epochs the group of batch size 400 runs and logs ⌈50/4⌉ = 13 steps, 100 its 50."""
  config = make_config({"batch_size": [100, 400]}, steps=50, eval_every=10, checkpoint_every=20)
  assert runner._spec(sweep.check_config(config), (100, 400), "").log_steps is None
  config.log_minibatches = True
  assert runner._spec(sweep.check_config(config), (100, 400), "").log_steps == 50
  config.equal_epochs = True
  plan = sweep.check_config(config)
  assert [runner._spec(plan.for_batch_size(b), (b,), "").log_steps for b in (100, 400)] == [50, 13]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_log_minibatches_must_be_a_boolean(value):
  before = program.compiled_start.cache_info().misses
  with pytest.raises(ValueError, match=r"sweep: log_minibatches=.* must be True or False"):
    sweep.run_config(make_config(log_minibatches=value))
  assert program.compiled_start.cache_info().misses == before


@pytest.mark.slow  # several processes, or the CLI end to end
def test_an_interrupted_sweep_resumes_to_the_same_minibatch_log(tmp_path, monkeypatch, reference):
  """Two chunks of 6 with the log on; stopped after the second chunk's first segment: the first
  chunk's rows come back from the run folder, the second's log from its checkpoint."""
  assert reference.minibatches == []
  budget = reference.stats.bytes_per_device - 1
  config = make_config(log_minibatches=True)
  uninterrupted = sweep.run_config(config, tmp_path / "once", memory_budget=budget)
  assert uninterrupted.stats.chunks == 2 and len(uninterrupted.minibatches) == 12 * 24
  saves, save = [], checkpoint.ChunkCheckpoint.save

  def save_then_stop(self, blocks_done, *args):
    save(self, blocks_done, *args)
    saves.append(blocks_done)
    if len(saves) == 4:  # chunk 1 done (3 segments), chunk 2 after its first segment
      raise Interrupted

  monkeypatch.setattr(checkpoint.ChunkCheckpoint, "save", save_then_stop)
  out = tmp_path / "resumed"
  with pytest.raises(Interrupted):
    sweep.run_config(config, out, memory_budget=budget)
  resumed = sweep.run_config(config, out, memory_budget=budget)
  assert resumed.stats.member_steps == 6 * 16
  assert [r["member"] for r in resumed.minibatches] == [
    r["member"] for r in uninterrupted.minibatches
  ]
  for name in ("step", *train.MINIBATCH_LOG):
    np.testing.assert_array_equal(
      [r[name] for r in resumed.minibatches], [r[name] for r in uninterrupted.minibatches]
    )
  assert read_csv(out / "minibatches.csv") == read_csv(tmp_path / "once" / "minibatches.csv")
