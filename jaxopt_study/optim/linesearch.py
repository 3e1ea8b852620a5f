"""A strong-Wolfe line search that interpolates with both slopes, as scipy's and MINPACK's do.

Nocedal & Wright (2006), *Numerical Optimization*, Algorithms 3.5 (bracketing) and 3.6 (zoom),
with every new trial the minimizer of the cubic through the values and slopes of the last two
points (their eq. 3.59; Moré & Thuente 1994), the first trial guessed from the last decrease
(their eq. 3.60, as `scipy.optimize.line_search` and MINPACK's ``dcsrch`` are called by scipy's
CG and BFGS), the value and gradient of the accepted trial handed on to the next update (through
`optax.value_and_grad_from_state`), and a flagged stop, with no step, when the working precision
allows no decrease. Goodfellow et al. (2016) §8.6.2 ask for this "line search to find ε*" in
conjugate gradients (Algorithm 8.9) and BFGS.

Why not `optax.scale_by_zoom_linesearch` (Optax 0.2.8), which we used before: its bracketing
phase doubles the step without interpolating, its zoom's cubic uses three values and one slope
where two slopes are at hand, and its first guess is 1 or the last step, not eq. 3.60. On a
quadratic, where the cubic through two values and slopes is exact, this search lands on the
minimizer at its second trial; Optax's needs a third or more. The function and gradient
evaluations of both searches against scipy's, on the five problems of
`benchmarks/second_order.py`, are in `benchmarks/RESULTS.md` ("Line searches as frugal as
scipy's").
When Optax's search fails it applies its last trial, even one that raised f (Optax's
``test_steep_objective`` sent our CG to f = 1e13); this one keeps the best point that decreased f,
or does not move.

Complex parameters are handled as Optax handles them: the caller passes the conjugate of
`jax.grad` (Optax's convention), slopes are real parts of inner products, and the gradient kept
in the state is `jax.grad`'s at the new point, as in Optax's line searches.
"""

from typing import Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxopt_study import validate
from jaxopt_study.hessian import dense
from jaxopt_study.optim.extra_args import value_fn_kwargs

WHERE = "wolfe_linesearch"
INITIAL_STEPS = ("decrease", "one", "decrease_then_one")


class WolfeLinesearchInfo(NamedTuple):
  """What the last line search did."""

  num_linesearch_steps: chex.Array  # trials, one evaluation of f and ∇f each
  wolfe: chex.Array  # the step met the strong Wolfe conditions (or their approximate form)
  stalled: chex.Array  # no trial decreased f in the working precision: no step was taken


class ScaleByWolfeLinesearchState(NamedTuple):
  """State of `scale_by_wolfe_linesearch`."""

  learning_rate: chex.Array  # α, the step taken along the update at the last call
  value: chex.Array  # f at the point it led to (inf before the first call)
  grad: optax.Updates  # ∇f there (`jax.grad`'s)
  previous_value: chex.Array  # f where the last call started (f_{k−1} of eq. 3.60; inf at first)
  info: WolfeLinesearchInfo


class _Search(NamedTuple):
  """The loop's carry: the best point so far, the other end of the bracket, the next trial."""

  count: chex.Array
  trial: chex.Array  # α to evaluate next
  low: chex.Array  # the lowest point with sufficient decrease so far (0 at the start)
  low_value: chex.Array
  low_slope: chex.Array
  low_grad: optax.Updates
  high: chex.Array  # the other end of the bracket, once bracketed
  high_value: chex.Array
  high_slope: chex.Array
  bracketed: chex.Array
  widths: chex.Array  # the bracket's width after the last two trials (for the bisection guard)
  done: chex.Array  # the last trial met the conditions, and is `low`
  exhausted: chex.Array  # the working precision cannot tell the bracket's points apart


def real_dtype(params: optax.Params) -> jnp.dtype:
  """The real floating dtype of the params (float32/64; complex64 → float32); default if none."""
  leaves = jax.tree.leaves(params)
  dtype = jnp.result_type(*(leaf.dtype for leaf in leaves)) if leaves else jnp.result_type(float)
  if not jnp.issubdtype(dtype, jnp.inexact):
    dtype = jnp.result_type(float)
  return jnp.finfo(dtype).dtype


def rounding_eps(params: optax.Params) -> float:
  """ε of the least precise floating leaf (`hessian.dense.least_precise_dtype`; of its real part,
  for a complex one): the relative rounding of what is computed from all the params, f, ∇f or
  H, though `real_dtype` is wider (a float32 model with one float64 leaf computes in float32,
  its sums promote to float64)."""
  return float(jnp.finfo(dense.least_precise_dtype(params)).eps)


def real_vdot(a: optax.Updates, b: optax.Updates) -> jax.Array:
  """Re ⟨a, b⟩ = Re Σ conj(a) b over every leaf, the real inner product (of ℝ²ⁿ for complex
  leaves): `optax.tree.real(optax.tree.vdot(a, b))`, but each leaf is summed where it lies, not
  flattened first (`jnp.vdot` reshapes, which explicit sharding refuses; a sum it allows).
  Accumulated in at least float32, returned in the leaves' real dtype."""

  def leaf(x: jax.Array, y: jax.Array) -> jax.Array:
    product = jnp.real(jnp.conj(x) * y)
    accumulate = jnp.promote_types(product.dtype, jnp.float32)
    return jnp.sum(product, dtype=accumulate).astype(product.dtype)

  return sum(jax.tree.leaves(jax.tree.map(leaf, a, b)), start=0.0)


def slope_along(grad: optax.Updates, direction: optax.Updates) -> jax.Array:
  """φ'(α) = Re ⟨∇f, u⟩ for `jax.grad`'s gradient (for complex leaves: Re Σ g u, no conjugate)."""
  return real_vdot(optax.tree.conj(grad), direction)


def cubic_minimizer(a, value_a, slope_a, b, value_b, slope_b) -> jax.Array:
  """The minimizer of the cubic with the given values and slopes at a and b (N&W eq. 3.59).

  NaN where that cubic has no local minimizer; exact when φ is quadratic (the secant step on
  the slopes, b − (b − a) φ'(b) / (φ'(b) − φ'(a))).
  """
  d1 = slope_a + slope_b - 3 * (value_a - value_b) / (a - b)
  d2 = jnp.sign(b - a) * jnp.sqrt(d1 * d1 - slope_a * slope_b)
  return b - (b - a) * (slope_b + d2 - d1) / (slope_b - slope_a + 2 * d2)


def interpolated_minimizer(a, value_a, slope_a, b, value_b, slope_b, noise) -> jax.Array:
  """`cubic_minimizer`, or the secant step on the slopes where the two values differ by no more
  than `noise` (the rounding of f), so that their difference carries no information; both are
  exact on a quadratic. NaN where neither has a minimizer."""
  secant = b - slope_b * (b - a) / (slope_b - slope_a)
  secant = jnp.where(slope_b > slope_a, secant, jnp.nan)  # positive curvature only
  cubic = cubic_minimizer(a, value_a, slope_a, b, value_b, slope_b)
  return jnp.where(jnp.abs(value_a - value_b) > noise, cubic, secant)


def scale_by_wolfe_linesearch(
  curv_rtol: float = 0.9,
  slope_rtol: float = 1e-4,
  max_linesearch_steps: int = 20,
  initial_step: Literal["decrease", "one", "decrease_then_one"] = "decrease",
  max_initial_step: float | None = 1.0,
  approx_dec_rtol: float | None = 1e-6,
) -> optax.GradientTransformationExtraArgs:
  """Scales the update u by a step α meeting the strong Wolfe conditions (N&W Alg. 3.5–3.6).

  With φ(α) = f(θ + α u), the step satisfies sufficient decrease and small curvature,

  .. math::
    φ(α) ≤ φ(0) + c_1 α φ'(0), \\qquad |φ'(α)| ≤ c_2 |φ'(0)|

  (N&W eq. 3.7), or, where f has come within ``approx_dec_rtol`` · |f| of the rounding level,
  Hager & Zhang's (2005) approximate form of the first, φ'(α) ≤ (2c₁ − 1) φ'(0) with
  φ(α) ≤ φ(0) + ``approx_dec_rtol`` · |φ(0)| (as Optax's zoom search). Trials:

  * the first, α₀ = min(``max_initial_step``, 1.01 · 2 (f_k − f_{k−1}) / φ'(0)) (N&W eq. 3.60,
    scipy's factor 1.01), with f_{−1} = f₀ + ‖g‖/2 at the first call (for u = −g a step of
    length about 1); 1 if that guess is not a positive number. ``initial_step="one"``: always 1;
    ``"decrease_then_one"``: eq. 3.60 at the first call, then 1;
  * while no bracket is known, the minimizer of the cubic through the last two points, a further
    0.01 to 5 times their distance beyond the last (N&W Alg. 3.5);
  * inside a bracket, the minimizer of the cubic through its two ends (eq. 3.59), or bisection
    when that falls outside or the bracket has not shrunk by a third in two trials (Moré &
    Thuente's guard) (N&W Alg. 3.6).

  Where two values of f differ by less than their rounding (100 ε |f|), the cubic's value term is
  noise and the secant step on the slopes replaces it (also exact on a quadratic). On a
  quadratic, then, the second trial is the exact minimizer along u. The search ends at the first
  trial meeting the conditions, after ``max_linesearch_steps`` trials, or when the bracket's ends
  are a few ulps apart. Without a trial meeting the conditions, the step is the lowest trial with
  sufficient decrease, or 0 when none decreased f (or when u is not a descent direction,
  φ'(0) ≥ 0): then ``info.stalled`` is set, the parameters do not move, and the caller should
  stop, as scipy stops on "precision loss" (`is_stalled` reads the flag).

  Args:
    curv_rtol: c₂ ∈ (c₁, 1): N&W §3.1 suggest 0.9 for quasi-Newton directions, 0.1 for
      conjugate gradients.
    slope_rtol: c₁ ∈ (0, c₂).
    max_linesearch_steps: the most trials per call.
    initial_step: ``"decrease"`` (eq. 3.60), ``"one"`` or ``"decrease_then_one"``.
    max_initial_step: the cap on the first trial (1 for (quasi-)Newton directions, whose natural
      step is 1), or None.
    approx_dec_rtol: the relative tolerance on f of the approximate condition, or None for the
      plain Armijo condition.

  Returns:
    An `optax.GradientTransformationExtraArgs` whose update takes ``value=``, ``grad=`` and
    ``value_fn=`` (and the keyword arguments of ``value_fn``), with state
    `ScaleByWolfeLinesearchState`; `optax.value_and_grad_from_state` reuses its value and
    gradient at the new point. The update α u is in each parameter's dtype, and every trial point
    is the one `optax.apply_updates` makes of its update, so that a float32 leaf beside a float64
    one stays float32 in ``value_fn`` and the value kept is f at the new parameters.
  """
  validate.require_unit_interval("slope_rtol", slope_rtol, WHERE, include_zero=False)
  validate.require_unit_interval("curv_rtol", curv_rtol, WHERE, include_zero=False)
  if not slope_rtol < curv_rtol:
    raise ValueError(f"{WHERE}: slope_rtol={slope_rtol} must be < curv_rtol={curv_rtol}")
  validate.require_positive_int("max_linesearch_steps", max_linesearch_steps, WHERE)
  validate.require_choice("initial_step", initial_step, WHERE, INITIAL_STEPS)
  if max_initial_step is not None:
    validate.require_positive("max_initial_step", max_initial_step, WHERE)
  if approx_dec_rtol is not None:
    validate.require_non_negative("approx_dec_rtol", approx_dec_rtol, WHERE)

  def init_fn(params: optax.Params) -> ScaleByWolfeLinesearchState:
    dtype = real_dtype(params)
    return ScaleByWolfeLinesearchState(
      learning_rate=jnp.ones([], dtype),
      value=jnp.full([], jnp.inf, dtype),
      grad=optax.tree.zeros_like(params),
      previous_value=jnp.full([], jnp.inf, dtype),
      info=WolfeLinesearchInfo(
        num_linesearch_steps=jnp.zeros([], jnp.int32),
        wolfe=jnp.asarray(False),
        stalled=jnp.asarray(False),
      ),
    )

  def first_trial(value, previous_value, slope, grad):
    first = jnp.isinf(previous_value)
    if initial_step == "one":
      return jnp.ones_like(value)
    previous_value = jnp.where(first, value + optax.tree.norm(grad) / 2, previous_value)
    guess = 1.01 * 2 * (value - previous_value) / slope
    guess = jnp.where(jnp.isfinite(guess) & (guess > 0), guess, 1.0)
    if max_initial_step is not None:
      guess = jnp.minimum(guess, max_initial_step)
    return jnp.where(first | (initial_step == "decrease"), guess, 1.0)

  def update_fn(updates, state, params, *, value, grad, value_fn, **extra_args):
    dtype = state.value.dtype
    eps = jnp.finfo(dtype).eps
    fn_kwargs = value_fn_kwargs(value_fn, extra_args)
    value_and_grad = jax.value_and_grad(value_fn)
    value0 = jnp.asarray(value, dtype)
    noise = 100 * eps * jnp.abs(value0)  # below this, two values of f are not told apart
    slope0 = real_vdot(updates, grad).astype(dtype)  # φ'(0) < 0

    def update_for(step):  # α u in each parameter's dtype (α is in the widest one)
      return optax.tree.cast_like(optax.tree.scale(step, updates), params)

    def evaluate(step):
      # the very point `optax.apply_updates` makes of the update returned for this step, so that
      # the f and ∇f kept for the next update are f and ∇f at the new parameters
      point = optax.apply_updates(params, update_for(step))
      trial_value, trial_grad = value_and_grad(point, **fn_kwargs)
      trial_grad = optax.tree.cast_like(trial_grad, grad)
      return trial_value.astype(dtype), slope_along(trial_grad, updates).astype(dtype), trial_grad

    def decreases(step, trial_value, trial_slope):
      armijo = trial_value <= value0 + slope_rtol * step * slope0
      if approx_dec_rtol is None:
        return armijo
      approximate = (trial_value <= value0 + approx_dec_rtol * jnp.abs(value0)) & (
        trial_slope <= (2 * slope_rtol - 1) * slope0
      )
      return armijo | approximate

    def body(s: _Search) -> _Search:
      step = s.trial
      trial_value, trial_slope, trial_grad = evaluate(step)
      sufficient = decreases(step, trial_value, trial_slope)
      done = sufficient & (jnp.abs(trial_slope) <= curv_rtol * jnp.abs(slope0))
      better = sufficient & (trial_value < s.low_value)
      # N&W Alg. 3.5/3.6: a trial no better than `low` ends the bracket; a better one becomes
      # `low`, and its slope says on which side the minimizer lies.
      becomes_high = ~better & ~done
      old_low_is_high = better & (trial_slope * (step - s.low) >= 0)
      high, high_value, high_slope = optax.tree.where(
        becomes_high,
        (step, trial_value, trial_slope),
        optax.tree.where(
          old_low_is_high, (s.low, s.low_value, s.low_slope), (s.high, s.high_value, s.high_slope)
        ),
      )
      bracketed = s.bracketed | becomes_high | old_low_is_high
      moves = better | done
      low, low_value, low_slope, low_grad = optax.tree.where(
        moves,
        (step, trial_value, trial_slope, trial_grad),
        (s.low, s.low_value, s.low_slope, s.low_grad),
      )
      # The next trial: inside the bracket, the cubic through its ends (bisection as a guard);
      # before one, the cubic through the last two points, a further 0.01-5 times their distance.
      lower, upper = jnp.minimum(low, high), jnp.maximum(low, high)
      inside = interpolated_minimizer(
        low, low_value, low_slope, high, high_value, high_slope, noise
      )
      slow = jnp.abs(high - low) > 0.66 * s.widths[0]
      use_cubic = (inside > lower) & (inside < upper) & ~slow
      zoom = jnp.where(use_cubic, inside, (low + high) / 2)
      distance = step - s.low
      beyond = interpolated_minimizer(
        s.low, s.low_value, s.low_slope, step, trial_value, trial_slope, noise
      )
      beyond = jnp.where(jnp.isnan(beyond), step + 5 * distance, beyond)
      beyond = jnp.clip(beyond, step + 0.01 * distance, step + 5 * distance)
      width = jnp.abs(high - low)
      exhausted = bracketed & (width <= 4 * eps * upper)  # ends a few ulps apart
      return _Search(
        count=s.count + 1,
        trial=jnp.where(bracketed, zoom, beyond),
        low=low,
        low_value=low_value,
        low_slope=low_slope,
        low_grad=low_grad,
        high=high,
        high_value=high_value,
        high_slope=high_slope,
        bracketed=bracketed,
        widths=jnp.stack([s.widths[1], jnp.where(bracketed, width, jnp.inf)]),
        done=done,
        exhausted=exhausted,
      )

    def cond(s: _Search) -> jax.Array:
      return ~s.done & ~s.exhausted & (s.count < max_linesearch_steps)

    zero = jnp.zeros([], dtype)
    start = _Search(
      count=jnp.zeros([], jnp.int32),
      trial=first_trial(value0, state.previous_value, slope0, grad).astype(dtype),
      low=zero,
      low_value=value0,
      low_slope=slope0,
      low_grad=optax.tree.conj(grad),  # jax.grad's gradient at θ (conj undoes Optax's convention)
      high=zero,
      high_value=value0,
      high_slope=slope0,
      bracketed=jnp.asarray(False),
      widths=jnp.full([2], jnp.inf, dtype),
      done=jnp.asarray(False),
      exhausted=~(slope0 < 0),  # not a descent direction (or NaN): no trial, no step
    )
    end = jax.lax.while_loop(cond, body, start)
    new_state = ScaleByWolfeLinesearchState(
      learning_rate=end.low,
      value=end.low_value,
      grad=end.low_grad,
      previous_value=value0,
      info=WolfeLinesearchInfo(
        num_linesearch_steps=end.count, wolfe=end.done, stalled=end.low == 0
      ),
    )
    return update_for(end.low), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def is_stalled(state: optax.OptState) -> jax.Array:
  """Whether the last line search in `state` found no decrease of f: the caller should stop."""
  return optax.tree.get(state, "stalled")
