"""The diagonal preconditioner P of an adaptive method, read from its state.

An adaptive method steps θ ← θ − η P⁻¹ m with a diagonal P built from its running squared
gradients; its stability along the top eigenvector is governed by the preconditioned sharpness
λ_max(P⁻¹H) (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability", §2), which
`hessian.tracking` measures during training. Each function here returns `opt_state -> P`, P a
pytree shaped like the parameters:

* `adam_preconditioner`: P = (1 − β₁ᵗ)(√r̂ + δ) with r̂ = r/(1 − β₂ᵗ) (Algorithm 8.7: the step is
  −ε ŝ/(√r̂ + δ) = −ε s / P), as in Cohen et al. (2022), whose Adam threshold is
  (2 + 2β₁)/((1 − β₁)η);
* `rmsprop_preconditioner`: P = √(δ + r) (Algorithm 8.5), threshold 2/η;
* `adagrad_preconditioner`: P = δ + √r (Algorithm 8.4), threshold 2/η.

The state is found wherever it sits in the optimizer's state (a chain, `optax.inject_hyperparams`,
`with_extra_args_support`); hyperparameters that `optax.inject_hyperparams` carries in the state
(a sweep's axes: `b1`, `b2`, `eps`) override the function's arguments.

Before the first step no P is defined: the state then holds r = 0, not the r₁ = (1 − ρ)g₀² (or
g₀²) of the step about to be taken, and √δ or δ in its place gave a preconditioned sharpness
10²-10⁶ times the later values. Adam's P is 0 there and RMSProp's and AdaGrad's NaN (while r is 0
everywhere), which the monitor reports as NaN.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxopt_study import validate
from jaxopt_study.optim.first_order import BookAdagradState


def _find(opt_state: Any, kind: type, optimizer: str) -> Any:
  """The node of type `kind` in `opt_state`; a ValueError naming the optimizer where there is
  none, or several (one per parameter group, each covering some of the parameters)."""
  nodes = jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, kind))
  found = [node for node in nodes if isinstance(node, kind)]
  if not found:
    raise ValueError(
      f"{optimizer}_preconditioner: the optimizer state has no {kind.__name__}; is the "
      f"optimizer {optimizer}?"
    )
  if len(found) > 1:
    raise ValueError(
      f"{optimizer}_preconditioner: the optimizer state holds {len(found)} {kind.__name__}s, one "
      "per parameter group (optax.partition, models.transfer's optimizer): one P for every "
      "parameter cannot be read from it"
    )
  return found[0]


_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


def _injected(opt_state: Any, state: Any, defaults: dict[str, float]) -> dict[str, Any]:
  """`defaults`, overridden by the hyperparameters of the `optax.inject_hyperparams` that holds
  the optimizer's `state` (the innermost one: another transformation's, e.g. an injected
  clipping's, say nothing of this optimizer)."""
  owner = _owner(opt_state, state)
  if owner is None:
    return defaults
  return defaults | {k: v for k, v in owner.hyperparams.items() if k in defaults}


def _owner(tree: Any, state: Any) -> Any:
  """The innermost injected-hyperparameters node of `tree` whose inner state holds `state`."""
  for node in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, _INJECTED) or x is state):
    if isinstance(node, _INJECTED) and _holds(node.inner_state, state):
      return _owner(node.inner_state, state) or node
  return None


def _holds(tree: Any, state: Any) -> bool:
  return any(x is state for x in jax.tree.leaves(tree, is_leaf=lambda x: x is state))


def adam_preconditioner(
  b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> Callable[[Any], Any]:
  """`opt_state -> (1 − β₁ᵗ)(√r̂ + δ)`, Adam's P (Cohen et al. 2022, eq. 2) for `optim.adam`."""
  for name, value in (("b1", b1), ("b2", b2)):
    validate.require_unit_interval(name, value, "adam_preconditioner")
  validate.require_positive("eps", eps, "adam_preconditioner")

  def preconditioner(opt_state: Any) -> Any:
    state = _find(opt_state, optax.ScaleByAdamState, "adam")
    h = _injected(opt_state, state, {"b1": b1, "b2": b2, "eps": eps})

    def of_leaf(r: jax.Array) -> jax.Array:  # 1 − βᵗ in r's precision (β₂ near 1: float32 is off)
      t = jnp.asarray(state.count, r.dtype)
      first, second = (1 - jnp.power(jnp.asarray(h[b], r.dtype), t) for b in ("b1", "b2"))
      safe_second = jnp.where(second > 0, second, 1.0)
      return (first * (jnp.sqrt(r / safe_second) + h["eps"])).astype(r.dtype)

    return jax.tree.map(of_leaf, state.nu)

  return preconditioner


def rmsprop_preconditioner(eps: float = 1e-6) -> Callable[[Any], Any]:
  """`opt_state -> √(δ + r)`, RMSProp's P (Algorithm 8.5) for `optim.rmsprop`."""
  validate.require_positive("eps", eps, "rmsprop_preconditioner")

  def preconditioner(opt_state: Any) -> Any:
    state = _find(opt_state, optax.ScaleByRmsState, "rmsprop")
    delta = _injected(opt_state, state, {"eps": eps})["eps"]
    return _after_first_step(
      jax.tree.map(lambda r: jnp.sqrt(delta + r).astype(r.dtype), state.nu), state.nu
    )

  return preconditioner


def adagrad_preconditioner(eps: float = 1e-7) -> Callable[[Any], Any]:
  """`opt_state -> δ + √r`, AdaGrad's P (Algorithm 8.4) for `optim.adagrad`."""
  validate.require_positive("eps", eps, "adagrad_preconditioner")

  def preconditioner(opt_state: Any) -> Any:
    state = _find(opt_state, BookAdagradState, "adagrad")
    delta = _injected(opt_state, state, {"eps": eps})["eps"]
    diagonal = jax.tree.map(lambda r: (delta + jnp.sqrt(r)).astype(r.dtype), state.sum_sq_grad)
    return _after_first_step(diagonal, state.sum_sq_grad)

  return preconditioner


def _after_first_step(diagonal: Any, squares: Any) -> Any:
  """`diagonal`, or NaN everywhere while the accumulated squared gradients are all 0 (no step
  taken yet)."""
  started = jnp.any(jnp.stack([jnp.any(r > 0) for r in jax.tree.leaves(squares)]))
  return jax.tree.map(lambda d: jnp.where(started, d, jnp.nan).astype(d.dtype), diagonal)


PRECONDITIONERS: dict[str, Callable[..., Callable[[Any], Any]]] = {
  "adam": adam_preconditioner,
  "rmsprop": rmsprop_preconditioner,
  "adagrad": adagrad_preconditioner,
}
