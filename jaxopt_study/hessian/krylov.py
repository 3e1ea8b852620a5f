"""Lanczos iteration, stochastic Lanczos quadrature (spectral density) and Hutchinson's trace.

Lanczos (Golub & Van Loan 2013, §10.1) builds an orthonormal basis q₀ … q_{m−1} of the Krylov
space span{q₀, H q₀, …, H^{m−1} q₀} in which H is the tridiagonal T (diagonal α, off-diagonal
β): H Q ≈ Q T. Here every new vector is orthogonalized against the whole basis, twice (classical
Gram–Schmidt twice, "twice is enough", Giraud et al. 2005), so no spurious copies of converged
eigenvalues appear. If β_j ≈ 0 the Krylov space is invariant (its Ritz values are exact
eigenvalues): β_j is set to 0 and the iteration goes on from the coordinate axis least covered
by the basis, orthogonalized against it, so m steps always span m dimensions. T is solved on the
host in float64 (`scipy.linalg.eigh_tridiagonal`).

Stochastic Lanczos quadrature (Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019): for a probe
v with E[v vᵀ] = I, m Lanczos steps from v/‖v‖ give the Gauss quadrature rule with nodes the Ritz
values θ_j and weights τ_j = (first component of T's j-th eigenvector)², Σ τ_j = 1, that
approximates the spectral density φ(t) = (1/N) Σᵢ δ(t − λᵢ); averaging over probes and smoothing
each node with a Gaussian gives a density that integrates to 1 and whose mean is the Hutchinson
estimate of tr(H)/N (since Σ_j τ_j θ_j = α₀ = vᵀHv/‖v‖²).
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from jaxopt_study import validate
from jaxopt_study.hessian import dense, parallel, products

_INVARIANT_TOL = 100.0  # β_j ≤ 100 ε max_{i≤j}(|α_i| + β_i): invariant subspace, restart


class Lanczos(NamedTuple):
  """The output of m Lanczos steps: H Q ≈ Q T with T = tridiag(betas, alphas, betas)."""

  alphas: jax.Array  # (..., m) diagonal of T
  betas: jax.Array  # (..., m - 1) off-diagonal of T; 0 where the iteration restarted
  basis: jax.Array | None  # (..., m, N) rows q_j, or None when not kept


class Ritz(NamedTuple):
  """Eigenpairs of T in float64: Ritz values, quadrature weights, Ritz vectors Q S (or None)."""

  values: np.ndarray  # (..., m) θ_j ascending
  weights: np.ndarray  # (..., m) τ_j = S[0, j]², summing to 1
  vectors: np.ndarray | None  # (N, m) columns, in ravel order, when the basis was kept


class Density(NamedTuple):
  """A spectral density φ(t) sampled on a grid of eigenvalues t."""

  grid: np.ndarray
  density: np.ndarray


class TraceEstimate(NamedTuple):
  """Hutchinson's estimate of tr(H) and its standard error over the probes."""

  trace: float
  standard_error: float


def _orthogonalize(vector: jax.Array, basis: jax.Array) -> jax.Array:
  """vector − Qᵀ(Q vector), twice; unused (zero) rows of the basis do not contribute."""
  vector = vector - basis.T @ (basis @ vector)
  return vector - basis.T @ (basis @ vector)


class LanczosState(NamedTuple):
  """The running iteration: the basis so far (row j + 1 is the next vector), α, β and the scale
  of rounding, max_i(|α_i| + β_i) ≤ 2‖H‖."""

  basis: jax.Array  # (m + 1, N), rows beyond the next vector zero
  alphas: jax.Array  # (m,)
  betas: jax.Array  # (m,), β_j the norm of step j's new direction (0 at a restart)
  scale: jax.Array


def lanczos_start(start: jax.Array, num_steps: int) -> LanczosState:
  """The state before the first of `num_steps` steps from the unit vector `start`."""
  size, dtype = start.shape[0], start.dtype
  zeros = jnp.zeros((num_steps,), dtype)
  basis = jnp.zeros((num_steps + 1, size), dtype).at[0].set(start)
  return LanczosState(basis, zeros, zeros, jnp.zeros((), dtype))


def lanczos_step(
  matvec: Callable[[jax.Array], jax.Array], j: jax.Array, state: LanczosState
) -> LanczosState:
  """Lanczos step j: α_j, β_j and q_{j+1} from H q_j, fully reorthogonalized (traceable)."""
  basis, alphas, betas, scale = state
  size, dtype = basis.shape[1], basis.dtype
  eps = jnp.finfo(dtype).eps
  q = basis[j]
  w = matvec(q)
  alpha = jnp.vdot(q, w)
  w = _orthogonalize(w, basis)  # removes α q_j and β_{j−1} q_{j−1}, and all rounding drift
  beta = jnp.linalg.norm(w)
  scale = jnp.maximum(scale, jnp.abs(alpha) + beta)  # ≤ 2‖H‖, the scale of rounding in w
  invariant = beta <= _INVARIANT_TOL * eps * scale
  # restart along the coordinate axis e_i least covered by the basis: Σ_i ‖Qᵀ e_i‖² = j + 1,
  # so the smallest is ≤ (j + 1)/N and e_i keeps a part ≥ 1/N of its norm² outside the span
  # (a random vector could lie in the span, leaving only rounding noise after projection)
  axis = jnp.argmin(jnp.sum(basis**2, axis=0))
  fresh = _orthogonalize(jax.nn.one_hot(axis, size, dtype=dtype), basis)
  fresh_norm = jnp.linalg.norm(fresh)
  # a full basis (j + 1 = N) leaves no fresh direction: the row written is never used
  fresh = fresh / jnp.where(fresh_norm > 0, fresh_norm, 1.0)
  following = jnp.where(invariant, fresh, w / jnp.where(invariant, 1.0, beta))
  return LanczosState(
    basis.at[j + 1].set(following),
    alphas.at[j].set(alpha),
    betas.at[j].set(jnp.where(invariant, 0.0, beta)),
    scale,
  )


def lanczos_steps(
  matvec: Callable[[jax.Array], jax.Array], start: jax.Array, num_steps: int
) -> Lanczos:
  """`num_steps` Lanczos steps from the unit vector `start`, fully reorthogonalized (traceable)."""
  state = jax.lax.fori_loop(
    0, num_steps, functools.partial(lanczos_step, matvec), lanczos_start(start, num_steps)
  )
  return Lanczos(state.alphas, state.betas[:-1], state.basis[:-1])


def _start_vector(start: int | jax.Array, key: jax.Array | None) -> jax.Array:
  if isinstance(start, int):
    return jnp.asarray(rademacher_probes(key, 1, start, jnp.result_type(float))[0] / np.sqrt(start))
  start = jnp.asarray(start)
  return start / jnp.linalg.norm(start)


def lanczos(
  matvec: Callable[[jax.Array], jax.Array],
  start: int | jax.Array,
  num_steps: int,
  key: jax.Array | None = None,
  *,
  keep_basis: bool = True,
) -> Lanczos:
  """Lanczos iteration with full reorthogonalization on a symmetric linear map (jitted).

  Args:
    matvec: v ↦ H v on vectors of shape (N,), H symmetric; traced into the jitted loop.
    start: N, for a Rademacher start vector drawn from `key`, or the start vector itself.
    num_steps: m ≤ N.
    key: PRNG key of a random start vector (default: a fixed seed).
    keep_basis: keep the (m, N) basis Q, needed for Ritz vectors.

  Returns:
    `Lanczos(alphas, betas, basis)`; `ritz` turns it into Ritz values, weights and vectors.
  """
  size = start if isinstance(start, int) else int(jnp.shape(start)[0])
  products.require_count("num_steps", num_steps, "lanczos", size=size)
  vector = _start_vector(start, key)
  closed = jax.make_jaxpr(lambda v: matvec(v))(vector)  # a new function: make_jaxpr caches too
  shapes = [aval.shape for aval in closed.out_avals]
  if shapes != [(size,)]:
    raise ValueError(
      f"lanczos: matvec maps a vector of shape ({size},) to {shapes}: it must return one vector "
      f"of shape ({size},), H v"
    )
  if not isinstance(vector, jax.core.Tracer):
    # keyed by what matvec computes, not only by the function: one that reads a changed global
    # or closure compiles again instead of reusing the values compiled in
    matvec = products.Fingerprinted(matvec, products.jaxpr_fingerprint(closed))
  result = _lanczos_jit(matvec, vector, int(num_steps))
  return result if keep_basis else result._replace(basis=None)


_lanczos_jit = jax.jit(lanczos_steps, static_argnums=(0, 2))


def ritz(result: Lanczos, eigenvectors: bool = False) -> Ritz:
  """Ritz values θ_j (ascending), weights τ_j and, if asked, vectors of a (batch of) Lanczos runs.

  T is diagonalized in float64 by `scipy.linalg.eigh_tridiagonal`; τ_j is the squared first
  component of its j-th eigenvector, the Gauss quadrature weight of node θ_j (Golub & Meurant
  2010, §6.2).
  """
  alphas = np.asarray(result.alphas, np.float64)
  betas = np.asarray(result.betas, np.float64)
  if alphas.ndim > 1:
    pairs = [ritz(Lanczos(a, b, None)) for a, b in zip(alphas, betas, strict=True)]
    return Ritz(np.stack([p.values for p in pairs]), np.stack([p.weights for p in pairs]), None)
  if alphas.shape[0] == 1:
    values, vectors = alphas.copy(), np.ones((1, 1))
  else:
    values, vectors = scipy.linalg.eigh_tridiagonal(alphas, betas)
  ritz_vectors = None
  if eigenvectors:
    if result.basis is None:
      raise ValueError("ritz: eigenvectors need the basis; run lanczos(..., keep_basis=True)")
    ritz_vectors = np.asarray(result.basis, np.float64).T @ vectors
  return Ritz(values, vectors[0] ** 2, ritz_vectors)


def rademacher_probes(key: jax.Array | None, num_probes: int, size: int, dtype: Any) -> np.ndarray:
  """(num_probes, size) Rademacher vectors (±1), drawn on the host from `key`.

  Drawn by `products.host_rng` rather than `jax.random`: the same probes for the same key, on
  any number of devices, and no random-number program to compile for each new size. Row p does
  not depend on `num_probes`, so `density` and `hutchinson_trace` share probes for one key.
  """
  return np.concatenate(list(rademacher_chunks(key, num_probes, size, dtype, num_probes)))


def rademacher_chunks(key: jax.Array | None, num_probes: int, size: int, dtype: Any, length: int):
  """The rows of `rademacher_probes`, drawn `length` at a time (the same rows: the generator's
  stream is consumed in order), so that only one chunk of probes is ever held."""
  rng = products.host_rng(key)
  for start in range(0, num_probes, length):
    count = min(length, num_probes - start)
    yield (2 * rng.integers(0, 2, size=(count, size), dtype=np.int8) - 1).astype(dtype)


def _lanczos_runs(
  objective: products.Objective,
  flat: jax.Array,
  fixed: Any,
  data: tuple,
  starts: jax.Array,
  num_steps: int,
  keep_basis: bool,
) -> Lanczos:
  """One Lanczos run on the Hessian per row of `starts`, the runs spread over all devices."""

  def runs(local_starts, flat, fixed, data):
    def run(start: jax.Array) -> Lanczos:
      def matvec(v: jax.Array) -> jax.Array:
        return products.hvp_rows(objective, flat, fixed, data, v[None])[0]

      return lanczos_steps(matvec, start / jnp.linalg.norm(start), num_steps)

    result = jax.vmap(run)(local_starts)  # the runs' HVPs batch into matrix products
    return result if keep_basis else result._replace(basis=None)

  return parallel.map_items(runs, starts, flat, fixed, data)


_lanczos_runs_jit = jax.jit(_lanczos_runs, static_argnums=(0, 5, 6))


def hessian_lanczos(
  problem: products.Problem, starts: np.ndarray, num_steps: int, keep_basis: bool = False
) -> Lanczos:
  """`num_steps` Lanczos steps on the Hessian of `problem` from each row of `starts`.

  The fields have a leading axis, one entry per start. One chain's HVPs are sequential; the
  chains are vmapped (their HVPs batched) and spread over all devices, `parallel.ITEMS_PER_CALL`
  chains per device at a time, so memory does not grow with the number of starts.
  """
  products.require_count("num_steps", num_steps, "lanczos", size=problem.num_params)
  shared = parallel.replicate((problem.flat_params, problem.fixed, problem.data))

  def runs(chunk, *shared):
    return _lanczos_runs_jit(problem.objective, *shared, chunk, int(num_steps), keep_basis)

  return parallel.in_chunks(runs, parallel.split(np.asarray(starts)), *shared)


def probe_ritz(
  problem: products.Problem, num_probes: int, num_steps: int, key: jax.Array | None
) -> Ritz:
  """Ritz values and weights, (num_probes, num_steps), of Lanczos runs from Rademacher probes."""
  probes = rademacher_probes(key, num_probes, problem.num_params, problem.flat_params.dtype)
  return ritz(hessian_lanczos(problem, probes, num_steps))


def density(
  loss_fn: products.LossFn,
  params: Any,
  *args: Any,
  num_probes: int = 8,
  num_steps: int | None = None,
  grid: chex.Array | None = None,
  sigma: float | None = None,
  key: jax.Array | None = None,
  batches: Sequence[tuple] | None = None,
  mode: str | None = None,
) -> Density:
  """The Hessian's spectral density by stochastic Lanczos quadrature (SLQ).

  .. math:: φ(t) ≈ \\frac{1}{P} Σ_{p=1}^{P} Σ_{j=1}^{m} τ_j^{(p)} \\mathcal{N}(t; θ_j^{(p)}, σ²)

  with θ_j^{(p)}, τ_j^{(p)} the Ritz values and weights of m Lanczos steps from the p-th
  Rademacher probe (Lin, Saad & Yang 2016, §3; Ghorbani, Krishnan & Xiao 2019, §2). It integrates
  to 1 and its mean is the Hutchinson estimate of tr(H)/N for the same probes.

  Smoothing: σ defaults to (θ_max − θ_min)/m, about the spacing of the m nodes of one probe, the
  finest resolution an m-node quadrature rule offers (Lin, Saad & Yang 2016 discuss this
  trade-off; Ghorbani et al. use a fixed σ² = 1e-5 after rescaling). A smaller σ shows the
  individual Ritz values, a larger one only the bulk. For a spectrum of one point σ falls back
  to 1e-3 max(1, |θ|).

  Args:
    loss_fn, params, *args, batches, mode: the loss, as in `hvp`.
    num_probes: P, independent Rademacher probes (spread over all devices).
    num_steps: m Lanczos steps per probe, at most N (default min(N, 80); Ghorbani et al. use 90).
    grid: points t (default: 1024 points on [θ_min − 6σ, θ_max + 6σ], which hold all but a
      2e-9 share of the mass).
    sigma: σ, the standard deviation of the Gaussian around each node.
    key: PRNG key of the probes (default: a fixed seed).

  Returns:
    `Density(grid, density)` as float64 numpy arrays.
  """
  problem = products.prepare(loss_fn, params, args, batches, mode, "density", evaluate=True)
  products.require_count("num_probes", num_probes, "density")
  if num_steps is None:
    num_steps = min(problem.num_params, 80)
  products.require_count("num_steps", num_steps, "density", size=problem.num_params)
  if sigma is not None:
    validate.require_positive("sigma", sigma, "density")
  nodes = probe_ritz(problem, num_probes, num_steps, key)
  low, high = nodes.values.min(), nodes.values.max()
  if sigma is None:  # Ritz values apart by rounding only (H = cI) are one point
    one_point = high - low <= 1e3 * np.finfo(dense.least_precise_dtype(params)).eps * max(
      abs(low), abs(high)
    )
    sigma = 1e-3 * max(1.0, abs(high)) if one_point else (high - low) / num_steps
  if not sigma > 0:
    raise ValueError(f"sigma={sigma!r}: must be > 0")
  points = (
    np.linspace(low - 6 * sigma, high + 6 * sigma, 1024)
    if grid is None
    else np.asarray(grid, np.float64)
  )
  gaussians = np.exp(-0.5 * ((points[:, None, None] - nodes.values) / sigma) ** 2)
  values = (gaussians * nodes.weights).sum(axis=-1).mean(axis=-1) / (sigma * np.sqrt(2 * np.pi))
  return Density(points, values)


def _probe_quadratic_forms(
  objective: products.Objective, flat: jax.Array, fixed: Any, data: tuple, probes: jax.Array
) -> jax.Array:
  """vᵀ H v for each row v of `probes`, the probes spread over all devices."""

  def forms(local_probes, flat, fixed, data):
    images = products.hvp_rows(objective, flat, fixed, data, local_probes)
    return jnp.sum(local_probes * images, axis=-1)

  return parallel.map_items(forms, probes, flat, fixed, data)


_probe_quadratic_forms_jit = jax.jit(_probe_quadratic_forms, static_argnums=0)


def hutchinson_trace(
  loss_fn: products.LossFn,
  params: Any,
  *args: Any,
  num_probes: int = 100,
  key: jax.Array | None = None,
  batches: Sequence[tuple] | None = None,
  mode: str | None = None,
) -> TraceEstimate:
  """Hutchinson's (1990) unbiased estimate tr(H) = E[vᵀ H v] over Rademacher probes v.

  The average of vᵀ H v over `num_probes` probes (one HVP each, batched and spread over all
  devices, `parallel.ITEMS_PER_CALL` probes per device at a time, so that peak memory does not
  grow with the number of probes), with its standard error s/√P; the variance of one probe is
  2 Σ_{i≠j} H_ij².

  Args:
    loss_fn, params, *args, batches, mode: the loss, as in `hvp`.
    num_probes: P ≥ 2.
    key: PRNG key of the probes (default: a fixed seed).

  Returns:
    `TraceEstimate(trace, standard_error)`.
  """
  problem = products.prepare(
    loss_fn, params, args, batches, mode, "hutchinson_trace", evaluate=True
  )
  products.require_count("num_probes", num_probes, "hutchinson_trace", low=2)  # for the error
  # the same probes as `density` with this key, so its mean is this estimate divided by N
  probes = rademacher_chunks(
    key,
    num_probes,
    problem.num_params,
    problem.flat_params.dtype,
    parallel.chunk_length(num_probes),
  )
  shared = parallel.replicate((problem.flat_params, problem.fixed, problem.data))
  forms = parallel.in_chunks(
    lambda chunk, *shared: _probe_quadratic_forms_jit(problem.objective, *shared, chunk),
    probes,
    *shared,
  )
  forms = np.asarray(forms, np.float64)
  return TraceEstimate(float(forms.mean()), float(forms.std(ddof=1) / np.sqrt(num_probes)))
