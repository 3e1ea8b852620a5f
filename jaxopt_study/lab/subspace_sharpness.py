"""The ε-sharpness of Keskar et al. (2017) in a random subspace, maximized by L-BFGS-B as theirs.

Keskar, Mudigere, Nocedal, Smelyanskiy & Tang (2017), §2.2.2, Metric 2.1: for a matrix
A ∈ ℝ^{n×p} with random columns, the (C_ε, A)-sharpness of f at x is

.. math:: φ_{x,f}(ε, A) = 100 · \\frac{\\max_{z ∈ C_ε} f(x + A z) − f(x)}{1 + f(x)},
   C_ε = \\{z ∈ ℝ^p : |z_i| ≤ ε (|(A⁺x)_i| + 1),\\ i = 1 … p\\}   (their eq. 3)

with A⁺ the pseudo-inverse of A: the box is measured in the coordinates A⁺x of x in the subspace.
Without A (A = I_n) it is the full-space sharpness of their Table 3; p = 100 random columns give
their Table 4. They maximize with L-BFGS-B (Byrd et al. 1995; their repository's README points to
`scipy.optimize.fmin_l_bfgs_b`), and so does `subspace_sharpness`: scipy's L-BFGS-B on
−f(x + A z) within the bounds of C_ε, the value and the gradient Aᵀ∇f(x + A z) from one jitted
JAX call on the `hessian` tools' `Problem`, so every loss `hessian.sharpness` takes works here.
`hessian.sharpness` is the full-space metric maximized by projected sign-gradient ascent instead.

The columns of A are i.i.d. standard normal (Keskar et al. say only "randomly generated"), drawn
on the host from the key (`random_directions`), so the same key gives the same subspace whatever
the device. The scale of A matters: A⁺x ≈ Aᵀx / n is small (about ‖x‖/n per coordinate) and each
coordinate of A z is about √p ε, so the subspace box reaches further along its p directions than
the full box's ε (|x_i| + 1) per coordinate, and the subspace value may exceed the full-space one.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from jaxopt_study import validate
from jaxopt_study.hessian import products

WHERE = "subspace_sharpness"


def random_directions(key: jax.Array | None, num_params: int, num_directions: int) -> np.ndarray:
  """A ∈ ℝ^{N×p} with i.i.d. N(0, 1) entries, drawn on the host from `key` (None: seed 0); its
  rows follow the `ravel_pytree` order of the parameters."""
  products.require_count("num_params", num_params, "random_directions")
  products.require_count("num_directions", num_directions, "random_directions", size=num_params)
  return products.host_rng(key).standard_normal((num_params, num_directions))


def _value_and_ascent(
  objective: products.Objective,
  flat: jax.Array,
  fixed: Any,
  data: tuple,
  directions: jax.Array | None,
  z: jax.Array,
) -> tuple[jax.Array, jax.Array]:
  """(f(x + A z), Aᵀ ∇f(x + A z)); A = I when `directions` is None."""
  step = z if directions is None else directions @ z
  value, grad = products.loss_and_grad(objective, flat + step, fixed, data)
  return value, grad if directions is None else directions.T @ grad


_value_and_ascent_jit = jax.jit(_value_and_ascent, static_argnums=0)


def subspace_sharpness(
  loss_fn: products.LossFn,
  params: Any,
  *args: Any,
  eps: float = 1e-3,
  num_directions: int | None = 100,
  key: jax.Array | None = None,
  max_iterations: int = 100,
  num_starts: int = 1,
  batches: Sequence[tuple] | None = None,
  mode: str | None = None,
) -> float:
  """Keskar et al.'s (C_ε, A)-sharpness (Metric 2.1) at `params`, A with `num_directions` random
  columns (None: A = I, the full space), maximized by L-BFGS-B.

  L-BFGS-B starts at z = 0 (at a critical point, where the projected gradient Aᵀ∇f is zero and
  L-BFGS-B would not move, from a random corner of C_ε scaled by 1e-2) and runs for at most
  `max_iterations` iterations; the largest f it evaluated gives φ. The maximum of a convex f
  over the box lies at a corner, which L-BFGS-B reaches when the corner is the only local
  maximum; otherwise it finds a local maximum and φ is a lower bound, as Keskar et al.'s.
  Near a minimum of a network's loss a box often holds narrow basins where one training example
  is pushed across its decision boundary, far above the rest of the box, which a start at 0
  rarely finds: `num_starts` > 1 adds runs from random corners of C_ε (each run the same
  L-BFGS-B), and φ is the largest f of them all, a tighter lower bound.

  Args:
    loss_fn, params, *args, batches, mode: the loss f, as in `hessian.hvp`.
    eps: ε, the relative half-width of the box C_ε.
    num_directions: p, the columns of A, in [1, N]; None for the full space (A = I_N).
    key: PRNG key of A and of the random start (default: a fixed seed).
    max_iterations: L-BFGS-B iterations (each one or a few gradients of f), per start.
    num_starts: L-BFGS-B runs: from z = 0, and `num_starts` − 1 from random corners of C_ε.

  Returns:
    φ as a float (≥ 0).

  Raises:
    ValueError: the loss at params is negative (φ divides by 1 + f(x), made for losses ≥ 0).
  """
  validate.require_positive("eps", eps, WHERE)
  products.require_count("max_iterations", max_iterations, WHERE)
  products.require_count("num_starts", num_starts, WHERE)
  if num_directions is not None:
    products.require_count("num_directions", num_directions, WHERE)
  problem = products.prepare(loss_fn, params, args, batches, mode, WHERE, evaluate=True)
  products.require_non_negative_loss(problem, WHERE)
  x = np.asarray(problem.flat_params, np.float64)
  if num_directions is None:
    directions, coordinates = None, x
  else:
    products.require_count("num_directions", num_directions, WHERE, size=problem.num_params)
    matrix = random_directions(key, problem.num_params, num_directions)
    coordinates = np.linalg.lstsq(matrix, x, rcond=None)[0]  # A⁺x, least-squares coordinates
    directions = jnp.asarray(matrix, problem.flat_params.dtype)
  half_width = eps * (np.abs(coordinates) + 1.0)
  dtype = problem.flat_params.dtype
  best = {"value": -np.inf}

  def negated(z: np.ndarray) -> tuple[float, np.ndarray]:
    value, ascent = _value_and_ascent_jit(*problem, directions, jnp.asarray(z, dtype))
    value = float(value)
    best["value"] = max(best["value"], value)
    return -value, -np.asarray(ascent, np.float64)

  loss, ascent = negated(np.zeros_like(half_width))
  loss = -loss
  rng = products.host_rng(key).spawn(1)[0]  # a stream of its own, not A's
  corners = rng.integers(0, 2, size=(num_starts, half_width.size)) * 2.0 - 1.0
  starts = half_width * corners
  starts[0] = 0.0
  if np.linalg.norm(ascent) <= np.sqrt(np.finfo(dtype).eps) * (1 + abs(loss)):
    # a critical point in the subspace gives L-BFGS-B no direction: start off it
    starts[0] = 1e-2 * half_width * corners[0]
  for start in starts:
    scipy.optimize.minimize(
      negated,
      start,
      jac=True,
      method="L-BFGS-B",
      bounds=np.stack([-half_width, half_width], axis=1),
      # no stop on a small change of f: scipy's test is relative to max(|f|, 1), and near a
      # training loss of 1e-6 every change is below it
      options={"maxiter": int(max_iterations), "ftol": 0.0, "gtol": 0.0},
    )
  return 100.0 * (best["value"] - loss) / (1.0 + loss)
