"""Cheap curvature monitors for training loops: gᵀHg along the gradient, and sharpness.

`curvature_along_gradient` is the quantity of Goodfellow et al. (2016), §8.2.1: a gradient step
of size ε changes the loss, to second order, by −ε gᵀg + ½ ε² gᵀHg (their eq. 4.9), so
ill-conditioning shows as ½ ε² gᵀHg outgrowing ε gᵀg while ‖g‖ does not shrink. `sharpness` is
the ε-sharpness of Keskar et al. (2017), the largest loss increase in a small box around θ.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from jaxopt_study import validate
from jaxopt_study.hessian import products


class CurvatureAlongGradient(NamedTuple):
  """gᵀg, gᵀHg and the second-order change of the loss after the step −ε g (0-d arrays)."""

  g_dot_g: jax.Array
  g_hess_g: jax.Array
  predicted_change: jax.Array


def _curvature(
  objective: products.Objective,
  flat: jax.Array,
  fixed: Any,
  data: tuple,
  learning_rate: jax.Array | None,
) -> tuple[jax.Array, jax.Array, CurvatureAlongGradient]:
  """(L(θ), g, the curvature along g): the loss and gradient for the point check."""
  loss, grad = products.loss_and_grad(objective, flat, fixed, data)
  g_hess_g = jnp.vdot(grad, products.hvp_rows(objective, flat, fixed, data, grad[None])[0])
  g_dot_g = jnp.vdot(grad, grad)
  if learning_rate is None:  # ε* = gᵀg / gᵀHg; with gᵀHg ≤ 0 the quadratic model has no floor
    positive = g_hess_g > 0
    change = jnp.where(positive, -0.5 * g_dot_g**2 / jnp.where(positive, g_hess_g, 1.0), -jnp.inf)
    change = jnp.where(g_dot_g > 0, change, 0.0)  # g = 0: no step, no change
  else:
    change = -learning_rate * g_dot_g + 0.5 * learning_rate**2 * g_hess_g
  return loss, grad, CurvatureAlongGradient(g_dot_g, g_hess_g, change)


_curvature_jit = jax.jit(_curvature, static_argnums=0)


def curvature_along_gradient(
  loss_fn: products.LossFn,
  params: Any,
  *args: Any,
  learning_rate: chex.Numeric | None = None,
  batches: Sequence[tuple] | None = None,
  mode: str | None = None,
) -> CurvatureAlongGradient:
  """gᵀg, gᵀHg and the predicted change of a gradient step (Goodfellow et al. 2016, §8.2.1).

  .. math:: L(θ − ε g) ≈ L(θ) − ε gᵀg + ½ ε² gᵀHg

  One gradient and one Hessian-vector product. With ``learning_rate=None`` the step is the one
  the quadratic model likes best, ε* = gᵀg / gᵀHg (eq. 4.10), predicting −½ (gᵀg)² / gᵀHg; when
  gᵀHg ≤ 0 (and g ≠ 0) the model predicts unbounded decrease and the change is −∞; at g = 0
  there is no step and the change is 0.

  Pure and jit-friendly: it returns 0-d arrays and works on traced params inside `jax.jit`
  (e.g. in a training step every n steps, under `jax.lax.cond`); its kernel is compiled once per
  (loss_fn, parameter structure, data shapes), so calling it in a Python loop does not recompile.

  Args:
    loss_fn, params, *args, batches, mode: the loss, as in `hvp`.
    learning_rate: ε, or None for ε*.

  Returns:
    `CurvatureAlongGradient(g_dot_g, g_hess_g, predicted_change)`.
  """
  where = "curvature_along_gradient"
  if learning_rate is not None:
    validate.require_non_negative("learning_rate", learning_rate, where)
  problem = products.prepare(loss_fn, params, args, batches, mode, where)
  rate = None if learning_rate is None else jnp.asarray(learning_rate, problem.flat_params.dtype)
  loss, grad, result = _curvature_jit(*problem, rate)
  measured = (result.g_dot_g, result.g_hess_g)
  if not any(isinstance(v, jax.core.Tracer) for v in measured):
    products.require_finite_point(problem, loss, grad, where)  # the loss too, not only g
    if not all(bool(jnp.isfinite(v)) for v in measured):  # bfloat16 arrays: not numpy's
      raise ValueError(f"{where}: the gradient or its curvature at params is not finite")
  return result


def _sharpness(
  objective: products.Objective,
  flat: jax.Array,
  fixed: Any,
  data: tuple,
  eps: jax.Array,
  corner: jax.Array,
  steps: int,
) -> jax.Array:
  loss, grad = products.loss_and_grad(objective, flat, fixed, data)
  half_width = eps * (jnp.abs(flat) + 1)
  tiny = jnp.sqrt(jnp.finfo(flat.dtype).eps) * (1 + jnp.abs(loss))
  # u = y / half_width lives in the unit box; at a critical point the gradient gives no
  # direction, so start from a small random corner instead of y = 0
  start = jnp.where(
    jnp.linalg.norm(grad) <= tiny,
    1e-2 * corner,
    jnp.zeros_like(flat),
  )
  step_size = 2.5 / steps  # Madry et al. (2018): any corner is reachable within the steps

  def ascend(_, carry):
    u, best = carry
    value, g = products.loss_and_grad(objective, flat + half_width * u, fixed, data)
    # sign with sign(0) = +1: a coordinate whose slope is 0 still moves (to the box's edge, where
    # a convex f is largest along it) instead of never leaving its start
    u = jnp.clip(u + step_size * jnp.where(g >= 0, 1.0, -1.0), -1.0, 1.0)
    return u, jnp.maximum(best, value)

  u, best = jax.lax.fori_loop(0, steps, ascend, (start, loss))
  best = jnp.maximum(best, products.loss_value(objective, flat + half_width * u, fixed, data))
  return 100.0 * (best - loss) / (1.0 + loss)


_sharpness_jit = jax.jit(_sharpness, static_argnums=(0, 6))


def sharpness(
  loss_fn: products.LossFn,
  params: Any,
  *args: Any,
  eps: float = 1e-3,
  steps: int = 20,
  batches: Sequence[tuple] | None = None,
  mode: str | None = None,
  key: jax.Array | None = None,
) -> float:
  """The ε-sharpness of Keskar et al. (2017), §2.2.2, in the full parameter space.

  .. math:: φ_{x,f}(ε) = 100 · \\frac{\\max_{y ∈ C_ε} f(x + y) − f(x)}{1 + f(x)},
     C_ε = \\{y : |y_i| ≤ ε (|x_i| + 1)\\}

  Keskar et al. maximize with L-BFGS-B, optionally in a random subspace; here the box is the full
  space (no subspace) and the maximization is projected sign-gradient ascent, the steepest ascent
  of the box's ℓ∞ geometry, as in the PGD attack of Madry et al. (2018):
  u ← clip(u + (2.5/steps) sign(∇f(x + h ⊙ u)), −1, 1) with y = h ⊙ u, h > 0 the half-widths
  and sign(0) = +1 (a coordinate of slope 0 still moves), from y = 0 (from a random corner of the
  box scaled by 1e-2 where ‖∇f(x)‖ ≤ √ε_mach (1 + |f|), since a critical point gives no
  direction). The largest f seen is kept. The ascent ends at a local maximum over the box (for a
  convex f, a corner where the gradient points out of the box; its largest corner is the global
  maximum, which the ascent need not reach), so φ is a lower bound of Keskar's metric.

  Args:
    loss_fn, params, *args, batches, mode: the loss, as in `hvp`.
    eps: ε, the relative half-width of the box.
    steps: ascent steps (one gradient each).
    key: PRNG key of the random start (default: a fixed seed).

  Returns:
    φ as a float (≥ 0).

  Raises:
    ValueError: the loss at params is negative (φ divides by 1 + f(x), made for losses ≥ 0).
  """
  validate.require_positive("eps", eps, "sharpness")
  products.require_count("steps", steps, "sharpness")
  problem = products.prepare(loss_fn, params, args, batches, mode, "sharpness", evaluate=True)
  products.require_non_negative_loss(problem, "sharpness")
  corner = products.host_rng(key).integers(0, 2, size=problem.num_params) * 2.0 - 1.0  # ±1
  value = _sharpness_jit(
    problem.objective,
    problem.flat_params,
    problem.fixed,
    problem.data,
    jnp.asarray(eps, problem.flat_params.dtype),
    jnp.asarray(corner, problem.flat_params.dtype),
    int(steps),
  )
  return float(value)
