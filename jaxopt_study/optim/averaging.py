"""Polyak averaging of the iterates, Goodfellow et al. (2016) §8.7.3 (Polyak & Juditsky 1992).

`polyak_average(inner)` steps exactly as `inner` does and keeps, beside the inner state, an average
of the points visited; `averaged_params(state, params)` reads it, wherever the averaging sits in a
chain.
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
  avg_params: optax.Params  # θ̂_{t−1}: the average of θ_1 ... θ_{t−1} (θ_0 before the 2nd update)
  compensation: optax.Params  # the rounding error of avg_params (Kahan summation)
  weight: chex.Array  # w_t, the weight θ_t gets: 1/t (mean) or 1 − β (ema); 1 before any update
  count: chex.Array  # t: the number of updates done so far (int32 scalar)


def _as_array(leaf: Any) -> Any:
  """θ̂_0 = θ_0 as an array; a `jax.ShapeDtypeStruct` (abstract init, to plan a sharded state)
  stays as it is: it already says the shape, dtype and sharding θ̂ will have."""
  return leaf if isinstance(leaf, jax.ShapeDtypeStruct) else jnp.asarray(leaf)


def _zeros(leaf: Any) -> Any:
  return leaf if isinstance(leaf, jax.ShapeDtypeStruct) else jnp.zeros_like(leaf)


def _fold(avg: Any, compensation: Any, point: Any, weight: chex.Array) -> tuple[Any, Any]:
  """θ̂ ← θ̂ + w (θ − θ̂) with Kahan's compensated summation: the increments of a long run in
  float32 fall below half a rounding step of θ̂ (w = 1/t), and the plain sum then stops following
  the iterates; the compensation carries what each addition rounded away."""
  increment = jnp.asarray(weight, avg.dtype) * (point - avg) - compensation
  new = avg + increment
  return new, (new - avg) - increment


def polyak_average(
  inner: optax.GradientTransformation,
  mode: Literal["mean", "ema"] = "mean",
  decay: float = 0.99,
) -> optax.GradientTransformationExtraArgs:
  """Polyak averaging, Goodfellow et al. (2016) §8.7.3: average the points the optimizer visits.

  With θ_t the params after the t-th update:

  .. math::
    \\text{mean:}  θ̂_t = \\frac{1}{t} \\sum_{i=1}^{t} θ_i  (θ_0 excluded; θ̂_0 = θ_0);
    \\text{ema:}   θ̂_t = β θ̂_{t−1} + (1 − β) θ_t,  θ̂_0 = θ_0,

  the mean for convex problems, the exponential moving average (β = `decay`) for non-convex ones,
  where points visited long ago may be far from the current basin (§8.7.3). Both are kept
  incrementally, θ̂_t = θ̂_{t−1} + w_t (θ_t − θ̂_{t−1}) with w_t = 1/t or 1 − β, in compensated
  (Kahan) summation. The updates returned are the inner ones, unchanged: the averaging only
  watches. It averages the params each update is called at, θ_{t−1} at the t-th, which are the
  points visited whatever follows it in a chain (a learning rate, clipping, `optax.apply_every`);
  `averaged_params(state, params)` folds in the current point θ_t and returns θ̂_t.

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
    >>> print(float(averaged_params(state, params)["x"]))  # (θ_1 + θ_2) / 2
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
      compensation=jax.tree.map(_zeros, params),
      weight=jnp.ones([]),
      count=jnp.zeros([], jnp.int32),
    )

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      raise ValueError(f"{where}: update needs params, the iterates it averages; pass params=")
    updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    # θ_{t−1}, the point this update is called at, with weight w_{t−1} (θ_0 with weight 1: θ̂_0)
    folded = jax.tree.map(
      lambda a, c, p: _fold(a, c, p, state.weight), state.avg_params, state.compensation, params
    )
    avg_params = jax.tree.map(lambda _, pair: pair[0], state.avg_params, folded)
    compensation = jax.tree.map(lambda _, pair: pair[1], state.avg_params, folded)
    count = optax.safe_increment(state.count)
    weight = 1.0 / count.astype(state.weight.dtype) if mode == "mean" else 1.0 - decay
    return updates, PolyakState(
      inner_state=inner_state,
      avg_params=avg_params,
      compensation=compensation,
      weight=jnp.asarray(weight, state.weight.dtype),
      count=count,
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def averaged_params(state: Any, params: optax.Params) -> optax.Params:
  """θ̂_t: the average of the iterates θ_1 ... θ_t, from the one `PolyakState` found in an
  optimizer state and the current params θ_t (θ̂_0 = θ_0 before any update).

  The state may be a `PolyakState` or contain one anywhere (an `optax.chain`'s tuple, an
  `optax.inject_hyperparams` state, an `nnx.Optimizer`'s `opt_state`, with
  ``nnx.state(model, nnx.Param)`` as `params`).

  Args:
    state: an optimizer state built by a transformation that includes `polyak_average`.
    params: θ_t, the params after the last update: the state holds the average of the points
      the later updates were called at, θ_1 ... θ_{t−1}, and θ_t is folded in here.

  Returns:
    θ̂_t, with the structure of `params`.

  Raises:
    ValueError: if the state holds no `PolyakState`, or more than one, or `params` does not have
      the shapes of the averaged ones.
  """
  found = [value for _, value in optax.tree.get_all_with_path(state, "PolyakState")]
  if len(found) != 1:
    raise ValueError(
      f"averaged_params: found {len(found)} PolyakState in the optimizer state, expected one; "
      "build the optimizer with polyak_average(inner) (once) to average its iterates"
    )
  polyak = found[0]
  leaves, treedef = jax.tree.flatten(params)
  averaged = jax.tree.leaves(polyak.avg_params)
  if [jnp.shape(x) for x in leaves] != [jnp.shape(x) for x in averaged]:
    raise ValueError(
      "averaged_params: params must be the current parameters the optimizer updates, with the "
      f"shapes of the averaged ones {[jnp.shape(x) for x in averaged]}; got "
      f"{[jnp.shape(x) for x in leaves]}"
    )
  compensation = jax.tree.leaves(polyak.compensation)
  folded = [
    _fold(a, c, p, polyak.weight)[0] for a, c, p in zip(averaged, compensation, leaves, strict=True)
  ]
  return jax.tree.unflatten(treedef, folded)
