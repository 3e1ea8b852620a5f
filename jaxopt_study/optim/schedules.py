"""Learning-rate schedules ε_k of Goodfellow et al. (2016) §8.3.1 and the usual lecture variants.

Each returns an `optax.Schedule`: a function of the 0-based step count k, as Optax calls it, that
any optimizer of `jaxopt_study.optim` (or of Optax) takes as its `learning_rate`. Arguments are
checked when the schedule is built. The step count is converted to the default float type
before the Optax schedule sees it: Optax computes k / τ from the int32 count in float32 even when
float64 is enabled, which would round every ε_k of a float64 run to float32.
"""

from collections.abc import Sequence

import chex
import jax
import jax.numpy as jnp
import optax

from jaxopt_study import validate


def _with_float_count(schedule: optax.Schedule) -> optax.Schedule:
  """Calls `schedule` with the count converted to the default float type.

  Optax's schedules divide the int32 count, which yields float32 even when float64 is enabled;
  with the count converted first, a float64 run gets ε_k in float64 (and a float32 run in float32).
  """
  return lambda count: schedule(jnp.asarray(count, dtype=float))


def linear_decay(init_value: float, end_value: float, transition_steps: int) -> optax.Schedule:
  """Linear decay, Goodfellow et al. (2016) eq. 8.14: ε_k = (1 − α) ε_0 + α ε_τ, α = k / τ.

  ε_k goes linearly from ε_0 = `init_value` at k = 0 to ε_τ = `end_value` at k = τ and stays at
  ε_τ afterwards. This is `optax.linear_schedule`, called with a float count (so that a float64
  run gets a float64 ε_k).

  Args:
    init_value: ε_0 ≥ 0.
    end_value: ε_τ ≥ 0 (the book suggests about 1% of ε_0).
    transition_steps: τ ≥ 1, the number of steps of the decay.

  Returns:
    An `optax.Schedule`.
  """
  where = "linear_decay"
  validate.require_non_negative("init_value", init_value, where)
  validate.require_non_negative("end_value", end_value, where)
  validate.require_positive_int("transition_steps", transition_steps, where)
  return _with_float_count(optax.linear_schedule(init_value, end_value, transition_steps))


def step_decay(init_value: float, decay_factor: float, step_size: int) -> optax.Schedule:
  """Step decay: ε_k = ε_0 · γ^⌊k / s⌋, the rate multiplied by γ every s steps.

  This is `optax.exponential_decay(init_value, s, γ, staircase=True)`'s formula, computed here so
  that γ may be traced (a sweep axis): Optax tests `decay_rate == 0` in Python.

  Args:
    init_value: ε_0 ≥ 0.
    decay_factor: γ ∈ (0, 1].
    step_size: s ≥ 1, the number of steps between two drops.

  Returns:
    An `optax.Schedule`.
  """
  factor, steps = ("decay_factor", decay_factor), ("step_size", step_size)
  return _checked_exponential_decay("step_decay", init_value, factor, steps, staircase=True)


def exponential_decay(
  init_value: float, decay_rate: float, transition_steps: int = 1
) -> optax.Schedule:
  """Exponential decay: ε_k = ε_0 · γ^(k / s), smooth, losing the factor γ every s steps.

  This is `optax.exponential_decay(init_value, s, γ)`'s formula, computed here so that γ may be
  traced (a sweep axis): Optax tests `decay_rate == 0` in Python.

  Args:
    init_value: ε_0 ≥ 0.
    decay_rate: γ ∈ (0, 1].
    transition_steps: s ≥ 1.

  Returns:
    An `optax.Schedule`.
  """
  factor, steps = ("decay_rate", decay_rate), ("transition_steps", transition_steps)
  return _checked_exponential_decay("exponential_decay", init_value, factor, steps)


def _checked_exponential_decay(
  where: str,
  init_value: float,
  factor: tuple[str, float],
  steps: tuple[str, int],
  staircase: bool = False,
) -> optax.Schedule:
  """ε_0 · γ^(k / s) (⌊k / s⌋ with `staircase`) after checking ε_0 ≥ 0, γ ∈ (0, 1] and s ≥ 1
  (a traced value is checked for its type only), each `(name, value)` named as the caller spells
  it."""
  validate.require_non_negative("init_value", init_value, where)
  validate.require_unit_interval(*factor, where, include_zero=False, include_one=True)
  validate.require_positive_int(*steps, where)
  decay_rate, transition_steps = factor[1], steps[1]

  def schedule(count: jax.Array) -> jax.Array:
    exponent = count / transition_steps
    if staircase:
      exponent = jnp.floor(exponent)
    return init_value * jnp.power(decay_rate, exponent)

  return _with_float_count(schedule)


def inverse_time_decay(init_value: float, decay_rate: float) -> optax.Schedule:
  """Inverse-time decay: ε_k = ε_0 / (1 + γ k).

  Σ ε_k diverges while Σ ε_k² converges, the sufficient condition for SGD's convergence stated in
  Goodfellow et al. (2016) eq. 8.12 and 8.13. Optax has no such schedule.

  Args:
    init_value: ε_0 ≥ 0.
    decay_rate: γ ≥ 0.

  Returns:
    An `optax.Schedule`.
  """
  where = "inverse_time_decay"
  validate.require_non_negative("init_value", init_value, where)
  validate.require_non_negative("decay_rate", decay_rate, where)

  def schedule(count: chex.Numeric) -> chex.Numeric:
    return init_value / (1 + decay_rate * count)

  return _with_float_count(schedule)


def _require_rate_range(low_name: str, low: float, max_value: float, where: str) -> None:
  """Both rates ≥ 0 and `max_value` ≥ the low one, or a ValueError naming them (a traced rate, a
  sweep axis, is not compared: `validate`'s rule)."""
  validate.require_non_negative(low_name, low, where)
  validate.require_non_negative("max_value", max_value, where)
  validate.require_ordered(low_name, low, "max_value", max_value, where)


def cosine_warm_restarts(
  max_value: float,
  first_period: int,
  period_factor: int = 1,
  min_value: float = 0.0,
) -> optax.Schedule:
  """SGDR, cosine annealing with warm restarts (Loshchilov & Hutter 2017, eq. 5).

  .. math:: ε_k = ε_{min} + ½ (ε_{max} − ε_{min}) (1 + \\cos(π T_{cur} / T_i))

  with T_cur the steps since the last restart and T_i the length of the current cycle: T_0 =
  `first_period`, T_{i+1} = `period_factor` · T_i. Each cycle starts at ε_max and ends (at its last
  step) just above ε_min; Huang et al. (2017) take a snapshot there (`cycle_ends`). Written out
  because `optax.sgdr_schedule` needs every cycle's parameters listed by the caller; here the
  cycles' first steps are listed once, as exact integers, up to step 2³¹.

  Args:
    max_value: ε_max ≥ min_value.
    first_period: T_0 ≥ 1 steps.
    period_factor: T_mult ≥ 1, an integer as in the paper.
    min_value: ε_min ≥ 0.

  Returns:
    An `optax.Schedule`.
  """
  where = "cosine_warm_restarts"
  _require_rate_range("min_value", min_value, max_value, where)
  validate.require_positive_int("first_period", first_period, where)
  validate.require_positive_int("period_factor", period_factor, where)

  if period_factor > 1:  # every cycle's first step up to 2³¹, exact integers, listed once
    starts = [0]
    while starts[-1] < 2**31:
      starts.append(starts[-1] + first_period * period_factor ** (len(starts) - 1))

  def schedule(count: chex.Numeric) -> chex.Numeric:
    k = jnp.asarray(count, dtype=float)
    if period_factor == 1:
      start, length = jnp.floor(k / first_period) * first_period, jnp.asarray(first_period, float)
    else:  # the last cycle starting at or before k, found by comparing integers (a float power
      # T_0 T_mult^i is rounded, which put a restart step at the end of the cycle before it)
      bounds = jnp.asarray(starts, float)
      i = jnp.sum(bounds[1:] <= k)
      start, length = bounds[i], bounds[i + 1] - bounds[i]
    phase = (k - start) / length
    return min_value + 0.5 * (max_value - min_value) * (1 + jnp.cos(jnp.pi * phase))

  return schedule


def cycle_ends(first_period: int, period_factor: int, steps: int) -> list[int]:
  """The last step of every complete cycle of `cosine_warm_restarts` within `steps` steps: where
  a snapshot ensemble (Huang et al. 2017) takes its members."""
  validate.require_positive_int("first_period", first_period, "cycle_ends")
  validate.require_positive_int("period_factor", period_factor, "cycle_ends")
  ends, start, length = [], 0, first_period
  while start + length <= steps:
    ends.append(start + length - 1)
    start, length = start + length, length * period_factor
  return ends


def triangular_cycle(base_value: float, max_value: float, half_period: int) -> optax.Schedule:
  """The triangular cyclical learning rate of Smith (2017, "Cyclical learning rates", §3.1).

  .. math:: c = ⌊1 + k / (2s)⌋,  x = |k / s − 2c + 1|,  ε_k = ε_b + (ε_m − ε_b) max(0, 1 − x)

  ε_k rises linearly from ε_b = `base_value` at k = 0 to ε_m = `max_value` at k = s and falls back
  to ε_b at k = 2s, and so on (Optax has no cyclical schedule).

  Args:
    base_value: ε_b ≥ 0.
    max_value: ε_m ≥ ε_b.
    half_period: s ≥ 1, the steps of one rise (Smith's "stepsize").

  Returns:
    An `optax.Schedule`.
  """
  where = "triangular_cycle"
  _require_rate_range("base_value", base_value, max_value, where)
  validate.require_positive_int("half_period", half_period, where)

  def schedule(count: chex.Numeric) -> chex.Numeric:
    k = jnp.asarray(count, dtype=float)
    cycle = jnp.floor(1 + k / (2 * half_period))
    x = jnp.abs(k / half_period - 2 * cycle + 1)
    return base_value + (max_value - base_value) * jnp.maximum(0.0, 1 - x)

  return schedule


def choose_schedule(schedules: Sequence[optax.Schedule], index: chex.Numeric) -> optax.Schedule:
  """ε_k of `schedules[index]`, the index a number or a traced scalar (a sweep's axis).

  Every schedule is evaluated at k (scalars, cheap) and `jax.lax.switch` keeps the chosen one, so
  a sweep may put the choice of schedule on an axis beside the base rate and train every schedule
  in one compiled program (`lr_schedules`). A float index such as 2.0, as a sweep passes its
  values, is rounded.

  Args:
    schedules: the candidates, each an `optax.Schedule` (or a function of the count).
    index: which one, an integer in [0, len(schedules) − 1] (checked when concrete).

  Returns:
    An `optax.Schedule` in the default float type.
  """
  where = "choose_schedule"
  schedules = tuple(schedules)
  if not schedules or not all(callable(s) for s in schedules):
    raise ValueError(f"{where}: schedules must be a non-empty list of schedules (functions)")
  if not isinstance(index, jax.core.Tracer):
    validate.require_non_negative("index", index, where)
    if float(index) != round(float(index)) or round(float(index)) >= len(schedules):
      raise ValueError(f"{where}: index={index!r} must be an integer in [0, {len(schedules) - 1}]")
  branches = [lambda k, s=s: jnp.asarray(s(k), dtype=float) for s in schedules]

  def schedule(count: chex.Numeric) -> chex.Numeric:
    chosen = jnp.clip(jnp.round(jnp.asarray(index)).astype(jnp.int32), 0, len(schedules) - 1)
    return jax.lax.switch(chosen, branches, count)

  return schedule
