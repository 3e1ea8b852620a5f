"""The Hessian's spectrum at a point, and what kind of point it is (Goodfellow et al. 2016, §8.2).

`spectrum` gives the eigenvalues (exactly from the dense Hessian, or the extreme ones by Lanczos);
`classify` applies the second-order test with explicit tolerances and, where that test is
inconclusive, probes the loss around the point, so that a plateau (§8.2.3, flat regions) is told
apart from a degenerate critical point such as the monkey saddle x³ − 3xy².
"""

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_study import validate
from jaxopt_study.hessian import dense, krylov, products

METHODS = ("exact", "lanczos")
WHICH = ("largest", "smallest", "both")
# Lanczos steps per probe of classify(method="lanczos"); a smaller problem is classified exactly
LANCZOS_STEPS = 80


class Spectrum(NamedTuple):
  """Hessian eigenvalues at a point, with the loss and gradient norm there."""

  eigenvalues: np.ndarray  # ascending
  eigenvectors: np.ndarray | None  # (N, k) columns in ravel_pytree order, or None
  loss: float
  grad_norm: float
  num_params: int


class CriticalPoint(NamedTuple):
  """What the point is, and the numbers the decision was made from (see `classify`)."""

  kind: str  # minimum, maximum, saddle, plateau, degenerate or not_critical
  index: float  # fraction of negative eigenvalues
  n_negative: int
  n_zero: int
  n_positive: int
  lambda_min: float
  lambda_max: float
  condition_number: float
  grad_norm: float  # ‖g‖
  hessian_grad_norm: float  # ‖H g‖, ≈ 0 with g ≠ 0 in a gradient-flat region
  loss: float
  count_tol: float = float("nan")  # |λ| ≤ count_tol counted zero (Lanczos: its resolution)


def default_steps(num_values: int, num_params: int) -> int:
  """Lanczos steps for `num_values` extreme eigenvalues: min(N, 2 num_values + 60)."""
  return min(num_params, 2 * num_values + 60)


def _first_and_second_order(
  problem: products.Problem, where: str
) -> tuple[float, np.ndarray, np.ndarray]:
  """(L, g, H g) at the point, as host values; a non-finite L or g is refused
  (`products.require_finite_point`) before any eigensolve."""
  loss, grad, hessian_grad = products.first_and_second_order_jit(
    problem.objective, problem.flat_params, problem.fixed, problem.data
  )
  products.require_finite_point(problem, loss, grad, where)
  return float(loss), np.asarray(grad), np.asarray(hessian_grad)


def _select(values: np.ndarray, vectors: np.ndarray | None, k: int | None, which: str):
  """The k largest / smallest / both ends of ascending eigenpairs, kept ascending."""
  if k is None:
    return values, vectors
  size = values.shape[0]
  keep = {
    "largest": np.arange(size - k, size),
    "smallest": np.arange(k),
    "both": np.unique(np.concatenate([np.arange(k), np.arange(size - k, size)])),
  }[which]
  return values[keep], None if vectors is None else vectors[:, keep]


def _validate(method: str, which: str, k: int | None, num_params: int) -> None:
  if method not in METHODS:
    raise ValueError(f"method={method!r}: must be one of {METHODS}")
  if which not in WHICH:
    raise ValueError(f"which={which!r}: must be one of {WHICH}")
  if k is None and method == "lanczos":
    raise ValueError('method="lanczos" computes extreme eigenvalues only: pass k')
  if k is not None:
    products.require_count("k", k, "spectrum", size=num_params)


def spectrum(
  loss_fn: products.LossFn,
  params: Any,
  *args: Any,
  method: str = "exact",
  k: int | None = None,
  which: str = "largest",
  eigenvectors: bool = False,
  batches: Sequence[tuple] | None = None,
  mode: str | None = None,
  key: jax.Array | None = None,
  num_steps: int | None = None,
  chunk_size: int | None = None,
  max_seconds: float = dense.DEFAULT_MAX_SECONDS,
) -> Spectrum:
  """Eigenvalues (ascending) of the Hessian of `loss_fn` at `params`, exactly or by Lanczos.

  ``method="exact"``: the dense Hessian (`dense.hessian_matrix`, refused at once with
  `dense.HessianTooLargeError` if it would not fit) and LAPACK's divide and conquer (`dense`
  explains the choice, with timings); all N eigenvalues, or the k at the end(s) `which` asks for.

  ``method="lanczos"``: `num_steps` Lanczos steps with full reorthogonalization from a Rademacher
  vector (`krylov.lanczos`), only Hessian-vector products; the k largest and/or smallest Ritz
  values. The default, min(N, 2k' + 60) steps with k' the number of values asked for (2k for
  "both"), is enough for outliers separated from the bulk to agree with the exact eigenvalues to
  1e-3 relative (the MLP Hessians of `benchmarks/hessian.py` do); Lanczos converges first at the
  ends of the spectrum and slowest inside clusters, where more steps help. With num_steps = N
  the Ritz values are the eigenvalues.

  Args:
    loss_fn, params, *args, batches, mode: the loss, as in `hvp`.
    method: "exact" or "lanczos".
    k: how many eigenvalues at each end asked for (None: all; required by "lanczos").
    which: "largest", "smallest" or "both" (k at each end).
    eigenvectors: also return the eigenvectors (Ritz vectors for Lanczos) as columns.
    key: PRNG key of the Lanczos start vector (default: a fixed seed).
    num_steps: Lanczos steps (default above).
    chunk_size: basis vectors per HVP call of the exact method (see `hessian_matrix`).
    max_seconds: the exact method's time limit: its Hessian-vector products, timed on the first
      chunk (see `hessian_matrix`), plus its eigensolver, estimated (`dense.solve_seconds`).

  Returns:
    `Spectrum(eigenvalues, eigenvectors, loss, grad_norm, num_params)`.
  """
  num_params, _ = dense.param_count(params, "spectrum")
  _validate(method, which, k, num_params)
  if num_steps is not None:
    products.require_count("num_steps", num_steps, "spectrum", size=num_params)
  dense.require_max_seconds(max_seconds, "spectrum")
  if method == "exact":
    dense.require_dense_fits(params, chunk_size, eigenvectors, "spectrum")
  problem = products.prepare(loss_fn, params, args, batches, mode, "spectrum")
  loss, grad, _ = _first_and_second_order(problem, "spectrum")
  if method == "exact":
    matrix = dense.dense_hessian(
      problem, chunk_size, max_seconds=max_seconds, eigenvectors=eigenvectors
    )
    values, vectors = dense.symmetric_eigh(matrix, eigenvectors)
    values, vectors = _select(values, vectors, k, which)
  else:
    wanted = 2 * k if which == "both" else k
    steps = default_steps(wanted, num_params) if num_steps is None else num_steps
    if steps < min(wanted, num_params):
      raise ValueError(f"num_steps={steps}: must be ≥ the {wanted} eigenvalues asked for")
    start = krylov.rademacher_probes(key, 1, num_params, problem.flat_params.dtype)
    result = krylov.hessian_lanczos(problem, start, steps, keep_basis=eigenvectors)
    pairs = krylov.ritz(jax.tree.map(lambda x: x[0], result), eigenvectors)
    values, vectors = _select(pairs.values, pairs.vectors, min(k, steps), which)
  return Spectrum(values, vectors, loss, float(np.linalg.norm(grad)), num_params)


def _losses_at(
  objective: products.Objective, flat: jax.Array, fixed: Any, data: tuple, steps: jax.Array
) -> jax.Array:
  """L(θ + dᵢ) for each row dᵢ of `steps`."""
  return jax.vmap(lambda d: products.loss_value(objective, flat + d, fixed, data))(steps)


_losses_at_jit = jax.jit(_losses_at, static_argnums=0)


def _is_flat(
  problem: products.Problem,
  loss: float,
  radius: float,
  num_directions: int,
  flat_tol: float | None,
  rng: np.random.Generator,
  precision: np.dtype,
) -> bool:
  """Whether L(θ ± r u) = L(θ) within `flat_tol` (default: rounding at `precision`'s ε) for
  random unit directions u; a loss not finite at a probe warns (the probe cannot tell) and
  counts as not flat."""
  flat = problem.flat_params
  directions = rng.normal(size=(num_directions, flat.shape[0]))
  directions /= np.linalg.norm(directions, axis=1, keepdims=True)
  steps = jnp.asarray(radius * np.concatenate([directions, -directions]), flat.dtype)  # ± u
  losses = np.asarray(_losses_at_jit(problem.objective, flat, problem.fixed, problem.data, steps))
  if not np.all(np.isfinite(losses)):
    warnings.warn(
      f"classify: the loss is not finite at {int(np.sum(~np.isfinite(losses)))} of "
      f"{losses.size} flatness probes at distance probe_radius={radius!r}, so whether the point "
      "is a plateau cannot be told: it is called degenerate; a smaller probe_radius may keep "
      "the probes where the loss is defined",
      stacklevel=5,  # the caller of classify (through _kind's flatness test)
    )
    return False
  if flat_tol is None:  # rounding of L at these magnitudes
    flat_tol = 16 * np.finfo(precision).eps * max(abs(loss), float(np.abs(losses).max()))
  return bool(np.all(np.abs(losses - loss) <= flat_tol))


def _kind(critical: bool, n_negative: int, n_zero: int, n_positive: int, flat) -> str:
  if not critical:
    return "not_critical"
  if n_negative and n_positive:
    return "saddle"
  if not n_zero:
    return "minimum" if n_positive else "maximum"
  if not (n_negative or n_positive) and flat():
    return "plateau"
  return "degenerate"


def _lanczos_extremes_and_counts(
  problem: products.Problem,
  eig_tol: float | None,
  num_probes: int,
  rng: np.random.Generator,
  param_dtype: np.dtype,
) -> tuple[float, float, tuple[int, int, int], float]:
  """λ_min, λ_max, SLQ estimates of (n_negative, n_zero, n_positive), and the tolerance of the
  counts.

  The extremes are the extreme Ritz values over all probes, signed at `tol` (as the exact
  method's eigenvalues); the counts are made consistent with them (no negative count if
  λ_min ≥ −tol, at least one if λ_min < −tol, ...). With m = 80 < N steps, a node stands
  for the eigenvalues around it, of either sign near zero: the counts are signed at the
  quadrature's resolution (λ_max − λ_min)/m instead (when `eig_tol` is not given). At the
  rounding tolerance, a cluster of eigenvalues near zero (the weights of always-blank pixels, tiny
  curvatures) falls into one node, counted whole on the side it lands, which on a digits MLP
  doubled the negative count; at the resolution the counts estimate those of the exact
  eigenvalues at the same tolerance.
  """
  size, dtype = problem.num_params, problem.flat_params.dtype
  steps = LANCZOS_STEPS  # < size: a smaller problem is classified exactly
  probes = rng.integers(0, 2, size=(num_probes, size)) * 2.0 - 1.0
  nodes = krylov.ritz(krylov.hessian_lanczos(problem, probes.astype(dtype), steps))
  lowest, highest = float(nodes.values.min()), float(nodes.values.max())
  tol = _default_eig_tol(size, param_dtype, lowest, highest) if eig_tol is None else eig_tol
  resolved = tol if eig_tol is not None else max(tol, (highest - lowest) / steps)

  def count(mask: np.ndarray) -> int:
    return round(size * float((nodes.weights * mask).sum(axis=-1).mean()))

  n_negative = (
    size if highest < -tol else (0 if lowest >= -tol else max(1, count(nodes.values < -resolved)))
  )
  n_positive = (
    size if lowest > tol else (0 if highest <= tol else max(1, count(nodes.values > resolved)))
  )
  n_positive = min(n_positive, size - n_negative)
  return lowest, highest, (n_negative, size - n_negative - n_positive, n_positive), resolved


def _default_eig_tol(size: int, dtype: Any, lowest: float, highest: float) -> float:
  """N ε max|λ|, the rank tolerance of `numpy.linalg.matrix_rank`, with ε of the parameters'
  dtype (the precision of the Hessian-vector products); √N ε max|λ| in half precision, where N ε
  would make every eigenvalue zero (a bfloat16 saddle of 195 parameters read "plateau";
  `dense.rounding_tolerance`)."""
  return dense.rounding_tolerance(size, dtype) * max(abs(lowest), abs(highest))


def classify(
  loss_fn: products.LossFn,
  params: Any,
  *args: Any,
  grad_tol: float | None = None,
  eig_tol: float | None = None,
  flat_tol: float | None = None,
  probe_radius: float = 0.1,
  num_directions: int = 16,
  method: str = "exact",
  batches: Sequence[tuple] | None = None,
  mode: str | None = None,
  key: jax.Array | None = None,
  num_probes: int = 8,
  chunk_size: int | None = None,
  eigenvalues: Any = None,
  max_seconds: float = dense.DEFAULT_MAX_SECONDS,
) -> CriticalPoint:
  """Classifies `params` by the gradient and the Hessian's eigenvalues (the second-order test).

  With g = ∇L(θ), λ the eigenvalues of H = ∇²L(θ), an eigenvalue counted negative if λ < −eig_tol,
  positive if λ > eig_tol and zero otherwise, the rules, in order, are:

  1. ‖g‖ > grad_tol: "not_critical" (the spectrum, index and ‖H g‖ are still reported).
  2. some negative and some positive eigenvalues: "saddle", zero eigenvalues or not; its index
     is the fraction of negative eigenvalues (Goodfellow et al. 2016, §8.2.3).
  3. all positive: "minimum"; all negative: "maximum" (the second-order test, §4.3).
  4. all zero, and the loss flat within `probe_radius`: "plateau". Flat means
     |L(θ ± r u) − L(θ)| ≤ flat_tol for `num_directions` random unit directions u.
  5. otherwise, zero eigenvalues with the rest of one sign, or all zero but the loss not flat:
     "degenerate", where the second-order test is inconclusive (x⁴, the monkey saddle x³ − 3xy²).

  Default tolerances, from the precision ε of the parameters' dtype (of the least precise
  leaf's, `dense.least_precise_dtype`: float32 leaves beside a float64 one are rounded at
  float32's ε):

  * grad_tol = √ε (1 + |L|): the gradient a float objective can resolve (as in the √ε step of
    finite differences, Nocedal & Wright 2006, §8.1);
  * eig_tol = N ε max|λ|: rounding in an N × N symmetric eigenproblem, the rank tolerance of
    `numpy.linalg.matrix_rank` (√N ε max|λ| in bfloat16 and float16, where N ε passes 1 at a
    few hundred parameters); exactly zero eigenvalues are always zero;
  * flat_tol = 16 ε max(|L(θ)|, |L(θ ± r u)|): rounding of the loss values compared.

  In bfloat16 (ε = 2⁻⁷) these are coarse: grad_tol is 0.09 (1 + |L|), so a bfloat16 network at
  its random initialization (‖g‖ ≈ 0.1) can read as a critical point. That is the verdict of the
  bfloat16 evaluation of the loss; for the verdict of the function itself, classify the
  parameters cast to float32, or pass `grad_tol`.

  ‖H g‖ is reported to find gradient-flat regions (Frye et al. 2021), where g ≠ 0 but g ∈ ker H.
  The condition number is max|λ| / min|λ| (λ_max/λ_min at a minimum), ∞ with a zero eigenvalue.

  ``method="lanczos"`` needs only HVPs: `num_probes` Lanczos runs of 80 steps from
  Rademacher probes give λ_min and λ_max (the extreme Ritz values, which settle the kind) and SLQ
  estimates of the counts (N Σ_j τ_j [θ_j < −tol] averaged over the probes, as in
  `krylov.density`), made consistent with the extremes. With fewer steps than N, the counts are
  signed at the quadrature's resolution, tol = (λ_max − λ_min)/80 unless `eig_tol` is
  given: eigenvalues nearer zero are counted zero (`count_tol` reports the tolerance used; the
  exact method with that `eig_tol` gives the counts being estimated). The condition number is NaN
  at a saddle, whose smallest |λ| lies inside the spectrum. For N ≤ 80 a Lanczos run would take
  N steps, as many HVPs as the dense Hessian, so the exact method runs instead (its counts are
  exact; SLQ's weights would only estimate them).

  Args:
    loss_fn, params, *args, batches, mode: the loss, as in `hvp`.
    grad_tol, eig_tol, flat_tol: tolerances (defaults above).
    probe_radius: r, the distance of the flatness probes (in the raveled parameters' norm).
    num_directions: random directions u of the flatness probes.
    method: "exact" (dense Hessian) or "lanczos".
    key: PRNG key of the probes (default: a fixed seed).
    num_probes: SLQ probes for the counts of ``method="lanczos"``.
    chunk_size: basis vectors per HVP call of the exact method.
    max_seconds: the exact method's time limit: its Hessian-vector products, timed on the first
      chunk (see `hessian_matrix`), plus its eigensolver, estimated (`dense.solve_seconds`).
    eigenvalues: all N eigenvalues of H at `params` when the caller has them already (from
      `spectrum(..., method="exact")`): the exact method then does not build H again.

  Returns:
    `CriticalPoint(kind, index, n_negative, n_zero, n_positive, lambda_min, lambda_max,
    condition_number, grad_norm, hessian_grad_norm, loss, count_tol)`.
  """
  num_params, _ = dense.param_count(params, "classify")
  dtype = dense.least_precise_dtype(params)
  if method not in METHODS:
    raise ValueError(f"method={method!r}: must be one of {METHODS}")
  validate.require_positive("probe_radius", probe_radius, "classify")
  products.require_count("num_directions", num_directions, "classify")
  products.require_count("num_probes", num_probes, "classify")
  for name, tolerance in (("grad_tol", grad_tol), ("eig_tol", eig_tol), ("flat_tol", flat_tol)):
    products.require_tolerance(name, tolerance, "classify")
  dense.require_max_seconds(max_seconds, "classify")
  if eigenvalues is not None:
    eigenvalues = np.sort(np.asarray(eigenvalues, float))
    if method != "exact" or eigenvalues.shape != (num_params,):
      raise ValueError(
        f"eigenvalues: shape {eigenvalues.shape} given with method={method!r}; it must hold all "
        f"{num_params} eigenvalues, with method='exact'"
      )
  elif method == "exact":
    dense.require_dense_fits(params, chunk_size, False, "classify")
  problem = products.prepare(loss_fn, params, args, batches, mode, "classify")
  rng = products.host_rng(key)
  eps = float(np.finfo(dtype).eps)
  loss, grad, hessian_grad = _first_and_second_order(problem, "classify")
  grad_norm = float(np.linalg.norm(grad))
  if method == "exact" or num_params <= LANCZOS_STEPS:
    if eigenvalues is None:
      matrix = dense.dense_hessian(problem, chunk_size, max_seconds=max_seconds, eigenvectors=False)
      eigenvalues, _ = dense.symmetric_eigh(matrix, False)
    values = eigenvalues
    lowest, highest = float(values[0]), float(values[-1])
    tol = _default_eig_tol(num_params, dtype, lowest, highest) if eig_tol is None else eig_tol
    n_negative, n_positive = int(np.sum(values < -tol)), int(np.sum(values > tol))
    n_zero = num_params - n_negative - n_positive
    smallest = float(np.abs(values).min())
  else:
    lowest, highest, counts, tol = _lanczos_extremes_and_counts(
      problem, eig_tol, num_probes, rng, dtype
    )
    n_negative, n_zero, n_positive = counts
    smallest = min(abs(lowest), abs(highest)) if not (n_negative and n_positive) else np.nan
  critical = grad_norm <= (np.sqrt(eps) * (1 + abs(loss)) if grad_tol is None else grad_tol)
  kind = _kind(
    critical,
    n_negative,
    n_zero,
    n_positive,
    lambda: _is_flat(problem, loss, probe_radius, num_directions, flat_tol, rng, dtype),
  )
  largest = max(abs(lowest), abs(highest))
  return CriticalPoint(
    kind=kind,
    index=n_negative / num_params,
    n_negative=n_negative,
    n_zero=n_zero,
    n_positive=n_positive,
    lambda_min=lowest,
    lambda_max=highest,
    condition_number=float(np.inf if n_zero else largest / smallest),
    grad_norm=grad_norm,
    hessian_grad_norm=float(np.linalg.norm(hessian_grad)),
    loss=loss,
    count_tol=float(tol),
  )
