"""Nonlinear conjugate gradients, BFGS and L-BFGS, each with a strong-Wolfe line search.

Goodfellow, Bengio & Courville (2016), *Deep Learning*, §8.6.2 (conjugate gradients, Algorithm
8.9) and §8.6.3 (BFGS, L-BFGS). Each optimizer is an Optax chain: a block that turns the gradient
g into a direction (``scale_by_conjugate_gradient``, ``scale_by_bfgs``, or Optax's
``scale_by_lbfgs`` with the curvature-pair check it lacks, ``scale_by_checked_lbfgs``), the sign
(or a learning rate), and Optax's zoom line search (`optax.scale_by_zoom_linesearch`, Nocedal &
Wright 2006, Algorithms 3.5–3.6), which finds a step satisfying the strong Wolfe conditions. The
update takes the loss as `optax.lbfgs` does, ``update(grads, state, params, value=...,
grad=..., value_fn=...)``, and the line search keeps the value and gradient at the new point in
the state, where `optax.value_and_grad_from_state` finds them: one evaluation of f and ∇f per
line-search trial, none wasted.

The line search's first trial is α = 1 times the direction the block outputs. The CG block scales
its direction so that this trial is the step Nocedal & Wright (2006) eq. 3.60 guesses from the
last decrease (as `scipy.optimize` does), α₀ = min(1, 1.01 · 2 (f_k − f_{k−1}) / gᵀd), with
f_{−1} = f₀ + ‖g‖/2 at the first step, i.e. a first step of length about 1 along −g. BFGS uses
that guess only at its first step and then α₀ = 1, the natural quasi-Newton step (Nocedal &
Wright 2006, §3.5); on Rosenbrock this took 53 evaluations (2-D) where eq. 3.60 at every step
took 56.
"""

from typing import Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxopt_study import validate
from jaxopt_study.optim.extra_args import guarded

VARIANTS = ("polak_ribiere", "fletcher_reeves", "hestenes_stiefel")
LineSearch = optax.GradientTransformationExtraArgs | optax.GradientTransformation | None


def zoom_linesearch(curv_rtol: float = 0.9) -> optax.GradientTransformationExtraArgs:
  """Optax's strong-Wolfe zoom line search as `optax.lbfgs` sets it up (20 trials, α₀ = 1)."""
  return optax.scale_by_zoom_linesearch(
    max_linesearch_steps=20, curv_rtol=curv_rtol, initial_guess_strategy="one"
  )


STRONG_WOLFE = zoom_linesearch()  # c₂ = 0.9: BFGS and L-BFGS (scipy's BFGS uses 0.9)
STRONG_WOLFE_CG = zoom_linesearch(curv_rtol=0.4)  # c₂ = 0.4: conjugate gradients (scipy's CG)


def _vdot(a: optax.Updates, b: optax.Updates) -> jax.Array:
  return optax.tree.vdot(a, b)


def _safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """numerator / denominator, and 0 where the denominator is 0 (no previous step: β = 0)."""
  nonzero = denominator != 0
  return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1.0), 0.0)


def initial_step_scale(
  value: jax.Array, previous_value: jax.Array, slope: jax.Array, grad_norm: jax.Array, first: bool
) -> jax.Array:
  """α₀ = min(1, 1.01 · 2 (f_k − f_{k−1}) / φ'(0)) (Nocedal & Wright 2006 eq. 3.60, scipy's rule).

  φ'(0) = gᵀd < 0 is the slope along the direction d; at the first step f_{−1} = f₀ + ‖g‖/2. A
  guess that is not a positive finite number falls back to 1.
  """
  previous_value = jnp.where(first, value + grad_norm / 2, previous_value)
  guess = 1.01 * 2 * (value - previous_value) / slope
  return jnp.where(jnp.isfinite(guess) & (guess > 0), jnp.minimum(1.0, guess), 1.0)


def _direction_then_linesearch(
  where: str,
  block: optax.GradientTransformation,
  learning_rate: optax.ScalarOrSchedule | None,
  linesearch: LineSearch,
) -> optax.GradientTransformationExtraArgs:
  """guarded(chain(block, −1 or −ε, linesearch)), as `optax.lbfgs` assembles its pieces."""
  if learning_rate is None:
    sign = optax.scale(-1.0)
  else:
    validate.require_learning_rate(learning_rate, where)
    sign = optax.scale_by_learning_rate(learning_rate)
  return guarded(where, optax.chain(block, sign, linesearch or optax.identity()))


# ------------------------------------------------------------------------ conjugate gradients


class ConjugateGradientState(NamedTuple):
  """State of `scale_by_conjugate_gradient`."""

  count: chex.Array  # k: updates done so far (int32)
  since_restart: chex.Array  # steps since the last restart (β = 0 when it is 0)
  direction: optax.Updates  # ρ_{k−1}: the last search direction (a descent direction)
  previous_grad: optax.Updates  # g_{k−1}
  previous_value: chex.Array  # f_{k−1}, for the first trial step of the line search


def scale_by_conjugate_gradient(
  variant: Literal["polak_ribiere", "fletcher_reeves", "hestenes_stiefel"] = "polak_ribiere",
  restart_every: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  """The nonlinear conjugate direction of Goodfellow et al. (2016) Algorithm 8.9, negated.

  .. math::
    ρ_k = −g_k + β_k ρ_{k−1},  with y = g_k − g_{k−1} and
    β^{FR} = \\frac{g_kᵀg_k}{g_{k−1}ᵀg_{k−1}},
    β^{PR+} = \\max\\Big(0, \\frac{g_kᵀ y}{g_{k−1}ᵀg_{k−1}}\\Big),
    β^{HS} = \\frac{g_kᵀ y}{ρ_{k−1}ᵀ y}

  (eq. 8.29–8.31; PR+ clips β at 0, Gilbert & Nocedal 1992). β = 0, a restart along −g, at the
  first step, every `restart_every` steps (default: N, the number of parameters, after which
  the conjugate directions of a quadratic are exhausted) and whenever ρ_k would not be a descent
  direction (g_kᵀρ_k ≥ 0, possible for PR+ and HS under an inexact line search); a restart
  starts a new cycle. The output is −α₀ ρ_k, with α₀ the first trial step of
  `initial_step_scale`, so that a following sign flip and line search step along ρ_k.

  Args:
    variant: the formula for β.
    restart_every: restart period in steps, or None for N.

  Returns:
    An `optax.GradientTransformationExtraArgs` (it reads the extra argument ``value``) with state
    `ConjugateGradientState`.
  """
  where = "conjugate_gradient"
  if variant not in VARIANTS:
    raise ValueError(f"{where}: variant={variant!r} must be one of {VARIANTS}")
  if restart_every is not None:
    validate.require_positive_int("restart_every", restart_every, where)

  def init_fn(params: optax.Params) -> ConjugateGradientState:
    zeros = optax.tree.zeros_like(params)
    dtype = jnp.result_type(*jax.tree.leaves(params))
    return ConjugateGradientState(
      count=jnp.zeros([], jnp.int32),
      since_restart=jnp.zeros([], jnp.int32),
      direction=zeros,
      previous_grad=zeros,
      previous_value=jnp.zeros([], dtype),
    )

  def update_fn(updates, state, params=None, *, value, **extra_args):
    del params, extra_args
    period = restart_every or sum(leaf.size for leaf in jax.tree.leaves(updates))
    grad, previous = updates, state.previous_grad
    change = optax.tree.sub(grad, previous)
    if variant == "fletcher_reeves":
      beta = _safe_divide(_vdot(grad, grad), _vdot(previous, previous))
    elif variant == "polak_ribiere":
      beta = jnp.maximum(0.0, _safe_divide(_vdot(grad, change), _vdot(previous, previous)))
    else:
      beta = _safe_divide(_vdot(grad, change), _vdot(state.direction, change))
    beta = jnp.where(state.since_restart == 0, 0.0, beta)
    direction = optax.tree.add_scale(optax.tree.scale(-1.0, grad), beta, state.direction)
    slope = _vdot(grad, direction)
    restart = (state.since_restart == 0) | ~(slope < 0)  # also catches a NaN slope
    direction = jax.tree.map(lambda d, g: jnp.where(restart, -g, d), direction, grad)
    slope = _vdot(grad, direction)
    value = jnp.asarray(value, state.previous_value.dtype)
    grad_norm = optax.tree.norm(grad)
    step_scale = initial_step_scale(value, state.previous_value, slope, grad_norm, state.count == 0)
    since_restart = jnp.where(restart, 1, state.since_restart + 1) % period
    return optax.tree.scale(-step_scale, direction), ConjugateGradientState(
      count=optax.safe_increment(state.count),
      since_restart=since_restart.astype(jnp.int32),
      direction=direction,
      previous_grad=grad,
      previous_value=value,
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def conjugate_gradient(
  variant: Literal["polak_ribiere", "fletcher_reeves", "hestenes_stiefel"] = "polak_ribiere",
  restart_every: int | None = None,
  learning_rate: optax.ScalarOrSchedule | None = None,
  linesearch: LineSearch = STRONG_WOLFE_CG,
) -> optax.GradientTransformationExtraArgs:
  """Nonlinear conjugate gradients, Goodfellow et al. (2016) Algorithm 8.9, with a line search.

  ``chain(scale_by_conjugate_gradient(variant, restart_every), scale(−1), linesearch)``: the
  direction ρ_k of Alg. 8.9, and θ ← θ + α ρ_k with α from a strong-Wolfe line search (the
  book's "line search to find ε*"). The default is Optax's zoom line search with curvature
  constant c₂ = 0.4 (scipy's CG uses 0.4; c₂ < 1/2 makes every Fletcher–Reeves direction a
  descent direction, Nocedal & Wright 2006 Lemma 5.6). On a strictly convex quadratic with exact
  line searches it reaches the minimum in at most N steps (§8.6.2).

  Args:
    variant: ``"polak_ribiere"`` (PR+, the default), ``"fletcher_reeves"`` or
      ``"hestenes_stiefel"``.
    restart_every: restart period (β = 0) in steps; None: N, the number of parameters.
    learning_rate: None (the line search alone sets the step) or ε scaling the direction first.
    linesearch: an Optax line search, or None for steps of ε ρ_k.

  Returns:
    An `optax.GradientTransformationExtraArgs`; its update takes ``value=``, ``grad=`` and
    ``value_fn=``. A non-finite loss, gradient or step gives a zero update and leaves the state
    unchanged (`extra_args.guarded`).
  """
  block = scale_by_conjugate_gradient(variant, restart_every)
  return _direction_then_linesearch("conjugate_gradient", block, learning_rate, linesearch)


# ------------------------------------------------------------------------------------ BFGS


def _curvature_ok(s: jax.Array, y: jax.Array) -> jax.Array:
  """sᵀy > √ε ‖s‖ ‖y‖: a pair of clearly positive curvature along s (False for NaN)."""
  tolerance = jnp.sqrt(jnp.finfo(s.dtype).eps)
  return jnp.vdot(s, y) > tolerance * jnp.linalg.norm(s) * jnp.linalg.norm(y)


class BFGSState(NamedTuple):
  """State of `scale_by_bfgs`."""

  count: chex.Array  # k: updates done so far (int32)
  inverse_hessian: chex.Array  # M (N, N) in ravel_pytree order, M ≈ H⁻¹, positive definite
  num_pairs: chex.Array  # curvature pairs (s, y) taken into M
  num_skipped: chex.Array  # pairs skipped because sᵀy ≤ √ε ‖s‖‖y‖
  previous_params: optax.Params  # θ_{k−1}
  previous_grad: optax.Updates  # g_{k−1}
  previous_value: chex.Array  # f_{k−1}, for the first trial step of the line search


def bfgs_inverse_update(inverse_hessian: jax.Array, s: jax.Array, y: jax.Array) -> jax.Array:
  """The BFGS update of the inverse Hessian (Nocedal & Wright 2006, eq. 6.17), ρ = 1/(yᵀs):

  .. math:: M ← (I − ρ s yᵀ) M (I − ρ y sᵀ) + ρ s sᵀ
     = M − ρ (s (My)ᵀ + (My) sᵀ) + (ρ² yᵀMy + ρ) s sᵀ.
  """
  rho = 1.0 / jnp.vdot(y, s)
  my = inverse_hessian @ y
  return (
    inverse_hessian
    - rho * (jnp.outer(s, my) + jnp.outer(my, s))
    + (rho * rho * jnp.vdot(y, my) + rho) * jnp.outer(s, s)
  )


def scale_by_bfgs() -> optax.GradientTransformationExtraArgs:
  """The BFGS direction M g of Goodfellow et al. (2016) §8.6.3, times the first trial step.

  At step k the pair s = θ_k − θ_{k−1}, y = g_k − g_{k−1} updates M by `bfgs_inverse_update`,
  if sᵀy > √ε ‖s‖‖y‖; otherwise the pair is skipped (M unchanged, ``num_skipped`` counted), so M
  stays positive definite even when a step crosses negative curvature (Nocedal & Wright 2006,
  §6.1: the update keeps M positive definite exactly when sᵀy > 0). Before the first pair M = I,
  and the first pair first sets M = γ I with γ = sᵀy / yᵀy (their eq. 6.20). The output is M g,
  times α₀ = `initial_step_scale` ≈ 1/‖g‖ at the first step (where M = I knows no scale); M is
  dense (N × N), for N up to a few thousand.

  Returns:
    An `optax.GradientTransformationExtraArgs` (it reads ``value``) with state `BFGSState`.
  """

  def init_fn(params: optax.Params) -> BFGSState:
    flat = ravel_pytree(params)[0]
    return BFGSState(
      count=jnp.zeros([], jnp.int32),
      inverse_hessian=jnp.eye(flat.shape[0], dtype=flat.dtype),
      num_pairs=jnp.zeros([], jnp.int32),
      num_skipped=jnp.zeros([], jnp.int32),
      previous_params=params,
      previous_grad=optax.tree.zeros_like(params),
      previous_value=jnp.zeros([], flat.dtype),
    )

  def update_fn(updates, state, params=None, *, value, **extra_args):
    del extra_args
    if params is None:
      raise ValueError("bfgs: update needs params, to form the curvature pair s = θ_k − θ_{k−1}")
    g, unravel = ravel_pytree(updates)
    s = ravel_pytree(params)[0] - ravel_pytree(state.previous_params)[0]
    y = g - ravel_pytree(state.previous_grad)[0]
    has_pair = state.count > 0
    take = has_pair & _curvature_ok(s, y)
    scale = _safe_divide(jnp.vdot(s, y), jnp.vdot(y, y))
    start = jnp.where(
      state.num_pairs == 0, scale * jnp.eye(g.shape[0], dtype=g.dtype), state.inverse_hessian
    )
    inverse_hessian = jnp.where(take, bfgs_inverse_update(start, s, y), state.inverse_hessian)
    direction = inverse_hessian @ g  # the step is −α M g
    slope = -jnp.vdot(g, direction)
    value = jnp.asarray(value, g.dtype)
    first = state.count == 0
    step_scale = initial_step_scale(value, state.previous_value, slope, jnp.linalg.norm(g), first)
    step_scale = jnp.where(first, step_scale, 1.0)  # then α₀ = 1, the quasi-Newton step
    return unravel(step_scale * direction), BFGSState(
      count=optax.safe_increment(state.count),
      inverse_hessian=inverse_hessian,
      num_pairs=state.num_pairs + take.astype(jnp.int32),
      num_skipped=state.num_skipped + (has_pair & ~take).astype(jnp.int32),
      previous_params=params,
      previous_grad=updates,
      previous_value=value,
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def bfgs(
  learning_rate: optax.ScalarOrSchedule | None = None,
  linesearch: LineSearch = STRONG_WOLFE,
) -> optax.GradientTransformationExtraArgs:
  """BFGS, Goodfellow et al. (2016) §8.6.3: θ ← θ − α M g with a strong-Wolfe line search.

  ``chain(scale_by_bfgs(), scale(−1), linesearch)``, the dense inverse-Hessian approximation M
  of `scale_by_bfgs` (positive definite: pairs with sᵀy ≤ √ε ‖s‖‖y‖ are skipped) and Optax's zoom
  line search (c₂ = 0.9, as scipy's BFGS). With exact line searches on a strictly convex
  quadratic it ends in N steps with M = H⁻¹.

  Args:
    learning_rate: None (the line search alone sets the step) or ε scaling the direction first.
    linesearch: an Optax line search, or None for steps of ε M g.

  Returns:
    An `optax.GradientTransformationExtraArgs`; its update takes ``value=``, ``grad=`` and
    ``value_fn=``. A non-finite loss, gradient or step gives a zero update and leaves the state
    unchanged (`extra_args.guarded`).
  """
  return _direction_then_linesearch("bfgs", scale_by_bfgs(), learning_rate, linesearch)


# ---------------------------------------------------------------------------------- L-BFGS


def scale_by_checked_lbfgs(memory_size: int = 10) -> optax.GradientTransformation:
  """`optax.scale_by_lbfgs`, with the curvature-pair check it lacks (Optax issue 1708).

  Optax 0.2.8 stores every pair (s, y) with weight ρ = 1/(sᵀy), also when sᵀy < 0, which makes
  its inverse-Hessian approximation indefinite and can turn the direction uphill. Here a pair
  with sᵀy ≤ √ε ‖s‖‖y‖ is handed to Optax as s = y = 0: Optax then stores it with weight 0, a
  pair that the two-loop recursion passes through unchanged, and scales its initial matrix by
  γ = 1 for that step (its rule for y = 0) instead of sᵀy/yᵀy. The skipped pair still takes a
  memory slot, so the oldest pair is dropped one step early.

  Args:
    memory_size: m, the number of pairs kept.

  Returns:
    An `optax.GradientTransformation` with Optax's `optax.ScaleByLBFGSState`.
  """
  validate.require_positive_int("memory_size", memory_size, "lbfgs")
  inner = optax.scale_by_lbfgs(memory_size=memory_size)

  def update_fn(updates, state, params):
    s = ravel_pytree(optax.tree.sub(params, state.params))[0]
    y = ravel_pytree(optax.tree.sub(updates, state.updates))[0]
    skip = (state.count > 0) & ~_curvature_ok(s, y)
    state = state._replace(
      params=jax.tree.map(lambda new, old: jnp.where(skip, new, old), params, state.params),
      updates=jax.tree.map(lambda new, old: jnp.where(skip, new, old), updates, state.updates),
    )
    return inner.update(updates, state, params)

  return optax.GradientTransformation(inner.init, update_fn)


def lbfgs(
  memory_size: int = 10,
  learning_rate: optax.ScalarOrSchedule | None = None,
  linesearch: LineSearch = STRONG_WOLFE,
) -> optax.GradientTransformationExtraArgs:
  """L-BFGS, Goodfellow et al. (2016) §8.6.3: `optax.lbfgs` with the curvature-pair check.

  ``chain(scale_by_checked_lbfgs(memory_size), scale(−1), linesearch)``: Optax's two-loop
  recursion (Nocedal & Wright 2006, Alg. 7.4) over the last m pairs, pairs of non-positive
  curvature skipped (`scale_by_checked_lbfgs`), and Optax's zoom line search, as in
  `optax.lbfgs`. Where every pair passes the check, the steps are exactly `optax.lbfgs`'s.

  Args:
    memory_size: m, the number of curvature pairs kept.
    learning_rate: None (the line search alone sets the step) or ε scaling the direction first.
    linesearch: an Optax line search, or None for steps of ε times the L-BFGS direction.

  Returns:
    An `optax.GradientTransformationExtraArgs`; its update takes ``value=``, ``grad=`` and
    ``value_fn=``. A non-finite loss, gradient or step gives a zero update and leaves the state
    unchanged (`extra_args.guarded`).
  """
  block = scale_by_checked_lbfgs(memory_size)
  return _direction_then_linesearch("lbfgs", block, learning_rate, linesearch)
