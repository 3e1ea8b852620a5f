"""The loss as Optax's extra arguments (`value`, `grad`, `value_fn`): checks, and the finite guard.

Optimizers that need the loss take it as `optax.lbfgs` does,
``update(grads, state, params, value=f(θ), grad=∇f(θ), value_fn=f, **fn_kwargs)``, so that
`optax.value_and_grad_from_state` can reuse what a line search already computed. This module
checks those arguments before anything is traced, with errors that say what to pass, and wraps a
transformation so that a non-finite loss, gradient or step never reaches the parameters.
"""

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

CALL = "tx.update(grads, state, params, value=loss, grad=grads, value_fn=loss_fn)"


def require_loss_args(where: str, params: Any, value: Any, grad: Any, value_fn: Any) -> None:
  """Raises ValueError naming the first missing or malformed argument of an update (trace time)."""
  for name, given in (("params", params), ("value", value), ("grad", grad), ("value_fn", value_fn)):
    if given is None:
      raise ValueError(
        f"{where}: update needs {name}=...; call it as optax.lbfgs is called: {CALL} "
        "(value_fn is the loss as a function of the params, value and grad its value and "
        "gradient at params, e.g. from optax.value_and_grad_from_state(loss_fn))"
      )
  if not callable(value_fn):
    raise ValueError(f"{where}: value_fn={value_fn!r} is not callable; pass the loss function")
  if jnp.shape(value) != ():
    raise ValueError(
      f"{where}: value has shape {jnp.shape(value)}: it must be the scalar loss at params"
    )


def require_matching_trees(where: str, updates: Any, params: Any, grad: Any) -> None:
  """Raises ValueError, saying what to pass, when the gradients do not have the params' structure.

  Under `flax.nnx.Optimizer` this is the usual accident: it keeps only the `nnx.Param` entries of
  the gradients it is given, so gradients of pure arrays (e.g. from
  `optax.value_and_grad_from_state` on `nnx.as_pure(...)` params) arrive empty.
  """
  expected = jax.tree.structure(params)
  for name, tree in (("grads", updates), ("grad", grad)):
    found = jax.tree.structure(tree)
    if found != expected:
      shape = (
        f"{found.num_leaves} arrays where params has {expected.num_leaves}"
        if found.num_leaves != expected.num_leaves
        else f"the structure {found} where params has {expected}"
      )
      masked = (
        " Inside optax.masked or optax.multi_transform? They hand on the params and updates of "
        "the unfrozen group only, but grad= and value_fn whole, and a line search or a Hessian "
        "needs all three on the same parameters: freeze parameters inside value_fn instead."
        if name == "grad" and found.num_leaves > expected.num_leaves
        else ""
      )
      raise ValueError(
        f"{where}: {name} has {shape}: pass gradients shaped like the params.{masked} Under "
        "flax.nnx.Optimizer, pass them as nnx.grad gives them, an nnx.State of nnx.Param "
        "(nnx.value_and_grad(loss)(model), or jax.grad of value_fn at nnx.state(model, "
        "nnx.Param)): it drops gradients that are pure arrays. See README, 'Second-order "
        "optimizers in Flax'."
      )


def value_fn_kwargs(value_fn: Callable, extra_args: dict[str, Any]) -> dict[str, Any]:
  """The extra arguments of an update that `value_fn` takes, as Optax's line searches pick them.

  All of them if `value_fn` takes ``**kwargs`` (or has no signature to read), else those it names;
  the others (meant for other parts of a chain, or for nothing) are dropped, so that every
  optimizer accepts extra arguments it does not use, as `optax.with_extra_args_support` promises.
  """
  try:
    parameters = inspect.signature(value_fn).parameters
  except (TypeError, ValueError):  # a callable without a signature (a C builtin): pass them all
    return extra_args
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
    return extra_args
  return {k: v for k, v in extra_args.items() if k in parameters}


def require_scalar_loss(where: str, value_fn: Callable, params: Any, fn_kwargs: dict) -> None:
  """Raises ValueError if ``value_fn(params, **fn_kwargs)`` is not a scalar (shapes only)."""
  shape = jax.eval_shape(lambda p: value_fn(p, **fn_kwargs), params).shape
  if shape != ():
    name = getattr(value_fn, "__name__", repr(value_fn))
    raise ValueError(
      f"{where}: value_fn {name!r} returned shape {shape}: it must return a scalar loss "
      "(reduce the per-example losses, e.g. with jnp.mean)"
    )


def all_finite(tree: Any) -> jax.Array:
  """Whether every entry of every leaf of `tree` is finite (True for an empty tree)."""
  leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def as_arrays(tree: Any) -> Any:
  """`tree` with every leaf that is a Python number made an array (as `jnp.asarray` makes it:
  weakly typed, of the default float or int dtype), for code that reads a leaf's dtype or shape;
  arrays, tracers and abstract leaves (`jax.ShapeDtypeStruct`) are kept as they are."""
  return jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, int | float | complex) else x, tree)


def guarded(
  where: str, inner: optax.GradientTransformation
) -> optax.GradientTransformationExtraArgs:
  """`inner`, with its loss arguments checked and a non-finite step replaced by no step.

  Before tracing `inner`, the update checks that `params`, `value`, `grad` and `value_fn` are
  given and that the loss is a scalar (`require_loss_args`, `require_scalar_loss`); of the other
  extra arguments, `inner` gets those `value_fn` takes (`value_fn_kwargs`). After it, if
  the loss or gradient at `params`, the step, or the loss the new state holds (a line search's
  value at the new point) is NaN, or the step is infinite, the update is zero and the state is
  the old one: the parameters stay where they were, and so stays everything the state knows about
  them. The same non-finite loss then gives the same zero step again; the caller sees the loss
  it passed, and no NaN ever reaches the parameters. Leaves that are Python numbers (which
  `jax.grad` takes) become arrays (`as_arrays`) before `inner` sees them; each update is in its
  parameter's dtype.

  Args:
    where: the optimizer's name, which starts every error message.
    inner: the transformation to guard (plain or with extra args).

  Returns:
    An `optax.GradientTransformationExtraArgs` with the state of `inner`.
  """
  inner = optax.with_extra_args_support(inner)

  def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
    require_loss_args(where, params, value, grad, value_fn)
    updates, params, grad = as_arrays(updates), as_arrays(params), as_arrays(grad)
    require_matching_trees(where, updates, params, grad)
    fn_kwargs = value_fn_kwargs(value_fn, extra)
    require_scalar_loss(where, value_fn, params, fn_kwargs)
    new_updates, new_state = inner.update(
      updates, state, params, value=value, grad=grad, value_fn=value_fn, **fn_kwargs
    )
    new_value = optax.tree.get(new_state, "value")
    ok = jnp.isfinite(value) & all_finite((grad, updates, new_updates))
    if new_value is not None:
      ok = ok & ~jnp.isnan(new_value)
    # in each parameter's own dtype: a step size or direction of the widest dtype would make a
    # float32 leaf's update float64 beside a float64 leaf
    new_updates = jax.tree.map(
      lambda u, p: jnp.where(ok, u, jnp.zeros_like(u)).astype(p.dtype), new_updates, params
    )
    new_state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_state, state)
    return new_updates, new_state

  def init_fn(params):
    return inner.init(as_arrays(params))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
