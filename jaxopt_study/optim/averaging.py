"""Polyak averaging of the iterates, Goodfellow et al. (2016) §8.7.3 (Polyak & Juditsky 1992).

`polyak_average(inner)` steps exactly as `inner` does and keeps, beside the inner state, an average
of the points visited; `averaged_params(state)` reads it, wherever the averaging sits in a chain.
"""

from typing import Any, Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxopt_study import validate

_MODES = ("mean", "ema")


class PolyakState(NamedTuple):
  """State of `polyak_average`."""

  inner_state: optax.OptState  # the wrapped transformation's state
  avg_params: optax.Params  # θ̂_t: the average of the iterates θ_1 ... θ_t (θ_0 before any step)
  count: chex.Array  # t: the number of updates done so far (int32 scalar)


def _as_array(leaf: Any) -> Any:
  """θ̂_0 = θ_0 as an array; a `jax.ShapeDtypeStruct` (abstract init, to plan a sharded state)
  stays as it is: it already says the shape, dtype and sharding θ̂ will have."""
  return leaf if isinstance(leaf, jax.ShapeDtypeStruct) else jnp.asarray(leaf)


def polyak_average(
  inner: optax.GradientTransformation,
  mode: Literal["mean", "ema"] = "mean",
  decay: float = 0.99,
) -> optax.GradientTransformationExtraArgs:
  """Polyak averaging, Goodfellow et al. (2016) §8.7.3: average the points the optimizer visits.

  With θ_t = θ_{t−1} + u_t the params after the t-th update u_t of `inner`:

  .. math::
    \\text{mean:}  θ̂_t = \\frac{1}{t} \\sum_{i=1}^{t} θ_i  (θ_0 excluded; θ̂_0 = θ_0);
    \\text{ema:}   θ̂_t = β θ̂_{t−1} + (1 − β) θ_t,  θ̂_0 = θ_0,

  the mean for convex problems, the exponential moving average (β = `decay`) for non-convex ones,
  where points visited long ago may be far from the current basin (§8.7.3). The mean is kept
  incrementally, θ̂_t = θ̂_{t−1} + (θ_t − θ̂_{t−1}) / t. The updates returned are the inner ones,
  unchanged: the averaging only watches, and `averaged_params(state)` reads θ̂_t.

  Args:
    inner: the transformation whose iterates are averaged.
    mode: `"mean"` (the arithmetic mean of all iterates) or `"ema"`.
    decay: β ∈ [0, 1), used by `"ema"`.

  Returns:
    An `optax.GradientTransformationExtraArgs` with state `PolyakState`; its `update` needs
    `params` (to know the iterates) and passes extra arguments on to `inner`.

  Example:
    >>> tx = polyak_average(optax.sgd(0.25), mode="mean")
    >>> params = {"x": jnp.asarray(1.0)}
    >>> state = tx.init(params)
    >>> for _ in range(2):  # on x²: θ_1 = 0.5, θ_2 = 0.25
    ...   updates, state = tx.update({"x": 2 * params["x"]}, state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(float(averaged_params(state)["x"]))  # (θ_1 + θ_2) / 2
    0.375
  """
  where = "polyak_average"
  if mode not in _MODES:
    raise ValueError(f"{where}: mode={mode!r} must be one of {_MODES}")
  validate.require_unit_interval("decay", decay, where)
  validate.require_transformation("inner", inner, where)
  inner = optax.with_extra_args_support(inner)

  def init_fn(params: optax.Params) -> PolyakState:
    return PolyakState(
      inner_state=inner.init(params),
      avg_params=jax.tree.map(_as_array, params),
      count=jnp.zeros([], jnp.int32),
    )

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError(f"{where}: update needs params, the iterates it averages; pass params=")
    updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    new_params = optax.apply_updates(params, updates)
    count = optax.safe_increment(state.count)
    if mode == "mean":

      def average(avg, p):
        return avg + (p - avg) / count.astype(avg.dtype)
    else:

      def average(avg, p):
        return jnp.asarray(decay, avg.dtype) * avg + jnp.asarray(1 - decay, avg.dtype) * p

    avg_params = jax.tree.map(average, state.avg_params, new_params)
    return updates, PolyakState(inner_state=inner_state, avg_params=avg_params, count=count)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def averaged_params(state: Any) -> optax.Params:
  """θ̂: the averaged params held by the one `PolyakState` found in an optimizer state.

  The state may be a `PolyakState` or contain one anywhere (an `optax.chain`'s tuple, an
  `optax.inject_hyperparams` state, an `nnx.Optimizer`'s `opt_state`).

  Args:
    state: an optimizer state built by a transformation that includes `polyak_average`.

  Returns:
    The `avg_params` of that `PolyakState`.

  Raises:
    ValueError: if the state holds no `PolyakState`, or more than one.
  """
  found = [value for _, value in optax.tree.get_all_with_path(state, "PolyakState")]
  if len(found) != 1:
    raise ValueError(
      f"averaged_params: found {len(found)} PolyakState in the optimizer state, expected one; "
      "build the optimizer with polyak_average(inner) (once) to average its iterates"
    )
  return found[0].avg_params
