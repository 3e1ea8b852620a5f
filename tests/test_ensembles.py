"""Ensembles: averaged class probabilities and their 0-1 error, against numpy; snapshot ensembles
against single runs of `train.train` stopped at each cycle's end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxopt_study import Problem, ensembles, losses, optim, train

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 5))
Y = RNG.integers(0, 3, size=40)


class Linear(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.w = nnx.Param(jax_normal(rngs, (5, 3)))
    self.b = nnx.Param(jnp.zeros((3,)))

  def __call__(self, x):
    return x @ self.w + self.b[None, :]


def jax_normal(rngs, shape):
  return nnx.initializers.normal(1.0)(rngs.params(), shape)


def _problem() -> Problem:
  return Problem(
    model=Linear,
    loss=lambda m, batch: losses.softmax_cross_entropy(m(batch[0]), batch[1]),
    train_data=(jnp.asarray(X[:30], jnp.float32), Y[:30]),
    heldout_data=(jnp.asarray(X[30:], jnp.float32), Y[30:]),
  )


def _members(problem, seeds):
  return [nnx.split(problem.model(nnx.Rngs(s)), nnx.Param, ...)[1:] for s in seeds]


def _softmax(z):
  z = z - z.max(axis=1, keepdims=True)
  return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def test_the_ensemble_averages_the_members_probabilities():
  problem = _problem()
  members = _members(problem, [0, 1, 2])
  expected = np.mean(
    [_softmax(X[30:] @ np.asarray(p["w"][...]) + np.asarray(p["b"][...])) for p, _ in members],
    axis=0,
  )
  got = ensembles.ensemble_probabilities(problem, members, jnp.asarray(X[30:], jnp.float32))
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
  error = ensembles.ensemble_error(problem, members)  # the held-out data by default
  assert error == pytest.approx(np.mean(expected.argmax(axis=1) != Y[30:]))
  one = ensembles.ensemble_error(problem, members[:1], (jnp.asarray(X, jnp.float32), Y))
  w, b = (np.asarray(members[0][0][k][...]) for k in ("w", "b"))
  assert one == pytest.approx(np.mean((X @ w + b).argmax(axis=1) != Y))


def test_bad_ensembles_are_refused_by_name():
  problem = _problem()
  with pytest.raises(ValueError, match="members is empty"):
    ensembles.ensemble_error(problem, [])
  no_heldout = Problem(model=Linear, loss=problem.loss, train_data=problem.train_data)
  with pytest.raises(ValueError, match="no heldout_data"):
    ensembles.ensemble_error(no_heldout, _members(problem, [0]))
  x = jnp.asarray(X[30:], jnp.float32)
  with pytest.raises(ValueError, match=r"labels of shape \(10, 1\)"):  # would broadcast to (10, 10)
    ensembles.ensemble_error(problem, _members(problem, [0]), (x, Y[30:, None]))
  with pytest.raises(ValueError, match=r"the data holds 3 arrays; it takes \(inputs, labels\)"):
    ensembles.ensemble_error(problem, _members(problem, [0]), (x, x, Y[30:]))

  class OneLogit(nnx.Module):  # a sigmoid classifier: softmax of one logit is 1, every vote 0
    def __init__(self, rngs: nnx.Rngs):
      self.w = nnx.Param(jax_normal(rngs, (5, 1)))

    def __call__(self, x):
      return x @ self.w

  binary = Problem(model=OneLogit, loss=problem.loss, train_data=problem.train_data)
  with pytest.raises(ValueError, match=r"shape \(10, 1\); expected .* 2 classes or more"):
    ensembles.ensemble_error(binary, _members(binary, [0]), (x, Y[30:] % 2))


def test_a_diverged_member_is_refused_not_counted_as_votes_for_class_zero():
  """argmax of NaN is 0: a NaN member would add a confident vote for class 0 to every example."""
  problem = _problem()
  members = _members(problem, [0, 1])
  diverged = jax.tree.map(lambda a: a * jnp.nan, members[1][0])
  with pytest.raises(ValueError, match="member 1 predicts NaN"):
    ensembles.ensemble_error(problem, [members[0], (diverged, members[1][1])])


def test_a_float64_model_keeps_its_precision(x64):
  """Two logits 1e-9 apart: the float64 softmax tells them apart (a float32 one ties them, and
  the tie goes to class 0)."""

  class Close(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
      self.b = nnx.Param(jnp.asarray([1.0, 1.0 + 1e-9, 1.0], jnp.float64))

    def __call__(self, x):
      return x @ jnp.zeros((1, 3), jnp.float64) + self.b[None, :]

  x, y = np.zeros((4, 1)), np.ones(4, np.int32)
  close = Problem(model=Close, loss=lambda m, batch: m(batch[0]).sum(), train_data=(x, y))
  members = _members(close, [0])
  probabilities = ensembles.ensemble_probabilities(close, members, x)
  assert probabilities[0, 1] - probabilities[0, 0] == pytest.approx(1e-9 / 3, rel=1e-4)
  assert ensembles.ensemble_error(close, members, (x, y)) == 0.0


def _momentum(schedule):
  return optim.momentum(schedule, 0.9)


@pytest.fixture(scope="module")
def snapshot_run():
  """The problem and its SGDR run of `_snapshot_run`, shared (one compilation)."""
  problem = _problem()
  return problem, _snapshot_run(problem)


def _snapshot_run(problem, **options):
  arguments = {
    "learning_rate": 0.3,
    "cycles": 3,
    "steps_per_cycle": 4,
    "period_factor": 2,
    "min_learning_rate": 0.01,
    "batch_size": 8,
    "seed": 3,
  }
  return ensembles.snapshot_ensemble(problem, _momentum, **(arguments | options))


def _weights(params) -> tuple[np.ndarray, np.ndarray]:
  return np.asarray(params["w"][...]), np.asarray(params["b"][...])


def test_snapshots_are_one_run_stopped_at_each_cycle_end(snapshot_run):
  """Snapshot i = `train.train` for cycle_ends[i] + 1 steps of the same SGDR run (T_0 = 4, T_mult =
  2: cycles of 4, 8, 16 steps), momentum's velocity carried across the restarts."""
  problem, run = snapshot_run
  ends = optim.cycle_ends(4, 2, 28)
  assert ends == [3, 11, 27]
  np.testing.assert_array_equal(run.history["step"], [4, 12, 28])
  schedule = optim.cosine_warm_restarts(0.3, 4, 2, min_value=0.01)
  for i, ((params, _), end) in enumerate(zip(run.members, ends, strict=True)):
    steps = end + 1
    alone = train.train(
      problem, _momentum(schedule), steps=steps, batch_size=8, seed=3, eval_every=steps
    )
    for got, expected in zip(_weights(params), _weights(alone.params), strict=True):
      np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for metric in ("train_loss", "grad_norm", "test_loss"):
      assert run.history[metric][i] == pytest.approx(alone.history[metric][-1], rel=1e-5)
  # the optimizer state at the end is that of the whole run alone (`alone` ran all 28 steps)
  final = zip(jax.tree.leaves(run.opt_state), jax.tree.leaves(alone.opt_state), strict=True)
  for got, want in final:
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_a_restart_that_reset_the_optimizer_would_differ(snapshot_run):
  """The check above can fail: continuing from snapshot 0 with a fresh optimizer state (zero
  velocity, the schedule's count back at 0) and the minibatch order started again ends elsewhere
  than snapshot 1."""
  problem, run = snapshot_run
  params, model_state = run.members[0]
  restarted = train.train(
    problem,
    _momentum(optim.cosine_warm_restarts(0.3, 8, min_value=0.01)),
    steps=8,
    batch_size=8,
    seed=3,
    eval_every=8,
    params=params,
    model_state=model_state,
  )
  w_run, w_restarted = _weights(run.members[1][0])[0], _weights(restarted.params)[0]
  assert np.max(np.abs(w_run - w_restarted)) > 1e-3


def test_the_snapshot_ensemble_averages_the_snapshots_probabilities(snapshot_run):
  """`ensemble_error` of the snapshots, against numpy softmaxes of their weights."""
  problem, run = snapshot_run
  x_test, y_test = X[30:], Y[30:]
  probabilities = np.mean(
    [_softmax(x_test @ w + b) for w, b in (_weights(p) for p, _ in run.members)], axis=0
  )
  assert ensembles.ensemble_error(problem, run.members) == pytest.approx(
    np.mean(probabilities.argmax(axis=1) != y_test)
  )
  last_two = np.mean(
    [_softmax(x_test @ w + b) for w, b in (_weights(p) for p, _ in run.members[-2:])], axis=0
  )
  x = jnp.asarray(x_test, jnp.float32)
  got = ensembles.ensemble_probabilities(problem, run.members[-2:], x)
  np.testing.assert_allclose(got, last_two, rtol=1e-5, atol=1e-7)


def test_cycle_lengths_end_where_the_schedule_restarts():
  lengths = ensembles.cycle_lengths(5, 4, 3)
  np.testing.assert_array_equal(lengths, [5, 15, 45, 135])
  assert list(np.cumsum(lengths) - 1) == optim.cycle_ends(5, 3, int(lengths.sum()))
  # 10 · 2^69 steps: past int64 (it wrapped to "total steps=-10"), refused with the true total
  with pytest.raises(ValueError, match=f"total steps={10 * (2**70 - 1)}"):
    ensembles.cycle_lengths(10, 70, 2)


@pytest.mark.parametrize(
  ("options", "match"),
  [
    ({"cycles": 0}, "cycles"),
    ({"steps_per_cycle": 0}, "steps_per_cycle"),
    ({"period_factor": 0}, "period_factor"),
    ({"learning_rate": -1.0}, "learning_rate=-1.0"),
    ({"min_learning_rate": 1.0}, "min_learning_rate=1.0 must be <= learning_rate"),
    ({"batch_size": 31}, "batch_size"),
    ({"seed": -1}, "seed"),
  ],
)
def test_bad_snapshot_runs_are_refused_by_name(options, match):
  with pytest.raises(ValueError, match=match):
    _snapshot_run(_problem(), **options)


def test_the_optimizer_must_be_a_function_of_the_schedule():
  with pytest.raises(TypeError, match="schedule -> transformation"):
    ensembles.snapshot_ensemble(
      _problem(), optim.sgd(0.1), learning_rate=0.1, cycles=2, steps_per_cycle=3, batch_size=4
    )
