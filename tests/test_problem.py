"""Your own model: a user's module, loss, data and chain through training, sweeps and the CLI."""

import dataclasses
import functools
import json
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from jaxopt_study import Problem, analyze, cli, optim, regularization, sweep, train
from jaxopt_study import data as data_lib
from jaxopt_study import problem as problem_lib
from jaxopt_study.config import ConfigError, apply_overrides
from jaxopt_study.results import read_csv

DIGITS = data_lib.load_digits()
X, Y = DIGITS.x_train[:300], DIGITS.y_train[:300]
X_TEST, Y_TEST = DIGITS.x_test[:200], DIGITS.y_test[:200]


class TinyCNN(nnx.Module):
  """A convolution on the 8×8 images: no `kernel_init`, no `train` argument, `__call__(x)`."""

  def __init__(self, rngs: nnx.Rngs, dropout: float = 0.0, batchnorm: bool = False):
    self.conv = nnx.Conv(1, 3, (3, 3), rngs=rngs)
    self.norm = nnx.BatchNorm(3, rngs=rngs) if batchnorm else None
    self.drop = nnx.Dropout(dropout, rngs=rngs) if dropout else None
    self.out = nnx.Linear(3 * 64, 10, rngs=rngs)

  def __call__(self, x):
    h = self.conv(x.reshape(-1, 8, 8, 1))
    if self.norm is not None:
      h = self.norm(h)
    h = jax.nn.relu(h).reshape(x.shape[0], -1)
    if self.drop is not None:
      h = self.drop(h)
    return self.out(h)


def smoothed_nll(model, batch):
  """Label-smoothed cross-entropy (Szegedy et al. 2016), a loss the toolkit does not know."""
  x, y = batch
  targets = optax.smooth_labels(jax.nn.one_hot(y, 10), 0.1)
  return optax.softmax_cross_entropy(model(x), targets).mean()


def error(model, batch):
  return jnp.mean(jnp.argmax(model(batch[0]), axis=-1) != batch[1])


def make_problem(**options) -> Problem:
  return Problem(
    model=lambda rngs: TinyCNN(rngs, **options),
    loss=smoothed_nll,
    train_data=(X, Y),
    heldout_data=(X_TEST, Y_TEST),
    metrics={"error": error},
  )


PROBLEM = make_problem()


def clipped_adam(learning_rate, max_norm):
  return optax.chain(optax.clip_by_global_norm(max_norm), optim.adam(learning_rate))


@pytest.fixture(scope="module")
def cnn_sweep() -> sweep.SweepResult:
  """8 members: two rates × two clip norms × init scales 0.5, 2, batch sizes 16 and 50 masked
  in one program (50 ≤ 4 × 16)."""
  return sweep.run(
    PROBLEM,
    clipped_adam,
    {
      "learning_rate": [3e-3, 1e-2],
      "max_norm": [1.0],
      "init_scale": [0.5, 2.0],
      "batch_size": [16, 50],
    },
    steps=30,
    eval_every=10,
  )


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_a_user_module_is_swept_and_members_equal_their_runs_alone(cnn_sweep):
  table = cnn_sweep.table
  assert len(table) == 8 and cnn_sweep.stats.chunks == 1
  names = {"final_train_loss", "final_grad_norm", "final_train_error", "final_test_loss"}
  assert names | {"final_test_error", "diverged"} <= set(table[0])
  for row in (table[1], table[6]):
    alone = train.train(
      PROBLEM,
      clipped_adam(row["learning_rate"], row["max_norm"]),
      steps=30,
      eval_every=10,
      batch_size=row["batch_size"],
      init_scale=row["init_scale"],
    )
    for metric in ("train_loss", "grad_norm", "train_error", "test_loss", "test_error"):
      ours = [
        r["value"]
        for r in cnn_sweep.history
        if r["member"] == row["member"] and r["metric"] == metric
      ]
      np.testing.assert_allclose(ours, alone.history[metric], rtol=1e-5, atol=1e-7)


def test_a_factory_taking_keyword_arguments_sweeps_as_a_named_one():
  """``def clipped(**hp)``, a wrapper a researcher writes, was accepted and then crashed inside
  `optax.inject_hyperparams` ("adam() got an unexpected keyword argument 'hp'")."""

  def clipped(**hyperparams):
    return clipped_adam(**hyperparams)

  axes = {"learning_rate": [1e-2], "max_norm": [0.5]}
  (row,) = sweep.run(PROBLEM, clipped, axes, steps=4, eval_every=2, batch_size=16).table
  alone = train.train(PROBLEM, clipped_adam(1e-2, 0.5), steps=4, eval_every=2, batch_size=16)
  assert row["final_train_loss"] == pytest.approx(alone.history["train_loss"][-1], rel=1e-5)


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_init_scale_scales_every_kernel_of_a_module_without_kernel_init(cnn_sweep):
  pure = problem_lib.pure(PROBLEM)
  (one, _), (three, _) = pure.initial(0, 1.0), pure.initial(0, 3.0)
  np.testing.assert_allclose(three["conv"]["kernel"], 3 * np.asarray(one["conv"]["kernel"]))
  np.testing.assert_array_equal(three["conv"]["bias"], one["conv"]["bias"])
  np.testing.assert_allclose(three["out"]["kernel"], 3 * np.asarray(one["out"]["kernel"]))
  initial = {
    r["member"]: r["value"]
    for r in cnn_sweep.history
    if r["step"] == 0 and r["metric"] == "train_loss"
  }
  by_scale = {row["init_scale"]: initial[row["member"]] for row in cnn_sweep.table}
  assert abs(by_scale[2.0] - by_scale[0.5]) > 0.05


class Block(nnx.Module):
  def __init__(self, rngs):
    self.linear = nnx.Linear(4, 4, rngs=rngs)
    self.norm = nnx.LayerNorm(4, rngs=rngs)


class Stacked(nnx.Module):
  """Three blocks made by `nnx.vmap`, the usual way to stack layers in NNX: every parameter has a
  leading layer axis, the biases and LayerNorm scales (3, 4)."""

  def __init__(self, rngs):
    self.blocks = nnx.split_rngs(splits=3)(nnx.vmap(Block, in_axes=0, out_axes=0))(rngs)


def test_init_scale_and_the_penalties_leave_stacked_biases_and_scales_alone():
  """Stacked by `nnx.vmap`, a bias or a LayerNorm scale has ndim 2: `init_scale` multiplied it and
  the default penalties weighed it, as if it were a kernel."""
  _, params, _ = nnx.split(Stacked(nnx.Rngs(0)), nnx.Param, ...)
  scaled = problem_lib.scale_kernels(params, 3.0)
  blocks, original = scaled["blocks"], params["blocks"]
  np.testing.assert_allclose(blocks["linear"]["kernel"], 3 * original["linear"]["kernel"][...])
  for name in (("linear", "bias"), ("norm", "scale"), ("norm", "bias")):
    assert np.ndim(original[name[0]][name[1]]) == 2
    np.testing.assert_array_equal(blocks[name[0]][name[1]], original[name[0]][name[1]])
  kernel = original["linear"]["kernel"][...]
  assert regularization.penalty(params, l2=2.0) == pytest.approx(float(jnp.sum(kernel**2)))


def test_an_init_rule_of_ones_own_is_applied_at_every_scale_1_included():
  """A rule that re-draws the kernels must act at init_scale 1 too (it was skipped there, so a
  sweep's 1.0 member started from the module's default init); the default rule is the identity
  at 1. Checked on the arrays and on train.train's initial loss."""

  def draw(x, init_scale):
    return jax.nn.initializers.orthogonal(init_scale)(jax.random.key(7), x.shape, x.dtype)

  def orthogonal(params, init_scale):
    return jax.tree.map(lambda x: draw(x, init_scale) if x.ndim >= 2 else 0 * x, params)

  mine = dataclasses.replace(PROBLEM, init=orthogonal)
  for scale in (0.5, 1.0):
    params, _ = problem_lib.pure(mine).initial(0, scale)
    for layer in ("conv", "out"):
      kernel = params[layer]["kernel"]
      np.testing.assert_array_equal(kernel, draw(kernel, scale))
      np.testing.assert_array_equal(params[layer]["bias"], 0.0)
  default, _ = problem_lib.pure(PROBLEM).initial(0, 1.0)
  built = nnx.state(PROBLEM.model(nnx.Rngs(0)), nnx.Param)
  jax.tree.map(np.testing.assert_array_equal, default, built)
  module = mine.model(nnx.Rngs(0))
  nnx.update(module, problem_lib.pure(mine).initial(0, 1.0)[0])
  result = train.train(mine, optim.sgd(0.0), steps=2, eval_every=2, batch_size=16)
  expected = float(mine.loss(module, mine.train_data))
  assert result.history["train_loss"][0] == pytest.approx(expected, rel=1e-6)


def test_a_custom_loss_reports_only_the_metrics_it_defines():
  bare = Problem(model=lambda rngs: TinyCNN(rngs), loss=smoothed_nll, train_data=(X, Y))
  result = train.train(bare, optim.sgd(0.1), steps=4, batch_size=32, eval_every=2)
  assert set(result.history) == {"train_loss", "grad_norm", "step"}
  with pytest.raises(ValueError, match="early_stopping='test_error' is not a reported metric"):
    train.train(bare, optim.sgd(0.1), steps=4, batch_size=32, early_stopping="test_error")
  with pytest.raises(ValueError, match="early_stopping='test_accuracy'"):
    sweep.run(
      PROBLEM,
      optim.sgd,
      {"learning_rate": [0.1]},
      steps=4,
      eval_every=2,
      batch_size=8,
      early_stopping="test_accuracy",
    )


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
@pytest.mark.parametrize("options", [{"batchnorm": True}, {"dropout": 0.3}])
def test_modules_with_state_are_swept_one_batch_size_per_program(options):
  """BatchNorm statistics and dropout's RNG state live in the model state; each member of a
  two-size sweep still equals its run alone (train mode in steps, eval mode in evaluations)."""
  problem = make_problem(**options)
  assert not problem_lib.pure(problem).stateless
  result = sweep.run(
    problem,
    optim.sgd,
    {"batch_size": [16, 32], "learning_rate": [0.05]},
    steps=12,
    eval_every=6,
  )
  assert result.stats.chunks == 2
  row = result.table[1]
  alone = train.train(problem, optim.sgd(0.05), steps=12, eval_every=6, batch_size=32)
  np.testing.assert_allclose(row["final_test_loss"], alone.history["test_loss"][-1], rtol=1e-5)
  np.testing.assert_allclose(row["final_train_loss"], alone.history["train_loss"][-1], rtol=1e-5)
  start = problem_lib.pure(problem).initial(0)[1]
  assert any(
    not np.array_equal(a, b)
    for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(alone.model_state), strict=True)
  )


WEIGHTS = np.random.default_rng(0).uniform(0.5, 2.0, len(X)).astype(np.float32)


def weighted_nll(model, batch):
  """Sample weights from the batch, Σ wᵢ ℓᵢ / Σ wᵢ: not a mean of per-example terms."""
  x, y, w = batch
  return jnp.sum(w * optax.softmax_cross_entropy_with_integer_labels(model(x), y)) / jnp.sum(w)


def summed_nll(model, batch):
  return optax.softmax_cross_entropy_with_integer_labels(model(batch[0]), batch[1]).sum()


@pytest.mark.parametrize(
  "loss, weights, options, expected",
  [
    (smoothed_nll, None, {}, True),
    (weighted_nll, np.ones_like(WEIGHTS), {}, True),  # equal weights: a mean after all
    (weighted_nll, WEIGHTS, {}, False),
    (summed_nll, None, {}, False),
    (smoothed_nll, None, {"batchnorm": True}, False),
  ],
)
def test_a_loss_is_known_to_be_a_mean_of_per_example_terms_or_not(loss, weights, options, expected):
  data = (X, Y) if weights is None else (X, Y, weights)
  problem = Problem(model=lambda rngs: TinyCNN(rngs, **options), loss=loss, train_data=data)
  assert problem_lib.pure(problem).loss_is_example_mean is expected


def class_weighted_nll(model, batch):
  """A class-balanced loss Σ w[yᵢ] ℓᵢ / Σ w[yᵢ] with class 3 weighted 8 (not a mean either)."""
  x, y = batch
  w = jnp.where(y == 3, 8.0, 1.0)
  return jnp.sum(w * optax.softmax_cross_entropy_with_integer_labels(model(x), y)) / jnp.sum(w)


@pytest.mark.parametrize("count", [64, 2000])
def test_a_rare_class_with_its_own_weight_is_seen_by_the_mean_check(count):
  """A rare class (4 examples of 64, or 3 of 2000) that the check's 16 evenly spread examples
  missed: the class-weighted loss passed as a mean, and its masked members trained on the
  unweighted one. Every example of a small set, and every class of a large one, is probed."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(count, 8, 8, 1)).astype(np.float32)
  y = rng.integers(0, 3, count).astype(np.int32)
  rare = [5, 23, 40, 59] if count == 64 else [1, 1000, 1998]  # off np.linspace(0, n − 1, 16)
  assert not set(rare) & set(np.linspace(0, count - 1, 16).astype(int))
  y[rare] = 3
  problem = Problem(model=TinyCNN, loss=class_weighted_nll, train_data=(x, y))
  assert problem_lib.pure(problem).loss_is_example_mean is False
  problem = Problem(model=TinyCNN, loss=smoothed_nll, train_data=(x, y))
  assert problem_lib.pure(problem).loss_is_example_mean is True


@pytest.mark.parametrize("weight", [200.0, 0.0])
def test_a_few_heavy_or_zero_weight_examples_are_seen_by_the_mean_check(weight):
  """Float sample weights Σ wᵢ ℓᵢ / Σ wᵢ with 10 examples of 2000 weighted 200 (or 0), off the
  even spread: only integer arrays were looked at, so the loss passed as a mean and a sweep's
  masked members trained on the unweighted loss. The least and largest weights are probed."""
  rng = np.random.default_rng(2)
  count = 2000
  x = rng.normal(size=(count, 8, 8, 1)).astype(np.float32)
  y = rng.integers(0, 3, count).astype(np.int32)
  weights = np.ones(count, np.float32)
  spread = set(np.linspace(0, count - 1, problem_lib.PROBE_EXAMPLES).astype(int))
  odd = [i for i in rng.permutation(count) if i not in spread][:10]
  weights[odd] = weight
  problem = Problem(model=TinyCNN, loss=weighted_nll, train_data=(x, y, weights))
  assert problem_lib.pure(problem).loss_is_example_mean is False


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_a_loss_with_sample_weights_is_swept_one_batch_size_per_program():
  """Masked minibatches take the loss one example at a time, which would drop the weights of
  Σ wᵢ ℓᵢ / Σ wᵢ (the member of size 16 ended at the unweighted loss's point); the sweep says so
  and runs the sizes apart, each member equal to its run alone."""
  problem = Problem(model=TinyCNN, loss=weighted_nll, train_data=(X, Y, WEIGHTS))
  with pytest.warns(UserWarning, match="not a mean of per-example terms"):
    result = sweep.run(
      problem, optim.sgd, {"batch_size": [16, 32]}, learning_rate=0.05, steps=12, eval_every=6
    )
  assert result.stats.chunks == 2
  for row in result.table:
    size = row["batch_size"]
    alone = train.train(problem, optim.sgd(0.05), steps=12, eval_every=6, batch_size=size)
    np.testing.assert_allclose(row["final_train_loss"], alone.history["train_loss"][-1], rtol=1e-5)


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_a_loss_far_above_its_start_is_flagged_diverged():
  """SGD at rate 100 on a tanh MLP stays finite (tanh saturates) but ends far above its initial
  loss: diverged, as a user means it, though never non-finite."""
  problem = problem_lib.builtin("mlp", DIGITS, width=16, depth=1, activation="tanh")
  table = sweep.run(
    problem,
    optim.sgd,
    {"learning_rate": [0.1, 100.0]},
    steps=20,
    eval_every=5,
    batch_size=32,
  ).table
  assert not table[0]["diverged"] and table[0]["diverged_at_step"] is None
  assert table[1]["diverged"] and np.isfinite(table[1]["final_train_loss"])
  assert table[1]["diverged_at_step"] in (5, 10, 15, 20)


@pytest.mark.parametrize(
  "arguments, culprit",
  [
    (dict(model=None), "model"),
    (dict(train_data=()), "train_data is empty"),
    (dict(train_data=(X, Y[:10])), "different lengths"),
    (dict(heldout_data=(X_TEST,)), "heldout_data has 1 arrays"),
    (dict(metrics={"loss": error}), "metric name 'loss'"),
    (dict(metrics={"error": 3}), "metrics\\['error'\\]"),
  ],
)
def test_bad_problems_are_refused_by_name(arguments, culprit):
  fields = dict(model=lambda rngs: TinyCNN(rngs), loss=smoothed_nll, train_data=(X, Y))
  with pytest.raises(ValueError, match=culprit):
    Problem(**(fields | arguments))


def per_example_nll(model, batch):
  return optax.softmax_cross_entropy_with_integer_labels(model(batch[0]), batch[1])


@pytest.mark.parametrize(
  "arguments, culprit",
  [
    (dict(loss=per_example_nll), r"loss\(module, batch\) returned shape \(2,\)"),
    (dict(loss=lambda m, b: (smoothed_nll(m, b), 0)), r"loss\(module, batch\) returned a tuple"),
    (dict(loss=lambda m, b: jnp.sum(b[1])), r"loss\(module, batch\) returned dtype int32"),
    (
      dict(metrics={"probs": lambda m, b: jax.nn.softmax(m(b[0])).mean(0)}),
      r"metrics\['probs'\]\(module, batch\) returned shape \(10,\)",
    ),
  ],
)
def test_a_loss_or_metric_that_is_not_a_real_scalar_is_refused_before_training(arguments, culprit):
  fields = dict(model=lambda rngs: TinyCNN(rngs), loss=smoothed_nll, train_data=(X, Y))
  problem = Problem(**(fields | arguments))
  with pytest.raises(ValueError, match=culprit):
    train.train(problem, optim.sgd(0.1), steps=1, batch_size=8)


class Sowing(nnx.Module):
  """A linear classifier that sows its logits (to log them), with a Python-number temperature
  held as an nnx.Param."""

  def __init__(self, rngs, cache: bool = False):
    self.linear = nnx.Linear(64, 10, rngs=rngs)
    self.temperature = nnx.Param(1.0)
    self.cache = cache

  def __call__(self, x):
    logits = self.linear(x) / self.temperature
    self.sow(nnx.Intermediate, "logits", logits)
    if self.cache:  # a variable made in __call__: the state changes its structure
      self.last = nnx.BatchStat(logits.mean())
    return logits


def test_a_model_that_sows_trains_as_its_plain_twin_and_one_that_grows_state_is_refused():
  """Sown values were kept as model state: its structure changed after the first step and the
  loop failed on a bare pytree mismatch; a Python-number nnx.Param failed on `.dtype`."""
  options = dict(steps=6, eval_every=3, batch_size=30, seed=1)
  sowing = Problem(model=Sowing, loss=smoothed_nll, train_data=(X, Y))
  result = train.train(sowing, optim.sgd(0.1), **options)

  def plain(model, batch):  # the same model and loss, through its parameters by hand
    logits = model.linear(batch[0]) / model.temperature
    return smoothed_nll(lambda x: logits, batch)

  twin = Problem(model=Sowing, loss=plain, train_data=(X, Y))
  expected = train.train(twin, optim.sgd(0.1), **options)
  np.testing.assert_allclose(result.history["train_loss"], expected.history["train_loss"])
  assert result.params["temperature"] != 1.0  # trained, as a parameter
  growing = Problem(
    model=lambda rngs: Sowing(rngs, cache=True), loss=smoothed_nll, train_data=(X, Y)
  )
  with pytest.raises(ValueError, match=r"changes its state: it adds \[.*'last'.*and drops nothing"):
    train.train(growing, optim.sgd(0.1), **options)


def test_a_model_that_does_not_take_the_data_fails_with_a_note_naming_the_check():
  problem = Problem(
    model=lambda rngs: nnx.Linear(63, 10, rngs=rngs), loss=per_example_nll, train_data=(X, Y)
  )
  with pytest.raises(TypeError, match="dot_general") as raised:
    problem_lib.pure(problem)
  assert any("first 2 examples of train_data" in note for note in raised.value.__notes__)


class Permuted(nnx.Module):
  """A linear classifier of permuted pixels, the permutation held as an integer nnx.Param."""

  def __init__(self, rngs):
    self.order = nnx.Param(jnp.arange(64)[::-1])
    self.out = nnx.Linear(64, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(x[:, self.order[...]])


def test_an_integer_parameter_is_refused_by_name_before_training():
  """It failed deep inside the loop with JAX's "grad requires real- or complex-valued inputs"."""
  problem = Problem(model=Permuted, loss=per_example_nll, train_data=(X, Y))
  with pytest.raises(TypeError, match=r"nnx.Param \['order'\].* has dtype int32.*nnx.Variable"):
    train.train(problem, optim.sgd(0.1), steps=1, batch_size=8)


def test_heldout_data_that_the_model_does_not_take_fails_before_training_naming_it():
  """Held-out images of 63 pixels for a model of 64 failed inside the compiled loop, unnamed."""
  problem = dataclasses.replace(PROBLEM, heldout_data=(X_TEST[:, :63], Y_TEST))
  with pytest.raises(TypeError, match="cannot reshape") as raised:
    problem_lib.pure(problem)
  assert any("examples of heldout_data" in note for note in raised.value.__notes__)


def test_integer_and_boolean_metrics_are_accepted():
  def exact(model, batch):  # a bool
    return jnp.all(jnp.argmax(model(batch[0]), -1) == batch[1])

  def wrong(model, batch):  # an integer count
    return jnp.sum(jnp.argmax(model(batch[0]), -1) != batch[1])

  problem = Problem(
    model=lambda rngs: TinyCNN(rngs),
    loss=smoothed_nll,
    train_data=(X, Y),
    metrics={"exact": exact, "wrong": wrong},
  )
  history = train.train(problem, optim.sgd(0.1), steps=2, batch_size=8, eval_every=2).history
  module = problem.module(*problem_lib.pure(problem).initial(0))
  assert history["train_wrong"][0] == int(wrong(module, (X, Y)))
  assert history["train_exact"][0] == float(exact(module, (X, Y)))


def test_params_loss_of_equal_model_states_is_one_function():
  """The `hessian` tools compile once per loss function: equal states must give the same one."""
  problem = make_problem(batchnorm=True)
  params, state = problem_lib.pure(problem).initial(0)
  loss_fn = problem.params_loss(state)
  assert problem.params_loss(jax.tree.map(jnp.copy, state)) is loss_fn
  assert problem.params_loss() is loss_fn  # the initial state, equal by value
  assert problem.params_loss(state, train=False) is not loss_fn
  moved = jax.tree.map(lambda a: a + 1.0 if jnp.issubdtype(a.dtype, jnp.floating) else a, state)
  assert problem.params_loss(moved) is not loss_fn
  at_moved = problem.params_loss(moved, train=False)(params, X, Y)
  at_state = problem.params_loss(state, train=False)(params, X, Y)
  expected = smoothed_nll(problem.module(params, moved), (X, Y))
  np.testing.assert_allclose(at_moved, expected, rtol=1e-6)
  assert abs(float(at_moved) - float(at_state)) > 1e-3


def test_sweep_arguments_are_refused_by_name():
  with pytest.raises(ValueError, match="batch_size is required"):
    sweep.run(PROBLEM, optim.sgd, {"learning_rate": [0.1]}, steps=4, eval_every=2)
  with pytest.raises(ValueError, match="unknown sweep axis 'momentum'"):
    sweep.run(PROBLEM, optim.sgd, {"momentum": [0.9]}, steps=4, eval_every=2, batch_size=8)
  with pytest.raises(ValueError, match="sweep axis 'max_norm': max_norm > 0"):
    sweep.run(
      PROBLEM,
      checked_clipped_adam,
      {"learning_rate": [0.1], "max_norm": [1.0, -1.0]},
      steps=4,
      eval_every=2,
      batch_size=8,
    )


def checked_clipped_adam(learning_rate, max_norm):
  if not max_norm > 0:
    raise ValueError(f"max_norm > 0 is required, got {max_norm}")
  return clipped_adam(learning_rate, max_norm)


OWN_PROBLEM = """
import jax, jax.numpy as jnp, optax
from flax import nnx
from jaxopt_study import Problem, data

class Net(nnx.Module):
  def __init__(self, rngs):
    self.hidden = nnx.Linear(64, 16, rngs=rngs)
    self.out = nnx.Linear(16, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(jnp.tanh(self.hidden(x)))

def make_problem():
  d = data.load_digits()
  nll = lambda m, b: optax.softmax_cross_entropy_with_integer_labels(m(b[0]), b[1]).mean()
  return Problem(model=Net, loss=nll, train_data=(d.x_train[:400], d.y_train[:400]),
                 heldout_data=(d.x_test, d.y_test))
"""

OWN_CONFIG = """
import ml_collections

def get_config():
  return ml_collections.ConfigDict({
    "problem": "problem.py:make_problem",
    "seed": 0, "steps": 20, "batch_size": 32, "learning_rate": 0.1, "eval_every": 10,
    "optimizer": {"name": "momentum", "momentum": 0.9},
    "sweep": {"learning_rate": [0.05, 0.1]},
  })
"""


@pytest.fixture(scope="module")
def own_config(tmp_path_factory):
  folder = tmp_path_factory.mktemp("elsewhere")
  (folder / "problem.py").write_text(textwrap.dedent(OWN_PROBLEM))
  (folder / "own.py").write_text(textwrap.dedent(OWN_CONFIG))
  return folder / "own.py"


@pytest.mark.slow  # the CLI end to end
def test_a_config_outside_the_repository_runs_its_own_problem(own_config, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # neither the config's folder nor the repository
  out = tmp_path / "run"
  command = ["run", str(own_config), "--out", str(out), "--no-progress"]
  assert cli.main([*command, "--set", "sweep.seed=[0, 1]"]) == 0
  table = read_csv(out / "results.csv")
  assert [(r["learning_rate"], r["seed"]) for r in table] == [
    (0.05, 0.0),
    (0.05, 1.0),
    (0.1, 0.0),
    (0.1, 1.0),
  ]
  assert "final_test_error" not in table[0] and "final_test_loss" in table[0]
  config = json.loads((out / "config.json").read_text())
  assert config["problem"] == f"{own_config.parent / 'problem.py'}:make_problem"
  assert {"train_loss.png", "test_loss.png", "report.html", "params.npz"} <= {
    p.name for p in out.iterdir()
  }
  assert cli.main(["spectrum", str(out), "--member", "m0000"]) == 0
  assert (
    cli.main(["spectrum", str(out), "--member", "m0000", "--method", "lanczos", "--k", "5"]) == 0
  )
  exact = read_csv(out / "spectrum-exact.csv")
  lanczos = read_csv(out / "spectrum-lanczos.csv")
  assert len(exact) == 64 * 16 + 16 + 16 * 10 + 10 and len(lanczos) < len(exact)
  np.testing.assert_allclose(lanczos[-1]["eigenvalue"], exact[-1]["eigenvalue"], rtol=1e-3)
  for method in ("exact", "lanczos"):
    verdict = json.loads((out / f"classification-{method}.json").read_text())
    assert verdict["method"] == method and verdict["member"] == "m0000"


def test_set_of_a_field_a_sweep_axis_overrides_is_refused():
  config = ml_collections.ConfigDict(
    {
      "learning_rate": 0.1,
      "model": {"init_scale": 1.0},
      "optimizer": {"name": "adam", "b1": 0.9},
      "sweep": {"learning_rate": [0.1, 0.3], "init_scale": [1.0, 2.0], "b1": [0.8]},
    }
  )
  for field, axis in (
    ("learning_rate", "learning_rate"),
    ("model.init_scale", "init_scale"),
    ("optimizer.b1", "b1"),
  ):
    with pytest.raises(ConfigError, match=f"--set {field}: the sweep axis sweep.{axis}="):
      apply_overrides(config, [f"{field}=0.5"])
  added = apply_overrides(config, ["sweep.seed=[0, 1, 2]", "sweep.learning_rate=[1.0]"])
  assert added.sweep.seed == [0, 1, 2] and added.sweep.learning_rate == [1.0]
  with pytest.raises(ConfigError, match="a sweep axis is a non-empty list"):
    apply_overrides(config, ["sweep.seed=3"])


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_spectrum_of_a_sweep_run_folder(tmp_path):
  out = tmp_path / "sweep"
  problem = problem_lib.builtin("mlp", DIGITS, width=4, depth=1)
  sweep.run(
    problem,
    optim.sgd,
    {"learning_rate": [0.1, 0.5]},
    steps=10,
    eval_every=5,
    batch_size=64,
    out_dir=out,
  )
  with pytest.raises(ValueError, match="problem=your_problem"):
    analyze.spectrum_of_run(out)
  verdict = analyze.spectrum_of_run(out, problem=problem, member="m0001")
  pure = problem_lib.pure(problem)
  params, state = pure.initial(0)
  from jaxopt_study.results import load_member_state

  params, state = load_member_state(out / "params.npz", "m0001", params, state)
  flat, unravel = jax.flatten_util.ravel_pytree(params)

  def loss(v):
    module = pure.module(unravel(v), state, train=True)
    return problem.loss(module, problem.train_data)

  reference = np.linalg.eigvalsh(np.asarray(jax.hessian(loss)(flat), np.float64))
  assert verdict["lambda_max"] == pytest.approx(reference[-1], rel=1e-4)
  assert verdict["lambda_min"] == pytest.approx(reference[0], abs=1e-4 * reference[-1])
  # another problem than the one trained (its data, its loss) is refused, naming what differs
  fewer = problem_lib.builtin(
    "mlp",
    DIGITS._replace(x_train=DIGITS.x_train[:100], y_train=DIGITS.y_train[:100]),
    width=4,
    depth=1,
  )
  with pytest.raises(ValueError, match="trained on other training data than the problem given"):
    analyze.spectrum_of_run(out, problem=fewer, member="m0001")
  scaled = problem_lib.Problem(
    model=problem.model,
    loss=lambda model, batch: 3.0 * problem.loss(model, batch),
    train_data=problem.train_data,
    heldout_data=problem.heldout_data,
    metrics=problem.metrics,
    init=problem.init,
  )
  with pytest.warns(UserWarning, match="the problem's loss differ from the run's record"):
    scaled_verdict = analyze.spectrum_of_run(out, problem=scaled, member="m0001")
  assert scaled_verdict["lambda_max"] == pytest.approx(3 * reference[-1], rel=1e-4)


def test_data_given_as_a_dict_is_refused_as_a_whole():
  """A dict of arrays was refused as "train_data[0] is a dict", an index the user never wrote."""
  with pytest.raises(
    ValueError, match="train_data is a dict: give a tuple of arrays, e.g. \\(x, y\\)"
  ):
    Problem(model=TinyCNN, loss=integer_nll, train_data={"x": X, "y": Y})


def integer_nll(model, batch):
  return optax.softmax_cross_entropy_with_integer_labels(model(batch[0]), batch[1]).mean()


def test_a_loss_not_finite_before_any_update_is_named_not_called_a_divergence():
  """A label outside the classes made the loss NaN from step 0: train.train said nothing and
  sweep.run flagged every member "diverged at step 0", which blames the learning rate. Both warn
  now that the loss is not finite before any update, naming the runs."""
  labels = np.asarray(Y).copy()
  labels[0] = 10  # ten classes: 0 ... 9
  bad = Problem(model=TinyCNN, loss=integer_nll, train_data=(X, labels))
  options = dict(steps=2, eval_every=2, batch_size=16)
  with pytest.warns(UserWarning, match="loss at step 0, before any update, is not finite for the"):
    alone = train.train(bad, optim.sgd(0.1), **options)
  assert not np.isfinite(alone.history["train_loss"][0])
  with pytest.warns(UserWarning, match="not finite for m0000, m0001: check the data"):
    sweep.run(bad, optim.sgd, {"learning_rate": [0.1, 0.01]}, **options)
  good = Problem(model=TinyCNN, loss=integer_nll, train_data=(X, Y))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    train.train(good, optim.sgd(0.1), **options)
  # held-out labels one class off: the held-out loss is NaN (it said nothing)
  bad_heldout = Problem(
    model=TinyCNN, loss=integer_nll, train_data=(X, Y), heldout_data=(X, labels)
  )
  with pytest.warns(UserWarning, match="held-out loss at step 0, before any update, is not finite"):
    train.train(bad_heldout, optim.sgd(0.1), **options)
  with pytest.warns(UserWarning, match="held-out loss .* not finite for m0000, m0001"):
    sweep.run(bad_heldout, optim.sgd, {"learning_rate": [0.1, 0.01]}, **options)


def test_an_integer_metric_is_swept_without_a_warning_and_as_alone():
  """A count of errors (int32): its padding blocks were NaN cast to int32, which NumPy warned
  of; the values were and are those of the run alone."""
  counted = Problem(
    model=TinyCNN,
    loss=integer_nll,
    train_data=(X, Y),
    heldout_data=(X[:50], Y[:50]),
    metrics={"errors": lambda m, b: jnp.sum(m(b[0]).argmax(-1) != b[1])},
  )
  options = dict(steps=6, eval_every=2, batch_size=16)
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)
    swept = sweep.run(counted, optim.sgd, {"learning_rate": [0.05, 0.1]}, **options)
  alone = train.train(counted, optim.sgd(0.1), **options)
  values = [
    r["value"] for r in swept.history if r["member"] == "m0001" and r["metric"] == "test_errors"
  ]
  np.testing.assert_array_equal(values, alone.history["test_errors"])


class LogisticRegression(nnx.Module):
  """A weight vector and a temperature: no parameter of ndim ≥ 2, no kernel to scale."""

  def __init__(self, rngs: nnx.Rngs):
    self.w = nnx.Param(jax.random.normal(rngs.params(), (64,)))
    self.temperature = nnx.Param(jnp.ones(()))

  def __call__(self, x):
    z = x @ self.w * self.temperature
    return jnp.stack([jnp.zeros_like(z), z], axis=-1)


def test_an_init_scale_that_would_scale_nothing_is_refused_by_name():
  """Every init scale trained the same network, silently, for a model without kernels."""
  binary = Problem(model=LogisticRegression, loss=integer_nll, train_data=(X, Y % 2))
  options = dict(steps=2, eval_every=2, batch_size=16)
  with pytest.raises(ValueError, match=r"sweep axis 'init_scale': init_scale=0.5 would change"):
    sweep.run(binary, optim.sgd, {"init_scale": [1.0, 0.5]}, learning_rate=0.1, **options)
  with pytest.raises(ValueError, match=r"train: init_scale=2.0 would change nothing.*\['w'\]"):
    train.train(binary, optim.sgd(0.1), init_scale=2.0, **options)
  train.train(binary, optim.sgd(0.1), **options)  # at scale 1, nothing to refuse
  own_rule = dataclasses.replace(
    binary, init=lambda params, scale: jax.tree.map(lambda p: p * scale, params)
  )
  scaled = train.train(own_rule, optim.sgd(0.1), init_scale=2.0, **options)
  alone = train.train(own_rule, optim.sgd(0.1), **options)
  assert scaled.history["train_loss"][0] != alone.history["train_loss"][0]


def test_numpy_scalars_as_axis_values_run_and_are_written_as_numbers(tmp_path):
  """Rates from np.array(..., np.float32) were refused as "not a finite number"; taken now, they
  train as the same Python floats and config.json and results.csv hold plain numbers."""
  rates = list(np.array([0.05, 0.1], np.float32))
  options = dict(steps=10, eval_every=5, batch_size=32)
  ours = sweep.run(PROBLEM, optim.sgd, {"learning_rate": rates}, out_dir=tmp_path / "r", **options)
  plain = sweep.run(PROBLEM, optim.sgd, {"learning_rate": [float(r) for r in rates]}, **options)
  assert ours.table == plain.table
  config = json.loads((tmp_path / "r" / "config.json").read_text())
  assert config["axes"]["learning_rate"] == [float(r) for r in rates]


@pytest.mark.slow  # an integration test of several compiled programs (pytest -m slow)
def test_a_sweep_of_a_user_problem_resumes_from_its_folder(tmp_path):
  """Started again on the same out_dir, finished members are read back, not recomputed; a
  different problem, other data of the same shapes, another optimizer, an edited loss or model
  factory in the same folder is refused (each once returned the first run's members as its
  own); a folder an earlier release wrote, without the last two in inputs.json, resumes."""
  axes = {"learning_rate": [0.05, 0.1], "seed": [0, 1]}
  options = dict(steps=10, eval_every=5, batch_size=32, out_dir=tmp_path / "run")
  first = sweep.run(PROBLEM, optim.sgd, axes, **options)
  again = sweep.run(PROBLEM, optim.sgd, axes, **options)
  assert first.stats.member_steps == 40 and again.stats.member_steps == 0
  assert again.table == first.table
  assert read_csv(tmp_path / "run" / "results.csv")[3]["member"] == "m0003"
  other = make_problem(batchnorm=True)
  with pytest.raises(ValueError, match="holds a run of a different config"):
    sweep.run(other, optim.sgd, axes, **options)
  other = r"other code, data, model, loss or optimizer \(fields {} differ"
  relabelled = dataclasses.replace(PROBLEM, train_data=(X, (Y + 1) % 10))
  with pytest.raises(ValueError, match=other.format("train_data")):
    sweep.run(relabelled, optim.sgd, axes, **options)
  with pytest.raises(ValueError, match=other.format("optimizer")):
    sweep.run(PROBLEM, optim.momentum, axes, **options)

  # the loss edited (another label smoothing closed over), the same name, data and optimizer:
  # the first run's members were returned as the new loss's
  def smoothed(smoothing):
    def smoothed_nll(model, batch):
      targets = optax.smooth_labels(jax.nn.one_hot(batch[1], 10), smoothing)
      return optax.softmax_cross_entropy(model(batch[0]), targets).mean()

    return smoothed_nll

  edited = options | {"out_dir": tmp_path / "edited"}
  sweep.run(dataclasses.replace(PROBLEM, loss=smoothed(0.1)), optim.sgd, axes, **edited)
  with pytest.raises(ValueError, match=other.format("loss")):
    sweep.run(dataclasses.replace(PROBLEM, loss=smoothed(0.5)), optim.sgd, axes, **edited)
  rebuilt = dataclasses.replace(PROBLEM, model=lambda rngs: TinyCNN(rngs))
  with pytest.raises(ValueError, match=other.format("model")):
    sweep.run(rebuilt, optim.sgd, axes, **options)
  # a folder whose inputs.json an earlier release wrote (no model, loss, init or metrics) resumes
  inputs = tmp_path / "run" / "inputs.json"
  recorded = json.loads(inputs.read_text())
  earlier = ("train_data", "heldout_data", "optimizer")
  inputs.write_text(json.dumps({k: recorded[k] for k in earlier}))
  assert sweep.run(PROBLEM, optim.sgd, axes, **options).table == first.table


def test_a_run_folder_tells_optimizer_factories_apart():
  """`runner.callable_identity`: equal for the same factory (also rebuilt), different for an
  edited one or one closing over another value; the package's own by name."""
  identity = sweep.runner.callable_identity

  def clipped(max_norm):
    return lambda learning_rate: optax.chain(
      optax.clip_by_global_norm(max_norm), optim.adam(learning_rate)
    )

  assert identity(clipped(1.0)) == identity(clipped(1.0)) != identity(clipped(2.0))
  assert identity(lambda learning_rate: optim.adam(learning_rate)) != identity(
    lambda learning_rate: optim.sgd(learning_rate)
  )
  assert identity(optim.adam) == "jaxopt_study.optim.first_order.adam"
  # an installed library's or Python's own by name: a new jax or numpy leaves old runs resumable
  assert identity(jax.nn.relu) == f"{jax.nn.relu.__module__}.relu"
  assert identity(np.mean) == "numpy.mean" and identity(functools.reduce) == "_functools.reduce"
  assert identity(functools.partial(optim.lbfgs, memory_size=3)) == (
    "partial(jaxopt_study.optim.quasi_newton.lbfgs, memory_size=3)"
  )
  # a partial's function argument by its identity, not its repr (its address, another in every
  # process: a rerun of the same script was refused), an array argument by its values
  activation = eval("lambda x: x * 2")  # a fresh function object at each eval, as in a new process
  relu_net = functools.partial(nnx.Linear, 4, activation=activation)
  assert "0x" not in identity(relu_net)
  assert identity(relu_net) == identity(
    functools.partial(nnx.Linear, 4, activation=eval("lambda x: x * 2"))
  )
  assert identity(functools.partial(np.add, np.ones(3))) != identity(
    functools.partial(np.add, np.zeros(3))
  )


@pytest.mark.parametrize("registered", [True, False])
def test_a_run_folder_tells_apart_functions_whose_module_globals_differ(
  tmp_path, monkeypatch, registered
):
  """An edited constant or helper of the loss's own file, a global a model class's method reads,
  an edited method or base class makes another identity (a rerun into the same folder resumed
  the old loss's members); the same file loaded again gives the same one. Also for a file run
  with no entry in `sys.modules`, as the CLI runs a problem file, where Python finds no class's
  source."""
  import importlib.util

  source = textwrap.dedent(
    """
    import jax.numpy as jnp
    SMOOTHING = 0.0
    WIDTH = 4

    def helper(y):
      return jnp.eye(2)[y]

    def loss(model, batch):
      return jnp.mean((model(batch[0]) - helper(batch[1]) * (1 - SMOOTHING)) ** 2)

    class Base:
      def __call__(self, x):
        return x

    class Net(Base):
      def __init__(self, rngs):
        self.width = WIDTH
    """
  )

  def identities(text):
    path = tmp_path / "user_problem.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("user_problem", path)
    module = importlib.util.module_from_spec(spec)
    if registered:
      monkeypatch.setitem(sys.modules, "user_problem", module)
    spec.loader.exec_module(module)
    identity = sweep.runner.callable_identity
    return identity(module.loss), identity(module.Net)

  loss, net = identities(source)
  assert identities(source) == (loss, net)
  assert identities(source.replace("SMOOTHING = 0.0", "SMOOTHING = 0.5"))[0] != loss
  assert identities(source.replace("[y]", "[1 - y]"))[0] != loss  # the helper edited
  wider = identities(source.replace("WIDTH = 4", "WIDTH = 8"))  # read by Net's method only
  assert wider[0] == loss and wider[1] != net
  assert identities(source.replace("return x", "return 2 * x"))[1] != net  # its base class edited
  assert identities(source.replace("= WIDTH", "= WIDTH + 1"))[1] != net  # its method edited


@pytest.mark.parametrize(
  ("field", "change", "message"),
  [
    ("y_train", lambda y: y.at[3].set(-1), "data.y_train holds class id -1, outside 0...9"),
    ("y_test", lambda y: y.at[5].set(10), "data.y_test holds class id 10, outside 0...9"),
    ("y_test", lambda y: y.astype(jnp.float32), "data.y_test must hold one integer class id"),
    ("y_train", lambda y: y[:, None], r"of shape \(1347, 1\)"),
  ],
)
def test_builtin_classification_refuses_labels_that_are_not_class_ids(field, change, message):
  """A label −1 would read the last class and a held-out class 10 of 10 has no output unit: both
  refused when the problem is built, naming the array, before any model is made."""
  data = DIGITS._replace(**{field: change(getattr(DIGITS, field))})
  with pytest.raises(ValueError, match=message):
    problem_lib.builtin("mlp", data, width=4, depth=1)


def test_builtin_regression_refuses_targets_of_one_dimension():
  """1-D float targets were read as class ids (out_features int(max y) + 1) and failed in the
  loss with "predictions (2, 4) and targets (2,) differ"; refused when built, saying y[:, None]."""
  data = DIGITS._replace(y_train=DIGITS.y_train * 0.3, y_test=DIGITS.y_test * 0.3)
  with pytest.raises(ValueError, match=r"'mse': data.y_train has shape \(1347,\).*y\[:, None\]"):
    problem_lib.builtin("mlp", data, loss="mse", width=4, depth=1)
