"""Shared pieces of the second-order and quasi-Newton tests: Moré–Garbow–Hillstrom's extended
Rosenbrock function, a minimization loop that counts every evaluation of the loss, and scipy's
counts on the same problem.
"""

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


def scipy_evaluations(method: str, size: int, gtol: float) -> tuple[int, np.ndarray]:
  """scipy.optimize.minimize's evaluations of (f, ∇f) together (nfev with jac=True) and its x."""

  def fun(x):
    value, grad = jax.value_and_grad(rosenbrock)({"x": jnp.asarray(x, jnp.float64)})
    return float(value), np.asarray(grad["x"], np.float64)

  hess = jax.hessian(lambda x: rosenbrock({"x": x}))
  x0 = np.asarray(rosenbrock_start(size)["x"], np.float64)
  options = {"gtol": gtol}
  extra = {}
  if method in ("trust-exact", "Newton-CG"):
    extra["hess"] = lambda x: np.asarray(hess(jnp.asarray(x, jnp.float64)))
    if method == "Newton-CG":
      options = {"xtol": 1e-12}
  result = scipy.optimize.minimize(fun, x0, jac=True, method=method, options=options, **extra)
  return result.nfev, result.x
