"""Shared test problems: a quadratic bowl, Rosenbrock's function and a tiny MLP loss.

Each problem is `loss(params) -> scalar` on a dict of arrays so that optimizers are exercised on a
pytree with more than one leaf.
"""

import jax
import jax.numpy as jnp
import numpy as np


def bowl_params(dtype=jnp.float64) -> dict:
  """Starting point of the bowl: two leaves of different shapes."""
  return {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]], dtype), "b": jnp.asarray([0.3, -0.7], dtype)}


def bowl_loss(params: dict) -> jax.Array:
  """An ill-conditioned convex quadratic ½ Σ c_i θ_i² with curvatures 0.1 ... 10."""
  w, b = params["w"], params["b"]
  cw = jnp.asarray([[0.1, 1.0], [2.0, 10.0]], w.dtype)
  cb = jnp.asarray([0.5, 4.0], b.dtype)
  return 0.5 * (jnp.sum(cw * w**2) + jnp.sum(cb * b**2))


def rosenbrock_params(dtype=jnp.float64) -> dict:
  return {"x": jnp.asarray([-1.2, 1.0, -0.5], dtype)}


def rosenbrock_loss(params: dict) -> jax.Array:
  """Rosenbrock's function in three dimensions: Σ 100 (x_{i+1} − x_i²)² + (1 − x_i)²."""
  x = params["x"]
  return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def tiny_mlp_problem(seed: int = 0, dtype=jnp.float64):
  """A 3-4-2 tanh MLP with a squared loss on 8 fixed random examples: returns (params, loss)."""
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(8, 3)), dtype)
  y = jnp.asarray(rng.normal(size=(8, 2)), dtype)
  params = {
    "w1": jnp.asarray(rng.normal(size=(3, 4)) * 0.5, dtype),
    "b1": jnp.zeros((4,), dtype),
    "w2": jnp.asarray(rng.normal(size=(4, 2)) * 0.5, dtype),
    "b2": jnp.zeros((2,), dtype),
  }

  def loss(p):
    h = jnp.tanh(x @ p["w1"] + p["b1"][None, :])
    return 0.5 * jnp.mean(jnp.sum((h @ p["w2"] + p["b2"][None, :] - y) ** 2, axis=-1))

  return params, loss


def deciding_settings(
  values: dict, errors, dofs, flags=None, ratio: bool = False, at_least: int = 1
) -> int:
  """How many of a claim's settings can decide, Bonferroni's count for its failing side, written
  out for the tests that judge verdicts by hand: a finite value (> 0 for a ratio), no flag, a
  finite error with at least 1 degree of freedom, and not an error of 0 (up to 1e-5 of the value,
  float32 rounding of the same count) from fewer than 6 values; at least `at_least` (a margin for
  one setting where none decides). `errors`, `dofs` and `flags` are dicts like `values`, or one
  value for all."""

  def at(shared, key):
    return shared.get(key) if isinstance(shared, dict) else shared

  count = 0
  for key, value in values.items():
    error, dof = at(errors, key), at(dofs, key)
    if at(flags, key) or value is None or not np.isfinite(value) or (ratio and not value > 0):
      continue
    if error is None or not np.isfinite(error) or dof is None or dof < 1:
      continue
    count += not (error <= 1e-5 * abs(value) and dof < 5)  # no spread: 0 up to float32 rounding
  return max(count, at_least)
