"""One-dimensional pictures of §8.1.1 and §8.2.2: the risk x·cos(πx), a rippled empirical risk,
their minimizers on a grid, and gradient descent kept inside an interval.

Zhang, Lipton, Li & Smola, *Dive into Deep Learning* (§12.1, "Optimization and Deep Learning"),
draw the risk f(x) = x·cos(πx) and an empirical risk g(x) = f(x) + 0.2·cos(5πx) on [0.5, 1.5]
to show that the minimizer of the empirical risk is not the minimizer of the risk (Goodfellow et
al. 2016, §8.1.1), and f on [−1, 2] to show a local and a global minimum (§8.2.2). Everything here
is a pure function of arrays; descent goes through `train.descend` with an Optax chain.
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax


def _numpy_or_jax(x: chex.Array):
  """numpy for a numpy array (float64 grids: near a minimum, neighbouring float32 values tie),
  jax.numpy otherwise (traced, differentiated)."""
  return np if isinstance(x, np.ndarray | float) else jnp


def risk(x: chex.Array) -> chex.Array:
  """f(x) = x·cos(πx), the risk of Zhang et al. (§12.1); numpy in, numpy out."""
  xp = _numpy_or_jax(x)
  return x * xp.cos(np.pi * x)


def empirical_risk(x: chex.Array, amplitude: float = 0.2, frequency: float = 5.0) -> chex.Array:
  """g(x) = f(x) + a·cos(kπx): the risk plus the ripple a finite sample adds (a = 0.2, k = 5 in
  Zhang et al. §12.1); numpy in, numpy out."""
  xp = _numpy_or_jax(x)
  return risk(x) + amplitude * xp.cos(frequency * np.pi * x)


def grid(low: float, high: float, num: int) -> np.ndarray:
  """`num` evenly spaced points of [low, high] in float64, the ends included."""
  if not (np.isfinite(low) and np.isfinite(high) and low < high):
    raise ValueError(f"grid: the interval [{low}, {high}] must be finite with low < high")
  if int(num) != num or num < 3:
    raise ValueError(f"grid: num={num!r} must be an integer ≥ 3")
  return np.linspace(low, high, int(num))


def grid_argmin(values: np.ndarray, points: np.ndarray) -> float:
  """The point of `points` with the lowest value (the first one on a tie)."""
  return float(points[int(np.argmin(values))])


def interior_minima(values: np.ndarray, points: np.ndarray) -> np.ndarray:
  """The grid points strictly lower than both neighbours: the interior local minima."""
  inner = (values[1:-1] < values[:-2]) & (values[1:-1] < values[2:])
  return points[1:-1][inner]


def interior_maxima(values: np.ndarray, points: np.ndarray) -> np.ndarray:
  """The grid points strictly higher than both neighbours: the interior local maxima."""
  return interior_minima(-values, points)


class StayInIntervalState(NamedTuple):
  """`stay_in_interval` keeps no statistics."""


def stay_in_interval(low: float, high: float) -> optax.GradientTransformation:
  """Projects every step onto the box [low, high]: the update u becomes clip(θ + u) − θ.

  Placed last in an Optax chain, it turns any method into its projected version (projected
  gradient descent, Nocedal & Wright 2006, §16.7), so a descent on [low, high] never leaves it.
  It needs the parameters: ``update(updates, state, params)``.
  """
  if not low < high:
    raise ValueError(f"stay_in_interval: low={low!r} must be < high={high!r}")

  def init_fn(params: optax.Params) -> StayInIntervalState:
    del params
    return StayInIntervalState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("stay_in_interval: update needs params (it projects θ + u)")
    projected = jax.tree.map(lambda u, p: jnp.clip(p + u, low, high) - p, updates, params)
    return projected, state

  return optax.GradientTransformation(init_fn, update_fn)
