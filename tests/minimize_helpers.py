"""Shared pieces of the second-order and quasi-Newton tests: Moré–Garbow–Hillstrom's extended
Rosenbrock function, a minimization loop that counts every evaluation of the loss, and scipy's
counts on the same problem.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize


def rosenbrock(params: dict) -> jax.Array:
  """Extended Rosenbrock (Moré, Garbow & Hillstrom 1981, problem 21), n even:
  Σᵢ 100 (x₂ᵢ − x₂ᵢ₋₁²)² + (1 − x₂ᵢ₋₁)², minimum 0 at (1, ..., 1)."""
  x = params["x"]
  odd, even = x[0::2], x[1::2]
  return jnp.sum(100.0 * (even - odd**2) ** 2 + (1.0 - odd) ** 2)


def rosenbrock_start(size: int, dtype=jnp.float64) -> dict:
  """The standard start (−1.2, 1, −1.2, 1, ...)."""
  return {"x": jnp.asarray([-1.2, 1.0] * (size // 2), dtype)}


def counted(loss):
  """(loss with a counter, counter): the counter grows by one each time the loss is evaluated
  (a `jax.debug.callback` runs once per executed evaluation, also inside `lax.while_loop` and the
  taken branch of `lax.cond`, and once for a vmapped batch of Hessian-vector products)."""
  calls = []

  def loss_counted(params):
    jax.debug.callback(lambda: calls.append(None))
    return loss(params)

  return loss_counted, calls


def minimize(tx, loss, params, gtol: float, max_steps: int = 500):
  """Runs `tx` with `optax.value_and_grad_from_state` until ‖g‖∞ ≤ gtol at the current point.

  Returns (params, loss evaluations, steps): every evaluation counts, those of the line search,
  of the ratio test and of `value_and_grad_from_state` (and one per dense Hessian).
  """
  loss_counted, calls = counted(loss)
  value_and_grad = optax.value_and_grad_from_state(loss_counted)

  @jax.jit
  def step(params, state):
    value, grad = value_and_grad(params, state=state)
    updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss_counted)
    return optax.apply_updates(params, updates), state, grad

  state = tx.init(params)
  steps = 0
  while steps < max_steps:
    new_params, state, grad = step(params, state)
    if np.max(np.abs(np.asarray(jax.tree.leaves(grad)[0]))) <= gtol:
      break
    params, steps = new_params, steps + 1
  jax.effects_barrier()
  return params, len(calls), steps


def numpy_rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
  """(f, ∇f) of `rosenbrock` in float64 numpy, for scipy."""
  odd, even = x[0::2], x[1::2]
  grad = np.empty_like(x)
  grad[0::2] = -400.0 * odd * (even - odd**2) - 2.0 * (1.0 - odd)
  grad[1::2] = 200.0 * (even - odd**2)
  return float(np.sum(100.0 * (even - odd**2) ** 2 + (1.0 - odd) ** 2)), grad


def numpy_rosenbrock_hessian(x: np.ndarray) -> np.ndarray:
  """∇²f of `rosenbrock`: block diagonal, one 2 × 2 block per pair."""
  hessian = np.zeros((x.size, x.size))
  for i in range(0, x.size, 2):
    odd, even = x[i], x[i + 1]
    hessian[i, i] = 1200.0 * odd**2 - 400.0 * even + 2.0
    hessian[i, i + 1] = hessian[i + 1, i] = -400.0 * odd
    hessian[i + 1, i + 1] = 200.0
  return hessian


@functools.cache
def scipy_evaluations(
  method: str, size: int, gtol: float, xtol: float = 1e-3
) -> tuple[int, np.ndarray]:
  """scipy.optimize.minimize's evaluations of (f, ∇f) together (nfev with jac=True) and its x,
  from the standard start, stopping at ‖g‖∞ ≤ gtol (Newton-CG: its own step tolerance).

  The reference must itself end within `xtol` of the minimizer (1, ..., 1): give it the xtol the
  test holds our optimizer to, since ‖g‖∞ ≤ gtol only bounds ‖x − 1‖ by gtol / λ_min(H) (about
  2.5 gtol for Rosenbrock in 10-D, where scipy's BFGS stops 1.4e-3 away at gtol = 1e-3)."""
  x0 = np.asarray([-1.2, 1.0] * (size // 2))
  options, extra = {"gtol": gtol}, {}
  if method in ("trust-exact", "Newton-CG"):
    extra["hess"] = numpy_rosenbrock_hessian
    if method == "Newton-CG":
      options = {"xtol": 1e-12}
  result = scipy.optimize.minimize(
    numpy_rosenbrock, x0, jac=True, method=method, options=options, **extra
  )
  assert np.max(np.abs(result.x - 1.0)) < xtol, (method, result.x)
  return result.nfev, result.x
