"""Ensembles: averaged class probabilities and their 0-1 error, against numpy."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxopt_study import Problem, ensembles, losses

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
