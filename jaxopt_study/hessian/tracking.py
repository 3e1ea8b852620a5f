"""Curvature measured inside a compiled training loop: sharpness, trace, gᵀHg, every k steps.

§8.2.1 of Goodfellow et al. (2016) reads ill-conditioning off gᵀHg growing during training; the
modern measurement is the top eigenvalue λ_max of H along training, which under full-batch
gradient descent at step η rises to about 2/η and hovers there (the "edge of stability", Cohen et
al. 2021), and for Adam the top eigenvalue of the preconditioned P⁻¹H hovers at
(2 + 2β₁)/((1 − β₁)η) (Cohen et al. 2022). Public code measures it outside the compiled step, a
Python loop of Hessian-vector products into `scipy.sparse.linalg.eigsh` every k steps, one run at
a time. `measure` is traceable: the training loop (`train.make_train_loop(..., curvature=...)`)
calls it under `jax.lax.cond` inside its scan, and a sweep `vmap`s it over members.

* `lambda_max`: the largest Ritz value of `CurvatureOptions.lanczos_steps` Lanczos steps with full
  reorthogonalization (`krylov.lanczos_step`), started from the previous measurement's top Ritz
  vector, so a slowly moving top eigenvector is found again in a few steps: with a `tolerance`,
  the run stops as soon as the top Ritz pair's residual says so.
* `hessian_trace`: Hutchinson's estimate (1/p) Σ zᵀHz over p Rademacher probes, drawn from a key
  folded with the step (the same probes for every member of a sweep).
* `g_dot_g`, `g_hess_g`: gᵀg and gᵀHg at the point (§8.2.1, eq. 4.9).
* `preconditioned_lambda_max` (with a preconditioner): the top eigenvalue of P⁻¹H for the
  optimizer's diagonal preconditioner P > 0, found as that of the symmetric P^{-1/2} H P^{-1/2}
  (similar to P⁻¹H), by Lanczos warm-started in the same way; NaN where P is not positive (an
  adaptive method before its first step).

Each measurement costs one gradient and 2m + p + 1 Hessian-vector products (m + p + 1 without a
preconditioner; fewer with a `tolerance`), each of them only the tangent half of
forward-over-reverse (`jax.linearize` of the gradient once at the point).
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxopt_study.hessian import krylov

CURVATURE_METRICS = ("lambda_max", "hessian_trace", "g_hess_g", "g_dot_g")
PRECONDITIONED_METRIC = "preconditioned_lambda_max"


class CurvatureOptions(NamedTuple):
  """What the in-loop curvature monitor measures, and on which data.

  Attributes:
    lanczos_steps: m, Lanczos steps per top eigenvalue (at most the number of parameters).
    probes: p, Rademacher probes of Hutchinson's trace estimate.
    examples: measure on the first `examples` training examples (a fixed subset); None: the
      whole training set.
    preconditioner: `opt_state -> P`, the optimizer's current diagonal preconditioner as a pytree
      shaped like the parameters (`optim.adam_preconditioner()`, ...), to also measure the top
      eigenvalue of P⁻¹H; None: not measured.
    seed: seeds the first start vector and the probes.
    tolerance: stop a top eigenvalue's Lanczos run before m steps once its Ritz residual is at
      most `tolerance` × |λ| (scipy's eigsh's `tol`); None: always m steps.
  """

  lanczos_steps: int = 20
  probes: int = 4
  examples: int | None = None
  preconditioner: Callable[[Any], Any] | None = None
  seed: int = 0
  tolerance: float | None = None

  def metric_names(self) -> tuple[str, ...]:
    """The names `measure` returns."""
    return CURVATURE_METRICS + ((PRECONDITIONED_METRIC,) if self.preconditioner else ())


class MonitorState(NamedTuple):
  """The warm starts carried between measurements: unit vectors in ravel order."""

  top_vector: jax.Array
  preconditioned_top_vector: jax.Array | None


def _ravel(params: Any) -> tuple[jax.Array, Callable[[jax.Array], Any]]:
  """`ravel_pytree` in at least float32, the monitor's working precision: a bfloat16 or float16
  model's Hessian-vector products run through its own dtype, but the Lanczos vectors and the small
  eigenproblem (which LAPACK does not offer in half precision) in float32."""
  flat, unravel = ravel_pytree(params)
  return flat.astype(jnp.promote_types(flat.dtype, jnp.float32)), lambda x: unravel(
    x.astype(flat.dtype)
  )


def init(params: Any, options: CurvatureOptions) -> MonitorState:
  """A random unit start vector (one per eigenproblem), drawn from `options.seed`."""
  flat, _ = _ravel(params)
  key = jax.random.key(options.seed)
  start = jax.random.rademacher(key, flat.shape, flat.dtype) / jnp.sqrt(flat.size)
  return MonitorState(start, start if options.preconditioner else None)


def not_measured(params: Any, options: CurvatureOptions) -> dict[str, jax.Array]:
  """NaN for every metric: the row of a step where the monitor does not run."""
  dtype = _ravel(params)[0].dtype
  return {name: jnp.full([], jnp.nan, dtype) for name in options.metric_names()}


def _top_ritz_pair(state: krylov.LanczosState, j: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The top eigenpair (θ, s) of T_j, the leading (j + 1) × (j + 1) block of T.

  The unused diagonal is set below every Ritz value (|θ| ≤ ‖T‖ ≤ 2 · scale) and its couplings to
  zero, so T's top eigenpair is T_j's, padded with zeros.
  """
  used = jnp.arange(state.alphas.shape[0]) <= j
  floor = -2 * state.scale - 1
  diagonal = jnp.where(used, state.alphas, floor)
  couplings = jnp.where(used[1:], state.betas[:-1], 0.0)
  tridiagonal = jnp.diag(diagonal) + jnp.diag(couplings, 1) + jnp.diag(couplings, -1)
  values, vectors = jnp.linalg.eigh(tridiagonal)
  return values[-1], jnp.where(used, vectors[:, -1], 0.0)


def _top_eigenpair(
  matvec: Callable[[jax.Array], jax.Array],
  start: jax.Array,
  num_steps: int,
  tolerance: float | None,
) -> tuple[jax.Array, jax.Array]:
  """The largest Ritz value of at most `num_steps` Lanczos steps from `start`, and its unit Ritz
  vector.

  With a `tolerance`, the iteration stops at the first step j whose top Ritz pair (θ, y = Q s)
  has the residual ‖H y − θ y‖ = β_j |s_j| ≤ tolerance · |θ| (Golub & Van Loan 2013, §10.1.4),
  ARPACK's stopping rule, which `scipy.sparse.linalg.eigsh(tol=...)` applies; a step that
  restarts (β_j = 0, an invariant subspace) never stops it, since the top eigenvector may lie
  outside that subspace. Under `vmap` the loop runs until every member has stopped.
  """
  state = krylov.lanczos_start(start, num_steps)
  if tolerance is None:
    state = jax.lax.fori_loop(0, num_steps, functools.partial(krylov.lanczos_step, matvec), state)
    value, coefficients = _top_ritz_pair(state, num_steps - 1)
  else:

    def unfinished(carry):
      j, _, done = carry
      return (j < num_steps) & ~done

    def step(carry):
      j, state, _ = carry
      state = krylov.lanczos_step(matvec, j, state)
      value, coefficients = _top_ritz_pair(state, j)
      residual = state.betas[j] * jnp.abs(coefficients[j])
      done = (state.betas[j] > 0) & (residual <= tolerance * jnp.abs(value))
      return j + 1, state, done

    steps, state, _ = jax.lax.while_loop(unfinished, step, (0, state, False))
    value, coefficients = _top_ritz_pair(state, steps - 1)
  vector = state.basis[:-1].T @ coefficients
  return value, vector / jnp.linalg.norm(vector)


def measure(
  loss_fn: Callable[[Any], jax.Array],
  params: Any,
  state: MonitorState,
  options: CurvatureOptions,
  *,
  step: jax.Array,
  opt_state: Any = None,
) -> tuple[dict[str, jax.Array], MonitorState]:
  """Every metric of `options` for `loss_fn` at `params` (traceable, vmappable).

  Args:
    loss_fn: params -> scalar, the objective on the monitored data.
    params: the point.
    state: the warm starts of the previous measurement (`init` before the first).
    options: `CurvatureOptions`.
    step: the training step, folded into the probes' key.
    opt_state: the optimizer state, read by `options.preconditioner`.

  Returns:
    (metric name -> 0-d array, the new warm starts).
  """
  flat, unravel = _ravel(params)

  def flat_loss(x: jax.Array) -> jax.Array:
    return loss_fn(unravel(x))

  # one forward and backward pass; every product after it runs only the linearized part
  grad, hvp = jax.linearize(jax.grad(flat_loss), flat)
  num_steps = min(options.lanczos_steps, flat.size)
  if options.preconditioner is None:
    lambda_max, top_vector = _top_eigenpair(hvp, state.top_vector, num_steps, options.tolerance)
  else:  # both eigenproblems in one batched Lanczos: S H S with S = 1 and S = P^{-1/2}
    diagonal, _ = ravel_pytree(options.preconditioner(opt_state))
    if diagonal.shape != flat.shape:  # shapes are static: refused as the loop is traced
      raise ValueError(
        f"curvature.preconditioner: P has {diagonal.size} entries for {flat.size} parameters; "
        "it must be shaped like the parameters, one entry each"
      )
    positive = jnp.all(diagonal > 0)
    scale = jax.lax.rsqrt(jnp.where(positive, diagonal, 1.0)).astype(flat.dtype)
    scales = jnp.stack([jnp.ones_like(scale), scale])
    starts = jnp.stack([state.top_vector, state.preconditioned_top_vector])
    values, vectors = jax.vmap(
      lambda s, start: _top_eigenpair(lambda v: s * hvp(s * v), start, num_steps, options.tolerance)
    )(scales, starts)
    lambda_max, top_vector = values[0], vectors[0]
  key = jax.random.fold_in(jax.random.key(options.seed), step)
  probes = jax.random.rademacher(key, (options.probes, flat.size), flat.dtype)
  directions = jnp.concatenate([grad[None], probes])  # gᵀHg and the probes' zᵀHz, one batch
  forms = jnp.sum(directions * jax.vmap(hvp)(directions), axis=1)
  metrics = {
    "lambda_max": lambda_max,
    "hessian_trace": jnp.mean(forms[1:]),
    "g_hess_g": forms[0],
    "g_dot_g": jnp.vdot(grad, grad),
  }
  new_state = state._replace(top_vector=top_vector)
  if options.preconditioner is not None:
    metrics[PRECONDITIONED_METRIC] = jnp.where(positive, values[1], jnp.nan)
    new_state = new_state._replace(
      preconditioned_top_vector=jnp.where(positive, vectors[1], state.preconditioned_top_vector)
    )
  return metrics, new_state
