"""Learning-rate schedules ε_k of Goodfellow et al. (2016) §8.3.1 and the usual lecture variants.

Each returns an `optax.Schedule`: a function of the 0-based step count k, as Optax calls it, that
any optimizer of `jaxopt_study.optim` (or of Optax) takes as its `learning_rate`. Arguments are
checked when the schedule is built. The step count is converted to the default float type
before the Optax schedule sees it: Optax computes k / τ from the int32 count in float32 even when
float64 is enabled, which would round every ε_k of a float64 run to float32.
"""

import chex
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

  This is `optax.exponential_decay(init_value, s, γ, staircase=True)`.

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

  This is `optax.exponential_decay(init_value, s, γ)`.

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
  """`optax.exponential_decay` after checking ε_0 ≥ 0, γ ∈ (0, 1] and s ≥ 1, each `(name,
  value)` named as the caller spells it."""
  validate.require_non_negative("init_value", init_value, where)
  validate.require_unit_interval(*factor, where, include_zero=False, include_one=True)
  validate.require_positive_int(*steps, where)
  return _with_float_count(
    optax.exponential_decay(
      init_value, transition_steps=steps[1], decay_rate=factor[1], staircase=staircase
    )
  )


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
