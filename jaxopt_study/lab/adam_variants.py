"""Adam without its bias correction, to show what the correction is for (`failure_modes`).

Goodfellow et al. (2016), Algorithm 8.7, divides the moment estimates by 1 − ρ₁ᵗ and 1 − ρ₂ᵗ
because they start at 0 (Kingma & Ba 2015, §3). Without that correction the first update is
ε m₁/√r₁ = ε (1 − ρ₁) g / √((1 − ρ₂) g²) = ε (1 − ρ₁)/√(1 − ρ₂) sign(g) (δ aside): with the
defaults ρ₁ = 0.9, ρ₂ = 0.999, about 3.16 times the corrected step ε sign(g). For a constant
gradient the ratio of the two steps at step t is (1 − ρ₁ᵗ)/√(1 − ρ₂ᵗ) (`uncorrected_step_ratio`).
"""

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_study import validate


class ScaleByUncorrectedAdamState(NamedTuple):
  """The step count and the two moment estimates, without their bias correction."""

  count: chex.Array
  first_moment: optax.Updates
  second_moment: optax.Updates


def scale_by_uncorrected_adam(
  b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
  """m ← ρ₁m + (1 − ρ₁)g, r ← ρ₂r + (1 − ρ₂)g², direction m/(√r + δ): Algorithm 8.7 without its
  lines ŝ = s/(1 − ρ₁ᵗ), r̂ = r/(1 − ρ₂ᵗ). δ > 0, as `optim.adam`'s: with δ = 0 a coordinate
  whose gradient is 0 takes 0/0 = NaN."""
  validate.require_unit_interval("b1", b1, "scale_by_uncorrected_adam")
  validate.require_unit_interval("b2", b2, "scale_by_uncorrected_adam")
  validate.require_positive("eps", eps, "scale_by_uncorrected_adam")

  def init_fn(params: optax.Params) -> ScaleByUncorrectedAdamState:
    zeros = optax.tree.zeros_like(params)
    return ScaleByUncorrectedAdamState(jnp.zeros([], jnp.int32), zeros, zeros)

  def update_fn(updates, state, params=None):
    del params
    first = optax.tree.update_moment(updates, state.first_moment, b1, 1)
    second = optax.tree.update_moment_per_elem_norm(updates, state.second_moment, b2, 2)
    direction = jax.tree.map(lambda m, r: m / (jnp.sqrt(r) + eps), first, second)
    return direction, ScaleByUncorrectedAdamState(state.count + 1, first, second)

  return optax.GradientTransformation(init_fn, update_fn)


def uncorrected_adam(
  learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
  """Adam (Algorithm 8.7) with the bias correction left out."""
  return optax.chain(
    scale_by_uncorrected_adam(b1, b2, eps), optax.scale_by_learning_rate(learning_rate)
  )


def uncorrected_step_ratio(step: np.ndarray, b1: float = 0.9, b2: float = 0.999) -> np.ndarray:
  """(1 − ρ₁ᵗ)/√(1 − ρ₂ᵗ): the uncorrected step over the corrected one for a constant gradient
  (δ = 0), at step t = 1, 2, …"""
  step = np.asarray(step, np.float64)
  return (1 - b1**step) / np.sqrt(1 - b2**step)
