"""Nonlinear conjugate gradients, BFGS and L-BFGS, each with a strong-Wolfe line search.

Goodfellow, Bengio & Courville (2016), *Deep Learning*, §8.6.2 (conjugate gradients, Algorithm
8.9) and §8.6.3 (BFGS, L-BFGS). Each optimizer is an Optax chain: a block that turns the gradient
g into a direction (``scale_by_conjugate_gradient``, ``scale_by_bfgs``, or
``scale_by_checked_lbfgs``, Optax's ``scale_by_lbfgs`` with the curvature-pair check it lacks),
the sign (or a learning rate), and the strong-Wolfe line search of
`linesearch.scale_by_wolfe_linesearch` (Nocedal & Wright 2006, Algorithms 3.5–3.6, cubic
interpolation with both slopes, first trial from the last decrease, their eq. 3.60, as scipy's CG
and BFGS; BFGS and L-BFGS take it at the first step only, then 1). The update takes the loss as
`optax.lbfgs` does, ``update(grads, state, params, value=..., grad=..., value_fn=...)``, and the
line search keeps the value and gradient at the new point in the state, where
`optax.value_and_grad_from_state` finds them: one evaluation of f and ∇f per line-search trial,
none wasted. When no trial decreases f in the working precision the step is zero and
`linesearch.is_stalled(state)` is true: the caller should stop (scipy's CG and BFGS stop there
with "precision loss").

Complex parameters are supported as Optax supports them: pass the conjugate of `jax.grad`
(``optax.tree.conj``), as Optax's own tests do; every inner product is the real one,
Re ⟨a, b⟩, so each method takes on ℂⁿ exactly the steps it takes on ℝ²ⁿ.
"""

import math
from typing import Any, Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxopt_study import validate
from jaxopt_study.hessian import dense
from jaxopt_study.optim.extra_args import guarded
from jaxopt_study.optim.linesearch import (
  real_dtype,
  real_vdot,
  rounding_eps,
  scale_by_wolfe_linesearch,
)

VARIANTS = ("polak_ribiere", "fletcher_reeves", "hestenes_stiefel")
LineSearch = optax.GradientTransformationExtraArgs | optax.GradientTransformation | None

# Quasi-Newton: c₂ = 0.9 (scipy's BFGS), α₀ from eq. 3.60 at the first step (where M = I knows no
# scale) and then 1, the natural quasi-Newton step (N&W §3.5). Measured on the five problems of
# `benchmarks/second_order.py`: 0.98× scipy BFGS's evaluations, 1.04× with eq. 3.60 capped at 1
# at every step as scipy does (benchmarks/RESULTS.md, issue 19).
STRONG_WOLFE = scale_by_wolfe_linesearch(curv_rtol=0.9, initial_step="decrease_then_one")
# Conjugate gradients: the direction has no natural length, so α₀ is eq. 3.60 uncapped; c₂ = 0.01
# accepts a first trial only within about 1% of the minimizer along ρ_k, so on a quadratic nearly
# every step is the exact, interpolated one (N&W §3.1 suggest 0.1, which on 20-D quadratics left
# ‖g‖ at up to 1e-6 ‖g₀‖ after N + 1 steps, where 0.01 leaves 5e-10), for 2% more evaluations
# than 0.1 on the benchmark's five problems.
STRONG_WOLFE_CG = scale_by_wolfe_linesearch(curv_rtol=0.01, max_initial_step=None)


def _safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """numerator / denominator, and 0 where the denominator is 0 (no previous step: β = 0)."""
  nonzero = denominator != 0
  return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1.0), 0.0)


def _is_complex(leaf: Any) -> bool:
  """Whether a leaf (an array or a `jax.ShapeDtypeStruct`) holds complex numbers."""
  return jnp.issubdtype(leaf.dtype, jnp.complexfloating)


def real_size(params: optax.Params) -> int:
  """N, the number of real parameters (a complex entry counts twice); shapes only."""
  return sum(math.prod(x.shape) * (2 if _is_complex(x) else 1) for x in jax.tree.leaves(params))


def to_real_vector(tree: optax.Params, dtype: jnp.dtype) -> jax.Array:
  """The leaves as one real vector of ℝᴺ: each leaf raveled, a complex one as real then imaginary
  parts (`ravel_pytree`'s order for real leaves)."""
  parts = []
  for leaf in jax.tree.leaves(tree):
    flat = jnp.ravel(leaf)
    parts += [flat.real, flat.imag] if _is_complex(leaf) else [flat]
  return jnp.concatenate([p.astype(dtype) for p in parts]) if parts else jnp.zeros([0], dtype)


def from_real_vector(vector: jax.Array, like: optax.Params) -> optax.Params:
  """The inverse of `to_real_vector`: a tree shaped and typed like `like`."""
  leaves, treedef = jax.tree.flatten(like)
  out, start = [], 0
  for leaf in leaves:
    size = math.prod(leaf.shape)
    part = vector[start : start + size]
    if _is_complex(leaf):
      part = part + 1j * vector[start + size : start + 2 * size]
      size *= 2
    out.append(part.reshape(leaf.shape).astype(leaf.dtype))
    start += size
  return jax.tree.unflatten(treedef, out)


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
  if linesearch is not None:
    validate.require_transformation("linesearch", linesearch, where)
  return guarded(where, optax.chain(block, sign, linesearch or optax.identity()))


# ------------------------------------------------------------------------ conjugate gradients


class ConjugateGradientState(NamedTuple):
  """State of `scale_by_conjugate_gradient`."""

  count: chex.Array  # k: updates done so far (int32)
  since_restart: chex.Array  # steps since the last restart (β = 0 when it is 0)
  direction: optax.Updates  # ρ_{k−1}: the last search direction (a descent direction)
  previous_grad: optax.Updates  # g_{k−1}


def scale_by_conjugate_gradient(
  variant: Literal["polak_ribiere", "fletcher_reeves", "hestenes_stiefel"] = "polak_ribiere",
  restart_every: int | None = None,
) -> optax.GradientTransformation:
  """The nonlinear conjugate direction of Goodfellow et al. (2016) Algorithm 8.9, negated.

  .. math::
    ρ_k = −g_k + β_k ρ_{k−1},  with y = g_k − g_{k−1} and
    β^{FR} = \\frac{g_kᵀg_k}{g_{k−1}ᵀg_{k−1}},
    β^{PR+} = \\max\\Big(0, \\frac{g_kᵀ y}{g_{k−1}ᵀg_{k−1}}\\Big),
    β^{HS} = \\frac{g_kᵀ y}{ρ_{k−1}ᵀ y}

  (eq. 8.29–8.31; PR+ clips β at 0, Gilbert & Nocedal 1992). β = 0, a restart along −g, at the
  first step, every `restart_every` steps (default: N, the number of parameters, after which
  the conjugate directions of a quadratic are exhausted; a complex parameter counts as two), when
  the gradient has not changed (y = 0: the last line search did not move, so the direction is
  dropped), and whenever ρ_k would not be a descent direction (g_kᵀρ_k ≥ 0, possible for PR+ and
  HS under an inexact line search); a restart starts a new cycle. The output is −ρ_k, so that a
  following sign flip and line search step along ρ_k.

  Args:
    variant: the formula for β.
    restart_every: restart period in steps, or None for N.

  Returns:
    An `optax.GradientTransformation` with state `ConjugateGradientState`.
  """
  where = "conjugate_gradient"
  if variant not in VARIANTS:
    raise ValueError(f"{where}: variant={variant!r} must be one of {VARIANTS}")
  if restart_every is not None:
    validate.require_positive_int("restart_every", restart_every, where)

  def init_fn(params: optax.Params) -> ConjugateGradientState:
    zeros = optax.tree.zeros_like(params)  # also for a tree without leaves (optax.tree.map_params)
    return ConjugateGradientState(
      count=jnp.zeros([], jnp.int32),
      since_restart=jnp.zeros([], jnp.int32),
      direction=zeros,
      previous_grad=zeros,
    )

  def update_fn(updates, state, params=None):
    del params
    period = restart_every or real_size(updates)  # N real parameters (complex: 2 each)
    grad, previous = updates, state.previous_grad
    change = optax.tree.sub(grad, previous)
    if variant == "fletcher_reeves":
      beta = _safe_divide(real_vdot(grad, grad), real_vdot(previous, previous))
    elif variant == "polak_ribiere":
      beta = jnp.maximum(0.0, _safe_divide(real_vdot(grad, change), real_vdot(previous, previous)))
    else:
      beta = _safe_divide(real_vdot(grad, change), real_vdot(state.direction, change))
    beta = jnp.where((state.since_restart == 0) | (real_vdot(change, change) == 0), 0.0, beta)
    direction = optax.tree.add_scale(optax.tree.scale(-1.0, grad), beta, state.direction)
    # β sums over every leaf in the widest dtype: each leaf back to init's dtype, or a jitted
    # loop's carry would change type (a float32 leaf beside a float64 one became float64)
    direction = optax.tree.cast_like(direction, state.direction)
    restart = (beta == 0) | ~(real_vdot(grad, direction) < 0)  # also catches a NaN slope
    direction = jax.tree.map(lambda d, g: jnp.where(restart, -g, d), direction, grad)
    since_restart = jnp.where(restart, 1, state.since_restart + 1) % period
    return optax.tree.scale(-1.0, direction), ConjugateGradientState(
      count=optax.safe_increment(state.count),
      since_restart=since_restart.astype(jnp.int32),
      direction=direction,
      previous_grad=optax.tree.cast_like(grad, state.previous_grad),
    )

  return optax.GradientTransformation(init_fn, update_fn)


def conjugate_gradient(
  variant: Literal["polak_ribiere", "fletcher_reeves", "hestenes_stiefel"] = "polak_ribiere",
  restart_every: int | None = None,
  learning_rate: optax.ScalarOrSchedule | None = None,
  linesearch: LineSearch = STRONG_WOLFE_CG,
) -> optax.GradientTransformationExtraArgs:
  """Nonlinear conjugate gradients, Goodfellow et al. (2016) Algorithm 8.9, with a line search.

  ``chain(scale_by_conjugate_gradient(variant, restart_every), scale(−1), linesearch)``: the
  direction ρ_k of Alg. 8.9, and θ ← θ + α ρ_k with α from a strong-Wolfe line search (the
  book's "line search to find ε*"), by default `linesearch.scale_by_wolfe_linesearch` with
  c₂ = 0.01 (below 1/2 every Fletcher–Reeves direction is a descent direction, Nocedal & Wright
  2006 Lemma 5.6) and its first trial from the last decrease (their eq. 3.60), uncapped. On a
  quadratic the line search's second trial is the exact minimizer along ρ_k (its interpolation
  is exact there), so on a strictly convex quadratic the method reaches the minimum in N steps
  in exact arithmetic (§8.6.2), N + 1 in floating point where the spectrum is not too spread
  (the textbook linear CG itself needs 23-24 steps in float64 on a 20-D quadratic with
  eigenvalues spread geometrically over [1, 100]).

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


def _curvature_ok(s: optax.Updates, y: optax.Updates, eps: float) -> jax.Array:
  """Re ⟨s, y⟩ > √ε ‖s‖ ‖y‖ (vectors or trees): a pair of clearly positive curvature along s
  (not NaN), ε the params' rounding (`linesearch.rounding_eps`, the least precise leaf's). Summed
  leaf by leaf (`real_vdot`, `optax.tree.norm`), so sharded trees stay so."""
  tolerance = jnp.sqrt(eps)
  return real_vdot(s, y) > tolerance * optax.tree.norm(s) * optax.tree.norm(y)


class BFGSState(NamedTuple):
  """State of `scale_by_bfgs`."""

  count: chex.Array  # k: updates done so far (int32)
  inverse_hessian: chex.Array  # M (N, N) over `to_real_vector`'s ℝᴺ, M ≈ H⁻¹, positive definite
  num_pairs: chex.Array  # curvature pairs (s, y) taken into M
  num_skipped: chex.Array  # pairs skipped because sᵀy ≤ √ε ‖s‖‖y‖
  previous_params: optax.Params  # θ_{k−1}
  previous_grad: optax.Updates  # g_{k−1}


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


def scale_by_bfgs() -> optax.GradientTransformation:
  """The BFGS direction M g of Goodfellow et al. (2016) §8.6.3.

  At step k the pair s = θ_k − θ_{k−1}, y = g_k − g_{k−1} updates M by `bfgs_inverse_update`,
  if sᵀy > √ε ‖s‖‖y‖; otherwise the pair is skipped (M unchanged, ``num_skipped`` counted), so M
  stays positive definite even when a step crosses negative curvature (Nocedal & Wright 2006,
  §6.1: the update keeps M positive definite exactly when sᵀy > 0). Before the first pair M = I,
  and the first pair first sets M = γ I with γ = sᵀy / yᵀy (their eq. 6.20). The output is M g.
  M is dense (N × N), for N up to a few thousand, over the real coordinates of
  `to_real_vector` (a complex parameter is two real ones, so the steps on ℂⁿ are those on ℝ²ⁿ).

  Returns:
    An `optax.GradientTransformation` (its update needs ``params``) with state `BFGSState`.
  """

  def init_fn(params: optax.Params) -> BFGSState:
    # Shapes and dtypes only: also for jax.ShapeDtypeStruct leaves or a tree without leaves.
    dtype = real_dtype(params)
    size = real_size(params)
    dense.require_memory(  # M and its update, N × N each
      2 * size * size * jnp.dtype(dtype).itemsize,
      f"the N × N inverse Hessian approximation of N={size:,} parameters (with its update)",
      "use optim.lbfgs(memory_size=m), which keeps 2m vectors of N",
      "bfgs",
    )
    zeros = optax.tree.zeros_like(params)
    return BFGSState(
      count=jnp.zeros([], jnp.int32),
      inverse_hessian=jnp.eye(size, dtype=dtype),
      num_pairs=jnp.zeros([], jnp.int32),
      num_skipped=jnp.zeros([], jnp.int32),
      previous_params=zeros,  # not read before the first pair
      previous_grad=zeros,
    )

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("bfgs: update needs params, to form the curvature pair s = θ_k − θ_{k−1}")
    dtype = state.inverse_hessian.dtype
    g = to_real_vector(updates, dtype)
    s = to_real_vector(params, dtype) - to_real_vector(state.previous_params, dtype)
    y = g - to_real_vector(state.previous_grad, dtype)
    has_pair = state.count > 0
    take = has_pair & _curvature_ok(s, y, rounding_eps(params))
    scale = _safe_divide(jnp.vdot(s, y), jnp.vdot(y, y))
    start = jnp.where(
      state.num_pairs == 0, scale * jnp.eye(g.shape[0], dtype=dtype), state.inverse_hessian
    )
    inverse_hessian = jnp.where(take, bfgs_inverse_update(start, s, y), state.inverse_hessian)
    return from_real_vector(inverse_hessian @ g, updates), BFGSState(  # the step is −α M g
      count=optax.safe_increment(state.count),
      inverse_hessian=inverse_hessian,
      num_pairs=state.num_pairs + take.astype(jnp.int32),
      num_skipped=state.num_skipped + (has_pair & ~take).astype(jnp.int32),
      previous_params=params,
      previous_grad=updates,
    )

  return optax.GradientTransformation(init_fn, update_fn)


def bfgs(
  learning_rate: optax.ScalarOrSchedule | None = None,
  linesearch: LineSearch = STRONG_WOLFE,
) -> optax.GradientTransformationExtraArgs:
  """BFGS, Goodfellow et al. (2016) §8.6.3: θ ← θ − α M g with a strong-Wolfe line search.

  ``chain(scale_by_bfgs(), scale(−1), linesearch)``, the dense inverse-Hessian approximation M
  of `scale_by_bfgs` (positive definite: pairs with sᵀy ≤ √ε ‖s‖‖y‖ are skipped) and the
  strong-Wolfe line search `linesearch.scale_by_wolfe_linesearch` with c₂ = 0.9, as scipy's BFGS,
  and first trial α₀ = min(1, eq. 3.60) at the first step only, where M = I knows no scale, then
  α₀ = 1, the natural quasi-Newton step (N&W §3.5; `STRONG_WOLFE`'s
  ``initial_step="decrease_then_one"``; scipy takes min(1, eq. 3.60) at every step). With exact
  line searches on a strictly convex quadratic it ends in N steps with M = H⁻¹.

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


def _two_loop(
  grad: optax.Updates, state: optax.ScaleByLBFGSState, identity_scale: jax.Array
) -> optax.Updates:
  """H_k g by the two-loop recursion (Nocedal & Wright 2006, Alg. 7.4) over the stored pairs,
  newest first, then oldest first; as Optax's ``_precondition_by_lbfgs``, with `real_vdot`."""
  memory_size = state.weights_memory.shape[0]
  order = (state.count % memory_size + jnp.arange(memory_size)) % memory_size  # oldest first

  def pair(index):
    return jax.tree.map(lambda x: x[index], (state.diff_params_memory, state.diff_updates_memory))

  def newest_first(vector, index):
    s, y = pair(index)
    alpha = state.weights_memory[index] * real_vdot(s, vector)
    return optax.tree.cast_like(optax.tree.add_scale(vector, -alpha, y), vector), alpha

  def oldest_first(vector, index_alpha):
    index, alpha = index_alpha
    s, y = pair(index)
    beta = state.weights_memory[index] * real_vdot(y, vector)
    return optax.tree.cast_like(optax.tree.add_scale(vector, alpha - beta, s), vector), None

  vector, alphas = jax.lax.scan(newest_first, grad, order, reverse=True)
  vector = optax.tree.scale(identity_scale, vector)
  return jax.lax.scan(oldest_first, vector, (order, alphas))[0]


def scale_by_checked_lbfgs(memory_size: int = 10) -> optax.GradientTransformation:
  """L-BFGS's direction H_k g: `optax.scale_by_lbfgs`'s, with the curvature-pair check it lacks.

  The same state, initial scaling and two-loop recursion as Optax 0.2.8 (γ = sᵀy/yᵀy of the
  newest pair; min(1, 1/‖g‖) at the first step), written here for two reasons:
  - Optax stores every pair (s, y) with weight ρ = 1/(sᵀy), also when sᵀy < 0, which makes its
    inverse-Hessian approximation indefinite and can turn the direction uphill (Optax issue
    1708). Here a pair with sᵀy ≤ √ε ‖s‖‖y‖ is stored as s = y = 0 with weight 0, a pair that the
    recursion passes through unchanged, and γ = 1 for that step. The skipped pair still takes a
    memory slot, so the oldest pair is dropped one step early.
  - Optax's inner products (``optax.tree.vdot``) flatten each leaf, which explicit sharding
    refuses; here every one is summed where its leaf lies (`real_vdot`).

  Args:
    memory_size: m, the number of pairs kept.

  Returns:
    An `optax.GradientTransformation` with Optax's `optax.ScaleByLBFGSState`.
  """
  validate.require_positive_int("memory_size", memory_size, "lbfgs")

  def init_fn(params):
    size = real_size(params)
    dense.require_memory(  # the m pairs (s, y)
      2 * memory_size * size * jnp.dtype(real_dtype(params)).itemsize,
      f"storing memory_size={memory_size} curvature pairs (s, y) of N={size:,} parameters",
      "lower memory_size",
      "lbfgs",
    )
    zeros = optax.tree.zeros_like(params)
    # the pairs stacked along a first axis, as Optax stores them; each slot sharded as its leaf
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (memory_size, *x.shape)), zeros)
    return optax.ScaleByLBFGSState(
      count=jnp.zeros([], jnp.int32),
      params=zeros,
      updates=zeros,
      diff_params_memory=stacked,
      diff_updates_memory=stacked,
      weights_memory=jnp.zeros(memory_size),
    )

  def update_fn(updates, state, params):
    s = optax.tree.sub(params, state.params)
    y = optax.tree.sub(updates, state.updates)
    take = (state.count > 0) & _curvature_ok(s, y, rounding_eps(params))
    s, y = (jax.tree.map(lambda x: jnp.where(take, x, jnp.zeros_like(x)), t) for t in (s, y))
    curvature = real_vdot(y, s)  # sᵀy, 0 for a skipped pair
    slot = (state.count - 1) % memory_size

    def store(memory, pairs):  # in the memory's dtype: mixed precision keeps init's types
      return jax.tree.map(lambda m, x: m.at[slot].set(x.astype(m.dtype)), memory, pairs)

    state = state._replace(
      diff_params_memory=store(state.diff_params_memory, s),
      diff_updates_memory=store(state.diff_updates_memory, y),
      weights_memory=state.weights_memory.at[slot].set(_safe_divide(1.0, curvature)),
    )
    first = jnp.minimum(1.0, 1.0 / optax.tree.norm(updates))
    later = jnp.where(take, _safe_divide(curvature, optax.tree.norm(y, squared=True)), 1.0)
    identity_scale = jnp.where(state.count > 0, later, first)
    direction = _two_loop(updates, state, identity_scale)
    return direction, state._replace(
      count=optax.safe_increment(state.count), params=params, updates=updates
    )

  return optax.GradientTransformation(init_fn, update_fn)


def lbfgs(
  memory_size: int = 10,
  learning_rate: optax.ScalarOrSchedule | None = None,
  linesearch: LineSearch = STRONG_WOLFE,
) -> optax.GradientTransformationExtraArgs:
  """L-BFGS, Goodfellow et al. (2016) §8.6.3: `optax.lbfgs` with the curvature-pair check.

  ``chain(scale_by_checked_lbfgs(memory_size), scale(−1), linesearch)``: the two-loop recursion
  (Nocedal & Wright 2006, Alg. 7.4) over the last m pairs as Optax computes it, pairs of
  non-positive curvature skipped and every inner product sharding-safe
  (`scale_by_checked_lbfgs`), and the strong-Wolfe line search
  `linesearch.scale_by_wolfe_linesearch` (c₂ = 0.9, first trial 1 after the first step, as in
  `optax.lbfgs`, whose zoom line search it replaces). With ``linesearch=`` Optax's
  ``scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")`` and every
  pair passing the check, the steps are exactly `optax.lbfgs`'s.

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
