"""The training loop against a plain float64 reference loop, analytic answers, its contract."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxopt_study import Problem, losses, optim, sweep, train
from jaxopt_study import data as data_lib
from jaxopt_study import problem as problem_lib


class LinearSoftmax(nnx.Module):
  """Multinomial logistic regression 64 -> 10, a module with neither kernel_init nor `train`."""

  def __init__(self, rngs: nnx.Rngs, dtype=jnp.float64):
    del rngs  # fixed weights, so that the reference loop starts from the same point
    rng = np.random.default_rng(0)
    self.w = nnx.Param(jnp.asarray(rng.normal(size=(64, 10)) * 0.1, dtype))
    self.b = nnx.Param(jnp.zeros((10,), dtype))

  def __call__(self, x):
    return x @ self.w + self.b[None, :]


def _nll(model, batch):
  return losses.softmax_cross_entropy(model(batch[0]), batch[1])


def _error(model, batch):
  return losses.zero_one_error(model(batch[0]), batch[1])


def _problem(data: data_lib.Dataset, dtype=jnp.float64) -> Problem:
  return Problem(
    model=lambda rngs: LinearSoftmax(rngs, dtype),
    loss=_nll,
    train_data=(data.x_train, data.y_train),
    heldout_data=(data.x_test, data.y_test),
    metrics={"error": _error},
  )


def _initial(problem: Problem) -> dict[str, np.ndarray]:
  module = problem.model(nnx.Rngs(0))
  return {"w": np.asarray(module.w[...]), "b": np.asarray(module.b[...])}


def _digits64(num_train=200, num_test=100) -> data_lib.Dataset:
  d = data_lib.load_digits()
  return data_lib.Dataset(
    *(
      jnp.asarray(a, jnp.float64) if a.dtype.kind == "f" else a
      for a in (
        d.x_train[:num_train],
        d.y_train[:num_train],
        d.x_test[:num_test],
        d.y_test[:num_test],
      )
    )
  )


def _numpy_nll_and_grad(w, b, x, y):
  logits = x @ w + b
  logits = logits - logits.max(axis=1, keepdims=True)
  p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  nll = -np.mean(np.log(p[np.arange(len(y)), y]))
  d = p.copy()
  d[np.arange(len(y)), y] -= 1.0
  d /= len(y)
  return nll, x.T @ d, d.sum(axis=0)


@pytest.mark.parametrize("sampling", ["epoch", "replacement"])
def test_sgd_matches_a_plain_numpy_loop(x64, sampling):
  data = _digits64()
  problem = _problem(data)
  steps, batch, eval_every, lr = 23, 32, 5, 0.3
  schedule = optim.linear_decay(lr, 0.01 * lr, 15)
  result = train.train(
    problem,
    optim.sgd(schedule),
    steps=steps,
    batch_size=batch,
    eval_every=eval_every,
    sampling=sampling,
    seed=3,
    log_minibatches=True,
  )
  # Reference: Algorithm 8.1 written out in numpy, with the same minibatch indices.
  key = jax.random.key(3)
  w, b = _initial(problem)["w"], _initial(problem)["b"]
  x, y = np.asarray(data.x_train), np.asarray(data.y_train)
  ref_loss, ref_norm, minibatch_loss, minibatch_norm = [], [], [], []
  for k in range(steps + 1):
    if k % eval_every == 0 or k == steps:
      nll, gw, gb = _numpy_nll_and_grad(w, b, x, y)
      ref_loss.append(nll)
      ref_norm.append(np.sqrt(np.sum(gw**2) + np.sum(gb**2)))
    if k == steps:
      break
    idx = np.asarray(data_lib.batch_indices(key, k, len(y), batch, sampling))
    nll, gw, gb = _numpy_nll_and_grad(w, b, x[idx], y[idx])
    minibatch_loss.append(nll)
    minibatch_norm.append(np.sqrt(np.sum(gw**2) + np.sum(gb**2)))
    eps_k = lr + (0.01 * lr - lr) * min(k, 15) / 15
    w, b = w - eps_k * gw, b - eps_k * gb
  np.testing.assert_array_equal(result.history["step"], [0, 5, 10, 15, 20, 23])
  np.testing.assert_allclose(result.params["w"], w, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(result.params["b"], b, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(result.history["train_loss"], ref_loss, rtol=1e-9)
  np.testing.assert_allclose(result.history["grad_norm"], ref_norm, rtol=1e-9)
  # the per-step log: each step's own minibatch at θ_t (Fig. 8.1 plots these norms)
  np.testing.assert_array_equal(result.minibatches["step"], np.arange(steps))
  np.testing.assert_allclose(result.minibatches["loss"], minibatch_loss, rtol=1e-9)
  np.testing.assert_allclose(result.minibatches["grad_norm"], minibatch_norm, rtol=1e-9)


def test_l2_penalty_matches_a_plain_numpy_loop(x64):
  """`l2_penalty=α`: SGD on J + (α/2)‖θ‖² (§7.1.1, every parameter), and `train_loss` is that
  objective, while `test_loss` is the NLL alone."""
  data = _digits64()
  problem = _problem(data)
  steps, batch, lr, alpha = 12, 40, 0.5, 0.3
  result = train.train(
    problem,
    optim.sgd(lr),
    steps=steps,
    batch_size=batch,
    eval_every=steps,
    seed=1,
    l2_penalty=alpha,
  )
  key = jax.random.key(1)
  w, b = _initial(problem)["w"], _initial(problem)["b"]
  x, y = np.asarray(data.x_train), np.asarray(data.y_train)

  def objective(w, b, idx):
    nll, gw, gb = _numpy_nll_and_grad(w, b, x[idx], y[idx])
    penalty = 0.5 * alpha * (np.sum(w**2) + np.sum(b**2))
    return nll + penalty, gw + alpha * w, gb + alpha * b

  everything = np.arange(len(y))
  first = objective(w, b, everything)[0]
  for k in range(steps):
    idx = np.asarray(data_lib.batch_indices(key, k, len(y), batch, "epoch"))
    _, gw, gb = objective(w, b, idx)
    w, b = w - lr * gw, b - lr * gb
  np.testing.assert_allclose(result.params["w"], w, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(result.params["b"], b, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(
    result.history["train_loss"], [first, objective(w, b, everything)[0]], rtol=1e-9
  )
  test_nll, _, _ = _numpy_nll_and_grad(w, b, np.asarray(data.x_test), np.asarray(data.y_test))
  np.testing.assert_allclose(result.history["test_loss"][-1], test_nll, rtol=1e-9)


def test_errors_are_zero_one_and_match_predictions(x64):
  data = _digits64()
  result = train.train(_problem(data), optim.sgd(0.5), steps=10, batch_size=50, eval_every=10)
  logits = np.asarray(data.x_test) @ np.asarray(result.params["w"]) + np.asarray(result.params["b"])
  expected = np.mean(logits.argmax(axis=1) != np.asarray(data.y_test))
  assert result.history["test_error"][-1] == pytest.approx(expected, abs=1e-12)
  assert result.history["train_loss"][-1] < 0.5 * result.history["train_loss"][0]


def test_best_params_are_those_of_the_best_evaluation(x64):
  problem = _problem(_digits64())
  kwargs = dict(batch_size=16, eval_every=2, seed=1, early_stopping="test_error")
  result = train.train(problem, optim.sgd(2.0), steps=40, **kwargs)
  best = int(np.argmin(result.history["test_error"]))
  assert result.best_step == result.history["step"][best]
  if result.best_step > 0:
    short = train.train(problem, optim.sgd(2.0), steps=result.best_step, **kwargs)
    np.testing.assert_allclose(short.params["w"], result.best_params["w"], rtol=1e-12)


def test_patience_freezes_the_parameters_after_stopping(x64):
  problem = _problem(_digits64())
  stopping = dict(early_stopping="test_error", patience=3)
  result = train.train(
    problem, optim.sgd(3.0), steps=60, batch_size=8, eval_every=1, seed=2, **stopping
  )
  errors = result.history["test_error"]
  best_so_far = np.minimum.accumulate(errors)
  # The first evaluation that is the 3rd in a row without a strict improvement stops the run.
  since, stop = 0, None
  for i in range(1, len(errors)):
    since = 0 if errors[i] < best_so_far[i - 1] else since + 1
    if since >= 3:
      stop = i
      break
  assert stop is not None, "the test needs a run that stops; pick another seed"
  np.testing.assert_allclose(
    result.history["train_loss"][stop:], result.history["train_loss"][stop]
  )
  short = train.train(problem, optim.sgd(3.0), steps=stop, batch_size=8, eval_every=1, seed=2)
  np.testing.assert_allclose(short.params["w"], result.params["w"], rtol=1e-12)


def _accuracy(model, batch):
  return 1.0 - _error(model, batch)


def test_early_stopping_on_a_maximized_metric_keeps_its_highest_value(x64):
  """Accuracy = 1 − error, named in higher_is_better: early stopping and patience on its highest
  value stop where they stop on the error's lowest; the sweep's best_ column is its maximum."""
  data = _digits64()
  problem = dataclasses.replace(
    _problem(data), metrics={"error": _error, "accuracy": _accuracy}, higher_is_better=("accuracy",)
  )
  kwargs = dict(steps=60, batch_size=8, eval_every=1, seed=2, patience=3)
  by_error = train.train(problem, optim.sgd(3.0), early_stopping="test_error", **kwargs)
  by_accuracy = train.train(problem, optim.sgd(3.0), early_stopping="test_accuracy", **kwargs)
  accuracy = by_accuracy.history["test_accuracy"]
  assert by_error.best_step == by_accuracy.best_step > 0
  assert accuracy[by_accuracy.history["step"] == by_accuracy.best_step] == accuracy.max()
  np.testing.assert_array_equal(by_accuracy.best_params["w"], by_error.best_params["w"])
  np.testing.assert_array_equal(by_accuracy.params["w"], by_error.params["w"])
  swept = sweep.run(
    problem,
    optim.sgd,
    {"learning_rate": [3.0]},
    early_stopping="test_accuracy",
    **kwargs,
  )
  (row,) = swept.table
  assert row["best_test_accuracy"] == accuracy.max() and row["best_step"] == by_accuracy.best_step


def test_higher_is_better_names_metrics_not_name_endings(x64):
  """A metric named `norm` is maximized as train_norm and test_norm, never grad_norm (a name
  ending in _norm); a generator of names is taken whole."""
  norm = lambda model, batch: jnp.sum(model.w[...] ** 2)  # noqa: E731
  problem = dataclasses.replace(
    _problem(_digits64()), metrics={"norm": norm}, higher_is_better=(n for n in ["norm"])
  )
  assert problem.higher_is_better == ("norm",)
  assert problem.maximized_metrics() == ("train_norm", "test_norm")


@pytest.mark.parametrize(
  ("higher_is_better", "culprit"), [(("acc",), "'acc'"), ("error", "higher_is_better='error'")]
)
def test_higher_is_better_names_a_metric(x64, higher_is_better, culprit):
  with pytest.raises(ValueError, match=culprit):
    dataclasses.replace(_problem(_digits64()), higher_is_better=higher_is_better)


def test_extra_args_optimizer_reaches_the_least_squares_solution(x64):
  """optax.lbfgs needs value, grad and value_fn; full-batch it solves a least-squares problem."""
  d = data_lib.teacher_student(jax.random.key(0), 64, 16, 5, 8, 2, noise_std=0.1)
  data = data_lib.Dataset(*(jnp.asarray(a, jnp.float64) for a in d))
  problem = problem_lib.builtin("mlp", data, loss="mse", depth=0)
  result = train.train(problem, optax.lbfgs(), steps=30, batch_size=64, eval_every=10)
  assert "test_error" not in result.history  # regression reports no error it was not given
  x = np.hstack([np.asarray(data.x_train), np.ones((64, 1))])
  solution, *_ = np.linalg.lstsq(x, np.asarray(data.y_train), rcond=None)
  np.testing.assert_allclose(result.params["output"]["kernel"], solution[:5], atol=1e-8)
  np.testing.assert_allclose(result.params["output"]["bias"], solution[5], atol=1e-8)


def test_batchnorm_model_trains_and_updates_running_statistics():
  problem = problem_lib.builtin("mlp", data_lib.load_digits(), width=16, depth=2, batchnorm=True)
  result = train.train(problem, optim.adam(1e-2), steps=60, batch_size=64, eval_every=30)
  before = jax.tree.leaves(problem_lib.pure(problem).initial(0)[1])
  after = jax.tree.leaves(result.model_state)
  assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
  assert result.history["test_error"][-1] < 0.5 * result.history["test_error"][0]


@pytest.mark.parametrize(
  "kwargs, culprit",
  [
    (dict(steps=0), "steps"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=10_000), "batch_size"),
    (dict(eval_every=0), "eval_every"),
    (dict(early_stopping="test_accuracy"), "early_stopping"),
    (dict(patience=2), "patience"),
    (dict(init_scale=float("nan")), "init_scale"),
    (dict(sampling="random"), "sampling"),
    (dict(patience=0), "patience"),
    (dict(l2_penalty=-1.0), "l2_penalty"),
    (dict(l2_penalty=float("inf")), "l2_penalty"),
  ],
)
def test_bad_arguments_are_refused_by_name(kwargs, culprit):
  problem = _problem(data_lib.load_digits(), jnp.float32)
  arguments = dict(steps=10, batch_size=8, eval_every=5) | kwargs
  with pytest.raises(ValueError, match=culprit):
    train.train(problem, optim.sgd(0.1), **arguments)


def test_numpy_integer_steps_get_the_default_evaluations():
  """steps=np.int64(100) without eval_every was refused as "eval_every=None must be an integer":
  the default (50 evaluations) was computed for Python ints only."""
  problem = _problem(data_lib.load_digits(), jnp.float32)
  result = train.train(problem, optim.sgd(0.1), steps=np.int64(100), batch_size=8)
  np.testing.assert_array_equal(result.history["step"], np.arange(0, 101, 2))


@pytest.mark.parametrize(
  "optimizer, culprit",
  [
    ("adam", r"optimizer must be an Optax transformation .* got 'adam' \(str\)"),
    (optim.adam, "got the function adam, which builds one: call it"),
  ],
)
def test_an_optimizer_that_is_not_a_transformation_is_refused_by_name(optimizer, culprit):
  """Once "AttributeError: 'str' object has no attribute 'init'", from inside the loop."""
  problem = _problem(data_lib.load_digits(), jnp.float32)
  with pytest.raises(TypeError, match=culprit):
    train.train(problem, optimizer, steps=10, batch_size=8, eval_every=5)


def test_params_not_shaped_as_the_models_are_refused_by_name():
  """Once "Incorrect number of leaves, expected 4 leaves, but got 1" from the compiled loop."""
  problem = _problem(data_lib.load_digits(), jnp.float32)
  params, _ = problem_lib.pure(problem).initial(0)
  arguments = dict(steps=10, batch_size=8, eval_every=5)
  with pytest.raises(ValueError, match=r"params= has 1 arrays where the model has 2"):
    train.train(problem, optim.sgd(0.1), params={"w": jnp.zeros(3)}, **arguments)
  transposed = jax.tree.map(lambda a: a.T, params)
  with pytest.raises(ValueError, match=r"params= holds an array of shape \(10, \d+\) where"):
    train.train(problem, optim.sgd(0.1), params=transposed, **arguments)
  as_dict = train.train(problem, optim.sgd(0.1), params=nnx.to_pure_dict(params), **arguments)
  as_state = train.train(problem, optim.sgd(0.1), params=params, **arguments)
  np.testing.assert_array_equal(as_dict.history["train_loss"], as_state.history["train_loss"])


@pytest.mark.parametrize("sampling", ["epoch", "replacement"])
def test_masked_batches_start_with_the_batch_of_a_run_alone(sampling):
  """A member of batch size b in a group of max size m sees `batch_indices(key, step, n, b)`."""
  key, n, largest = jax.random.key(7), 1347, 1000
  for b in (1, 250, 333, 1000):
    for step in (0, 1, 3, 4, 5, 17):
      idx, weights = train.masked_batch_indices(key, step, n, jnp.int32(b), largest, sampling)
      alone = data_lib.batch_indices(key, step, n, b, sampling)
      np.testing.assert_array_equal(idx[:b], alone)
      np.testing.assert_array_equal(weights, np.arange(largest) < b)
      assert idx.shape == (largest,) and int(idx.max()) < n


def test_a_nonfinite_run_is_frozen_at_its_last_finite_parameters():
  problem = _problem(data_lib.load_digits(), jnp.float32)
  params, model_state = problem_lib.pure(problem).initial(0)
  loop = train.make_train_loop(problem, optim.sgd(1e38), batch_size=32, freeze_nonfinite=True)
  state, history = jax.jit(loop.run, static_argnums=3)(
    loop.init(params, model_state),
    problem_lib.as_data(problem),
    jax.random.key(0),
    None,
    jnp.asarray([0, 3, 3, 3], jnp.int32),
  )
  assert bool(state.diverged) and int(state.step) == 9
  at = int(state.diverged_at_step)
  assert 0 < at < 9
  assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(state.params))
  losses = np.asarray(history["train_loss"])
  frozen = losses[np.asarray([0, 3, 6, 9]) >= at]  # evaluated at θ_at, whatever it gives
  assert np.isfinite(losses[0]) and frozen.size >= 1
  np.testing.assert_array_equal(frozen, np.full_like(frozen, frozen[-1]))
  healthy = train.make_train_loop(problem, optim.sgd(0.1), batch_size=32, freeze_nonfinite=True)
  state, _ = healthy.run(
    healthy.init(params, model_state), problem_lib.as_data(problem), jax.random.key(0), None, [0, 3]
  )
  assert not bool(state.diverged) and int(state.diverged_at_step) == -1


def test_descend_matches_a_float64_loop_of_algorithm_8_1_at_the_recorded_steps():
  """θ ← θ − ε∇f(θ) on f = ½ Σ c_i θ_i², recorded at 0, 3, 6 and the last step 7."""
  curvatures = np.asarray([1.0, 10.0])

  def loss(theta):
    return 0.5 * jnp.sum(curvatures * theta**2)

  done = train.descend(
    loss, jnp.ones(2), optim.sgd(0.05), steps=7, every=3, record=lambda p, v: {"p": p, "f": v}
  )
  theta, expected = np.ones(2), {0: np.ones(2)}
  for step in range(1, 8):
    theta = theta - 0.05 * curvatures * theta
    expected[step] = theta
  recorded = np.stack([expected[s] for s in (0, 3, 6, 7)])
  np.testing.assert_allclose(done.records["p"], recorded, rtol=1e-6)
  np.testing.assert_allclose(done.records["f"], 0.5 * (recorded**2 @ curvatures), rtol=1e-6)
  np.testing.assert_allclose(done.params, theta, rtol=1e-6)


def test_descend_gives_line_searches_the_loss_and_vmaps_over_rates():
  def loss(theta):
    return 0.5 * jnp.sum(jnp.asarray([1.0, 10.0]) * theta**2)

  assert train.descend(loss, jnp.ones(2), optim.lbfgs(), steps=6).records[-1] < 1e-9
  rates = jnp.asarray([0.01, 0.1])
  curves = jax.vmap(
    lambda lr: (
      train.descend(
        loss, jnp.ones(2), optax.inject_hyperparams(optim.sgd)(learning_rate=lr), steps=2
      ).records
    )
  )(rates)
  for curve, lr in zip(curves, (0.01, 0.1), strict=True):
    theta = np.ones(2) * (1 - lr * np.asarray([1.0, 10.0])) ** 2
    np.testing.assert_allclose(curve[-1], 0.5 * (theta**2 @ np.asarray([1.0, 10.0])), rtol=1e-5)
  with pytest.raises(ValueError, match="descend: every=0"):
    train.descend(loss, jnp.ones(2), optim.sgd(0.1), steps=2, every=0)
