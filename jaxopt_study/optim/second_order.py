"""Second-order optimizers: Newton's method with Levenberg–Marquardt damping; saddle-free Newton;
Newton's method for critical points of any index.

Goodfellow, Bengio & Courville (2016), *Deep Learning*, §8.6.1: Newton's method (eq. 8.28,
Algorithm 8.8), Δθ = −(H + λI)⁻¹ g, regularized by the damping λ (eq. 8.28, Levenberg 1944,
Marquardt 1963); and Dauphin et al. (2014), "Identifying and attacking the saddle point problem in
high-dimensional non-convex optimization", §5–6: saddle-free Newton, Δθ = −(|H| + λI)⁻¹ g with
|H| = V|Λ|Vᵀ, which rescales each eigen-direction by its curvature like Newton but never moves
towards a saddle along a direction of negative curvature. `critical_point_newton` does the
opposite on purpose: it solves ∇f = 0 (Newton's method for a root of the gradient, Gauss–Newton
on ½‖∇f‖²), to find the saddles, maxima and minima of a loss (Dauphin et al. 2014, §4;
Pennington & Bahri 2017).

Both need the loss, not only its gradient: they take Optax's extra arguments,
``update(grads, state, params, value=..., grad=..., value_fn=...)`` as `optax.lbfgs` does. The
Hessian H of ``value_fn`` at ``params`` comes from `jaxopt_study.hessian`'s Hessian-vector product
(forward-over-reverse, `hessian.products.hvp_rows`), in `ravel_pytree` order for any pytree of
parameters: the dense H (`hessian.traced_hessian`) from chunks of HVPs on the basis vectors, or, for
``saddle_free_newton(krylov_dim=k)``, k HVPs inside the Lanczos iteration of
`hessian.krylov.lanczos_steps`. `hessian.hessian_matrix` builds the same dense matrix on the host,
outside any trace; an optimizer's update runs inside `jit` and `lax.scan`, so it builds H in the
trace, with the same kernels.
"""

from collections.abc import Sequence
from typing import Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxopt_study import validate
from jaxopt_study.hessian import dense, krylov, products
from jaxopt_study.optim.extra_args import (
  all_finite,
  guarded,
  require_loss_args,
  require_matching_trees,
)
from jaxopt_study.optim.first_order import _learning_rate_at

INDEFINITE = ("shift", "solve")
_SHIFT_START = 1e-3  # β of Nocedal & Wright (2006) Alg. 3.3, here relative to max_i |H_ii|
_MAX_SHIFT_TRIES = 100  # τ doubles at each try: from β to 2¹⁰⁰ β
_BOOST, _DROP = 1.5, 2.0 / 3.0  # Martens (2010) §4.1: λ ← 3/2 λ if ρ < 1/4, λ ← 2/3 λ if ρ > 3/4
_LOW_RATIO, _HIGH_RATIO = 0.25, 0.75


class CriticalPointNewtonState(NamedTuple):
  """State of `critical_point_newton`."""

  count: chex.Array  # k: updates done so far (int32)
  damping: chex.Array  # ν: the first trial of the next step uses μ = ν‖g‖
  ratio: chex.Array  # ρ: actual / predicted decrease of ½‖g‖² at the last accepted trial (or NaN)
  accepted: chex.Array  # whether the last update moved (False: every trial failed)
  tries: chex.Array  # trials made at the last update (int32)


class NewtonState(NamedTuple):
  """State of `newton` and `saddle_free_newton`."""

  count: chex.Array  # k: updates done so far (int32), the step of a scheduled learning rate
  damping: chex.Array  # λ: adaptive, the next step's (adapted); else the last step's argument
  shift: chex.Array  # τ: what was added to λ at the last step to make H + λI positive definite
  ratio: chex.Array  # ρ: actual / predicted decrease of the last step (NaN unless adaptive)
  accepted: chex.Array  # whether the last step was taken (adaptive: False when it was rejected)
  value: chex.Array  # f at the params after the last step when known (adaptive), else +inf
  grad: optax.Updates  # ∇f there when known, else zeros (for optax.value_and_grad_from_state)


def loss_problem(value_fn, params, fn_kwargs: dict, where: str) -> products.Problem:
  """``value_fn(params, **fn_kwargs)`` as a `hessian.products.Problem` (raveled params)."""
  return products.prepare(lambda p: value_fn(p, **fn_kwargs), params, (), None, None, where)


def shifted_cholesky(matrix: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(L, τ): the Cholesky factor of A + τI with the smallest τ ∈ {0, τ₀, 2τ₀, 4τ₀, ...} that works.

  Nocedal & Wright (2006) Algorithm 3.3, "Cholesky with added multiple of the identity": with
  β = 10⁻³ max_i |A_ii|, τ₀ = 0 if min_i A_ii > 0 else β − min_i A_ii; while the factorization
  fails (JAX returns NaN for a matrix that is not positive definite), τ ← max(2τ, β). A + τI is
  then positive definite, so −(A + τI)⁻¹ g is a descent direction. A non-finite matrix gets no
  tries (its factor is NaN).
  """
  diag = jnp.diagonal(matrix)
  beta = _SHIFT_START * jnp.maximum(jnp.max(jnp.abs(diag)), jnp.finfo(matrix.dtype).tiny)
  eye = jnp.eye(matrix.shape[0], dtype=matrix.dtype)
  first_tau = jnp.where(jnp.min(diag) > 0, 0.0, beta - jnp.min(diag)).astype(matrix.dtype)
  finite = all_finite(matrix)

  def failed(carry):
    _, factor, tries = carry
    return (tries == 0) | (finite & ~all_finite(factor) & (tries < _MAX_SHIFT_TRIES))

  def attempt(carry):
    tau, _, tries = carry
    tau = jnp.where(tries == 0, first_tau, jnp.maximum(2 * tau, beta))
    return tau, jnp.linalg.cholesky(matrix + tau * eye), tries + 1

  start = (first_tau, jnp.full_like(matrix, jnp.nan), jnp.zeros([], jnp.int32))
  tau, factor, _ = jax.lax.while_loop(failed, attempt, start)
  return factor, tau


def _state_dtype(params: optax.Params) -> jnp.dtype:
  """The raveled params' dtype; float32 for `optax.tree.map_params`'s placeholder (no leaves)."""
  leaves = jax.tree.leaves(params)
  return jnp.result_type(*leaves) if leaves else jnp.dtype(jnp.float32)


def _require_factorizable(dtype: jnp.dtype, where: str) -> None:
  """Refuses half-precision parameters while tracing, before anything compiles: LAPACK has no
  Cholesky, LU or eigensolver in float16 or bfloat16 (XLA fails to compile them)."""
  if jnp.finfo(dtype).bits < 32:
    raise TypeError(
      f"{where}: the parameters are {jnp.dtype(dtype).name} (raveled), and the dense Hessian's "
      "factorization needs float32 or float64 (LAPACK has none in half precision): keep the "
      "parameters in float32 (e.g. nnx.Linear(..., param_dtype=jnp.float32), with "
      "dtype=jnp.bfloat16 to compute in half precision)"
    )


# what each optimizer's refusal of a dense Hessian too large for the memory advises instead
_HESSIAN_FREE = "lbfgs(), which needs only gradients"
_TOO_LARGE_ADVICE = {
  "newton": "use saddle_free_newton(damping, krylov_dim=k), which needs only k Hessian-vector "
  f"products per step, or {_HESSIAN_FREE}",
  "saddle_free_newton": "pass krylov_dim=k (Dauphin et al.'s Algorithm 1), which needs only k "
  f"Hessian-vector products per step, or use {_HESSIAN_FREE}",
  "critical_point_newton": "to find a critical point without it, minimize ½‖∇f‖² with "
  f"{_HESSIAN_FREE} (its gradient H∇f is one Hessian-vector product)",
}


def _require_dense_hessian_fits(params: optax.Params, eigenvectors: bool, where: str) -> None:
  """`hessian.dense.require_dense_fits` for `traced_hessian`'s chunks, with the optimizer's
  advice: `HessianTooLargeError` naming N, the bytes and what to use instead if the N × N Hessian
  (with its eigenvectors) would not fit, before anything is traced or allocated."""
  dense.require_dense_fits(
    params, dense.TRACED_CHUNK_SIZE, eigenvectors, where, _TOO_LARGE_ADVICE[where]
  )


def _is_placeholder(params: optax.Params) -> bool:
  """Whether `params` is the stand-in `optax.tree.map_params` initializes a state with."""
  return type(params).__name__ == "_ParamsPlaceholder"


def _init_state(damping: float):
  def init_fn(params: optax.Params) -> NewtonState:
    dtype = _state_dtype(params)
    return NewtonState(
      count=jnp.zeros([], jnp.int32),
      damping=jnp.asarray(damping, dtype),
      shift=jnp.zeros([], dtype),
      ratio=jnp.full([], jnp.nan, dtype),
      accepted=jnp.ones([], bool),
      value=jnp.full([], jnp.inf, dtype),
      grad=optax.tree.zeros_like(params),
    )

  return init_fn


def newton(
  damping: float = 0.0,
  learning_rate: optax.ScalarOrSchedule = 1.0,
  adaptive: bool = False,
  indefinite: Literal["shift", "solve"] = "shift",
) -> optax.GradientTransformationExtraArgs:
  """Default: damped, descent-shifted Newton; indefinite="solve": textbook, saddle-attracted §8.6.1.

  Goodfellow et al. (2016) eq. 8.28 and Algorithm 8.8, with Levenberg–Marquardt damping. The
  default step is damped and, where H + λI is indefinite, shifted to a descent direction;
  ``indefinite="solve"`` is the textbook step, which is attracted to saddle points (§8.6.1).

  .. math:: Δθ = −ε_k (H + λI)⁻¹ g,   H = ∇²f(θ) (dense, exact), g = the incoming updates.

  With λ = 0 and ε = 1 a strictly convex quadratic is solved in one step (eq. 8.27).

  **Indefinite H + λI** (near a saddle, §8.2.3): the Newton step then moves up along the
  directions of negative curvature, which is how Newton's method is attracted to saddle points.
  It never does so silently:

  * ``indefinite="shift"`` (default): Nocedal & Wright (2006) Alg. 3.3 (`shifted_cholesky`) adds
    the smallest τ ≥ 0 of a doubling sequence for which H + (λ + τ)I has a Cholesky factor, so
    the step is a descent direction, gᵀΔθ < 0; τ is recorded in ``state.shift`` (0 when H + λI
    was positive definite, so a convex problem gets the exact Newton step).
  * ``indefinite="solve"``: the textbook step of eq. 8.28 as it is, solved by LU whatever the
    signs of the eigenvalues: it is attracted to saddles (Dauphin et al. 2014, §3). Opt in to it
    to see that behaviour.

  **Adaptive damping** (``adaptive=True``, Levenberg–Marquardt as in Martens 2010, §4.1): the
  step is tried, f is evaluated at θ + Δθ and compared with the decrease the quadratic model
  predicts, ρ = (f(θ + Δθ) − f(θ)) / (gᵀΔθ + ½ ΔθᵀHΔθ); then λ ← 3/2 λ if ρ < 1/4 and
  λ ← 2/3 λ if ρ > 3/4. A step that does not decrease f (or whose f is not finite) is rejected:
  the update is zero and λ grows. The value and gradient at the trial point, computed together,
  are kept in the state, so `optax.value_and_grad_from_state` reuses them at the next step: one
  function evaluation per step. Without it, nothing is known at the new point, the state holds
  ``value = +inf`` and `optax.value_and_grad_from_state` evaluates f there.

  A loss or gradient at ``params``, or a step, that is not finite gives a zero update and leaves
  the state unchanged (see `extra_args.guarded`).

  Real parameters only: a complex leaf is refused (TypeError naming it) at the first update,
  since the Hessian of a real loss in complex θ is the real 2N × 2N Hessian in (Re θ, Im θ), not
  an N × N complex matrix; pass the real and imaginary parts as separate real leaves.

  Args:
    damping: λ ≥ 0, the Levenberg–Marquardt damping (the initial λ when adaptive; then > 0).
    learning_rate: ε ≥ 0 (0: no step), or a schedule of the step count k = 0, 1, ...
    adaptive: adapt λ from the ratio of actual to predicted decrease, rejecting uphill steps.
    indefinite: ``"shift"`` or ``"solve"``, what to do when H + λI is not positive definite.

  Returns:
    An `optax.GradientTransformationExtraArgs` with state `NewtonState`; its update takes
    ``value=``, ``grad=`` and ``value_fn=`` (and ``**fn_kwargs`` passed on to ``value_fn``).

  Example:
    >>> loss = lambda p: jnp.sum(jnp.asarray([1.0, 10.0]) * (p["w"] - 1.0) ** 2)
    >>> params = {"w": jnp.zeros(2)}
    >>> tx = newton()
    >>> value, grad = jax.value_and_grad(loss)(params)
    >>> updates, state = tx.update(grad, tx.init(params), params, value=value, grad=grad,
    ...                            value_fn=loss)
    >>> print(jnp.round(optax.apply_updates(params, updates)["w"], 6))  # the minimum, one step
    [1. 1.]
  """
  where = "newton"
  validate.require_non_negative("damping", damping, where)
  validate.require_learning_rate(learning_rate, where)
  validate.require_bool("adaptive", adaptive, where)
  validate.require_choice("indefinite", indefinite, where, INDEFINITE)
  if adaptive:
    validate.require_positive("damping", damping, f"{where}(adaptive=True)")

  def update_fn(updates, state, params, *, value, grad, value_fn, **fn_kwargs):
    _require_dense_hessian_fits(params, False, where)
    problem = loss_problem(value_fn, params, fn_kwargs, where)
    layout = problem.objective.layout
    g = layout.ravel(updates)
    _require_factorizable(_state_dtype(params), where)
    hessian = dense.traced_hessian(problem)
    eye = jnp.eye(g.shape[0], dtype=g.dtype)
    # a fixed λ is the argument's, so `optax.inject_hyperparams` can change or schedule it
    lam = state.damping if adaptive else jnp.asarray(damping, state.damping.dtype)
    damped = hessian + lam * eye
    if indefinite == "shift":
      factor, shift = shifted_cholesky(damped)
      direction = -jax.scipy.linalg.cho_solve((factor, True), g)
    else:
      shift = jnp.zeros([], g.dtype)
      direction = -jnp.linalg.solve(damped, g)
    step = jnp.asarray(_learning_rate_at(learning_rate, state.count), g.dtype) * direction
    new_state = state._replace(count=optax.safe_increment(state.count), shift=shift, damping=lam)
    if not adaptive:
      return layout.unravel(step), new_state._replace(accepted=all_finite(step))

    trial = optax.apply_updates(params, layout.unravel(step))
    trial_value, trial_grad = jax.value_and_grad(lambda p: value_fn(p, **fn_kwargs))(trial)
    trial_value = jnp.asarray(trial_value, g.dtype)
    actual = trial_value - value
    predicted = jnp.vdot(g, step) + 0.5 * jnp.vdot(step, hessian @ step)
    # a model that predicts no decrease (indefinite H) or a NaN trial: ρ = −∞, so λ grows
    ratio = jnp.where((predicted < 0) & jnp.isfinite(actual), actual / predicted, -jnp.inf)
    accepted = jnp.isfinite(trial_value) & all_finite(trial_grad) & (actual < 0)
    new_damping = jnp.where(
      ratio < _LOW_RATIO,
      _BOOST * state.damping,
      jnp.where(ratio > _HIGH_RATIO, _DROP * state.damping, state.damping),
    )
    update = jnp.where(accepted, step, jnp.zeros_like(step))
    return layout.unravel(update), new_state._replace(
      damping=new_damping.astype(state.damping.dtype),
      ratio=ratio.astype(state.ratio.dtype),
      accepted=accepted,
      value=jnp.where(accepted, trial_value, value).astype(state.value.dtype),
      grad=jax.tree.map(lambda t, o: jnp.where(accepted, t, o), trial_grad, grad),
    )

  return guarded(where, optax.GradientTransformationExtraArgs(_init_state(damping), update_fn))


def _abs_inverse_times(
  eigenvalues: jax.Array,
  eigenvectors: jax.Array,
  vector: jax.Array,
  damping: jax.Array,
  dtype: jnp.dtype,
) -> jax.Array:
  """(V|Λ|Vᵀ + λI)⁻¹ v restricted to span(V): V diag(1/(|λᵢ| + λ)) Vᵀ v.

  A direction whose |λᵢ| + λ is at most N ε max(|Λ| + λ) (numerically zero curvature, λ = 0) gets
  no step, the pseudo-inverse's rule (`numpy.linalg.pinv`'s default rcond; √N ε in half
  precision, `dense.rounding_tolerance`), with ε of `dtype`, the precision H was computed in (the
  least precise leaf's, `dense.least_precise_dtype`: a float32 leaf's beside a float64 one).
  """
  denominator = jnp.abs(eigenvalues) + damping
  cutoff = dense.rounding_tolerance(eigenvalues.shape[0], dtype) * jnp.max(denominator)
  coefficients = eigenvectors.T @ vector
  safe = jnp.where(denominator > cutoff, denominator, 1.0)
  return eigenvectors @ jnp.where(denominator > cutoff, coefficients / safe, 0.0)


def saddle_free_newton(
  damping: float | Sequence[float],
  learning_rate: optax.ScalarOrSchedule = 1.0,
  krylov_dim: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  """Saddle-free Newton, Dauphin et al. (2014) §5 (exact) and Algorithm 1 (Krylov subspace).

  .. math:: Δθ = −ε_k (|H| + λI)⁻¹ g,   |H| = V |Λ| Vᵀ,  H = V Λ Vᵀ (eigendecomposition).

  Along an eigen-direction of positive curvature this is Newton's step; along one of negative
  curvature it moves downhill by |gᵢ|/|λᵢ|, so saddles repel it where they attract Newton's
  method (§8.2.3). Where H is positive definite it equals the damped Newton step.

  * ``krylov_dim=None``: the dense Hessian (`hessian.traced_hessian`) and its exact
    eigendecomposition, O(N³) per step.
  * ``krylov_dim=k``: Dauphin et al.'s Algorithm 1: k Lanczos steps on Hessian-vector products
    (`hessian.krylov.lanczos_steps`, fully reorthogonalized) from g/‖g‖ give an orthonormal
    basis Q (k × N) of the Krylov subspace and Ĥ = Q H Qᵀ (tridiagonal); the step is
    −ε Qᵀ(|Ĥ| + λI)⁻¹ Q g, k HVPs per step, never an N × N matrix. With k = N it is the exact
    step (the Lanczos basis then spans ℝᴺ).

  Damping: a fixed λ, or, as Dauphin et al.'s Algorithm 1 chooses it, a line search over λ: given
  a sequence of candidates, each step is the one of them with the lowest loss f(θ + Δθ(λ)) (one
  eigendecomposition, one loss evaluation per candidate, vmapped; a candidate whose loss is not
  finite is never chosen, and where none is finite there is no step and the state is kept).
  ``state.damping`` records the λ taken.

  A direction with numerically zero |λᵢ| + λ (possible only with λ = 0) gets no step (the
  pseudo-inverse). A loss, gradient or step that is not finite gives a zero update and leaves
  the state unchanged (see `extra_args.guarded`). The state's ``value`` is +inf (nothing is
  known at the new point), so `optax.value_and_grad_from_state` evaluates f there.

  Real parameters only: a complex leaf is refused (TypeError naming it) at the first update,
  since the Hessian of a real loss in complex θ is the real 2N × 2N Hessian in (Re θ, Im θ), not
  an N × N complex matrix; pass the real and imaginary parts as separate real leaves.

  Args:
    damping: λ ≥ 0 (a fixed λ > 0 bounds the step by ‖g‖/λ), or a non-empty sequence of such
      candidates, searched at every step.
    learning_rate: ε ≥ 0 (0: no step), or a schedule of the step count k = 0, 1, ...
    krylov_dim: None for the exact method, or k ∈ [1, N], the Krylov subspace dimension.

  Returns:
    An `optax.GradientTransformationExtraArgs` with state `NewtonState` (``shift`` 0, ``ratio``
    NaN); its update takes ``value=``, ``grad=`` and ``value_fn=``.
  """
  where = "saddle_free_newton"
  searched = isinstance(damping, Sequence)
  if searched:
    validate.require_sequence("damping", damping, where, validate.require_non_negative)
  else:
    validate.require_non_negative("damping", damping, where)
  validate.require_learning_rate(learning_rate, where)
  if krylov_dim is not None:
    validate.require_positive_int("krylov_dim", krylov_dim, where)

  def update_fn(updates, state, params, *, value, grad, value_fn, **fn_kwargs):
    del value, grad
    problem = loss_problem(value_fn, params, fn_kwargs, where)
    layout = problem.objective.layout
    g = layout.ravel(updates)
    _require_factorizable(_state_dtype(params), where)
    # the argument's λ (inject_hyperparams may change a fixed one), as a vector of candidates
    candidates = jnp.atleast_1d(jnp.asarray(damping, g.dtype))
    precision = dense.least_precise_dtype(params)  # H's rounding, not the raveled dtype's
    if krylov_dim is None:
      _require_dense_hessian_fits(params, True, where)
      eigenvalues, eigenvectors = jnp.linalg.eigh(dense.traced_hessian(problem))
      directions = jax.vmap(
        lambda lam: -_abs_inverse_times(eigenvalues, eigenvectors, g, lam, precision)
      )(candidates)
    else:
      if krylov_dim > problem.num_params:
        raise ValueError(
          f"{where}: krylov_dim={krylov_dim} must be ≤ N={problem.num_params}, the number of "
          "parameters"
        )

      def matvec(vector: jax.Array) -> jax.Array:
        fixed, data = problem.fixed, problem.data
        return products.hvp_rows(problem.objective, problem.flat_params, fixed, data, vector[None])[
          0
        ]

      norm = jnp.linalg.norm(g)
      start = g / jnp.where(norm > 0, norm, 1.0)  # g = 0: a zero start, and a zero step below
      lanczos = krylov.lanczos_steps(matvec, start, krylov_dim)
      tridiagonal = (
        jnp.diag(lanczos.alphas) + jnp.diag(lanczos.betas, 1) + jnp.diag(lanczos.betas, -1)
      )
      ritz_values, ritz_vectors = jnp.linalg.eigh(tridiagonal)
      basis = lanczos.basis
      directions = jax.vmap(
        lambda lam: (
          -basis.T @ _abs_inverse_times(ritz_values, ritz_vectors, basis @ g, lam, precision)
        )
      )(candidates)
    steps = jnp.asarray(_learning_rate_at(learning_rate, state.count), g.dtype) * directions
    chosen = 0
    if searched:  # Dauphin et al. (2014), Algorithm 1: λ ← argmin_λ f(θ + Δθ(λ))
      losses = jax.vmap(
        lambda s: value_fn(optax.apply_updates(params, layout.unravel(s)), **fn_kwargs)
      )(steps)
      chosen = jnp.argmin(jnp.where(jnp.isfinite(losses), losses, jnp.inf))
      # no finite candidate: a NaN step, which `guarded` turns into no step
      steps = jnp.where(jnp.any(jnp.isfinite(losses)), steps, jnp.nan)
    step, damping_now = steps[chosen], candidates[chosen]
    return layout.unravel(step), state._replace(
      count=optax.safe_increment(state.count),
      damping=damping_now.astype(state.damping.dtype),
      accepted=all_finite(step),
    )

  first = damping[0] if searched else damping
  return guarded(where, optax.GradientTransformationExtraArgs(_init_state(first), update_fn))


def _gauss_newton_root_step(
  eigenvalues: jax.Array, coefficients: jax.Array, mu: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """(Vᵀ Δθ, predicted decrease of ½‖g‖²) of the damped Gauss–Newton step on g = ∇f.

  With H = V Λ Vᵀ and c = Vᵀ g: Vᵀ Δθ = −Λ c / (Λ² + μ), and the linear model of the gradient,
  g + H Δθ, has coordinates c μ / (Λ² + μ); the prediction is ½‖c‖² − ½‖c μ / (Λ² + μ)‖².
  """
  denominator = jnp.square(eigenvalues) + mu
  # μ = 0 (only when g = 0) and λ = 0: no step along that direction, the pseudo-inverse's rule
  safe = jnp.where(denominator > 0, denominator, 1.0)
  step = jnp.where(denominator > 0, -eigenvalues * coefficients / safe, 0.0)
  residual = jnp.where(denominator > 0, coefficients * mu / safe, coefficients)
  return step, 0.5 * (jnp.sum(jnp.square(coefficients)) - jnp.sum(jnp.square(residual)))


def _point_checked(
  where: str, inner: optax.GradientTransformationExtraArgs
) -> optax.GradientTransformationExtraArgs:
  """`inner`, whose update first checks the point it is given, as the `hessian` tools do.

  The parameters must be a non-empty pytree of non-empty floating arrays (`products.prepare`);
  where the values are concrete (an eager update, not one traced by `jit`, `vmap` or `lax.scan`)
  the parameters, the loss ``value``, its gradient ``grad`` and the incoming ``grads`` must be
  finite (`products.require_finite_point`): a `ValueError` names which, and the first offending
  leaf's path, before the Hessian is built. Inside a trace the values are unknown, and
  `extra_args.guarded` makes a non-finite loss or gradient a zero update instead.
  """

  def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **fn_kwargs):
    require_loss_args(where, params, value, grad, value_fn)
    problem = loss_problem(value_fn, params, fn_kwargs, where)
    require_matching_trees(where, updates, params, grad)
    if not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((updates, value, grad))):
      layout = problem.objective.layout
      for name, gradient in (("the gradient grad", grad), ("the incoming gradient", updates)):
        products.require_finite_point(problem, value, layout.ravel(gradient), where, name)
    return inner.update(
      updates, state, params, value=value, grad=grad, value_fn=value_fn, **fn_kwargs
    )

  return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def critical_point_newton(
  damping: float = 1.0,
  min_damping: float = 1e-12,
  max_tries: int = 30,
) -> optax.GradientTransformationExtraArgs:
  """Newton's method for a root of the gradient, ∇f(θ) = 0: it converges to critical points of
  any index, as Dauphin et al. (2014, §4, Fig. 1) and Pennington & Bahri (2017, §4) use it.

  The residual is g = ∇f(θ) and its Jacobian the symmetric Hessian H = ∇²f(θ) (dense, exact,
  `hessian.traced_hessian`). With H = V Λ Vᵀ, the Levenberg–Marquardt (Gauss–Newton) step on
  ½‖g‖² is

  .. math:: Δθ = −(H² + μI)⁻¹ H g = −V diag(λᵢ / (λᵢ² + μ)) Vᵀ g,   μ = ν ‖g‖.

  As μ → 0 it is −H⁺g, the minimum-norm least-squares solution of H Δθ = −g: Newton's step
  whatever the signs of the λᵢ, so saddles and maxima attract it as minima do (§8.2.3), and a
  direction of zero curvature gets no step. The damping μ = ν‖g‖ vanishes at a root, which keeps
  the convergence quadratic, even to critical points that are not isolated (where H is singular),
  under a local error bound (Yamashita & Fukushima 2001; Fan & Yuan 2005).

  Globalization, Moré (1978), Nocedal & Wright (2006) §10.3: one eigendecomposition per update,
  then trials μ = ν‖g‖ with ν, 4ν, 16ν, ... (one gradient each) until ½‖g‖² decreases by at least
  10⁻⁴ of the decrease the linear model g + H Δθ predicts; the ν that succeeded is kept and divided
  by 4 (not below `min_damping`) when the ratio ρ of actual to predicted decrease exceeds 3/4. If
  all `max_tries` trials fail (at a root, or where the model is useless) the update is zero and
  ν is left as it was.

  Where it stalls: at a local minimum of ½‖g‖² that is not a root, H g = 0 with g ≠ 0, the
  gradient-flat points of Frye et al. (2021), which are common in neural-network losses; the
  caller must check ‖g‖ at the end (e.g. with `hessian.classify`).

  The point is checked as the `hessian` tools check it: `init` and `update` refuse a parameter
  pytree without leaves or whose leaves are all empty (a zero-size leaf beside non-empty ones is
  taken, and gets an empty step), an integer leaf and a non-finite parameter, and an eager
  `update` a non-finite loss or gradient, with a `ValueError` (`TypeError` for the dtype) naming
  which (and the first offending leaf's path). Inside `jit` the values are unknown: a non-finite
  loss or gradient gives a zero update.

  Real parameters only: a complex leaf is refused (TypeError naming it) at the first update,
  since the Hessian of a real loss in complex θ is the real 2N × 2N Hessian in (Re θ, Im θ), not
  an N × N complex matrix; pass the real and imaginary parts as separate real leaves.

  Args:
    damping: ν₀ > 0, the first ν.
    min_damping: the smallest ν > 0.
    max_tries: trials per update, ≥ 1.

  Returns:
    An `optax.GradientTransformationExtraArgs` with state `CriticalPointNewtonState`; its update
    takes ``value=``, ``grad=`` and ``value_fn=`` (and ``**fn_kwargs`` passed on to
    ``value_fn``); the incoming updates are the gradient g.

  Example:
    >>> loss = lambda p: p["x"] ** 2 + p["y"] ** 4 / 4 - p["y"] ** 2 / 2  # saddle at (0, 0)
    >>> params = {"x": jnp.asarray(0.3), "y": jnp.asarray(0.05)}
    >>> tx = critical_point_newton()
    >>> state = tx.init(params)
    >>> for _ in range(8):
    ...   value, grad = jax.value_and_grad(loss)(params)
    ...   updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    ...   params = optax.apply_updates(params, updates)
    >>> print(round(float(params["x"]), 6), round(float(params["y"]), 6))  # the saddle
    0.0 0.0
  """
  where = "critical_point_newton"
  validate.require_positive("damping", damping, where)
  validate.require_positive("min_damping", min_damping, where)
  validate.require_positive_int("max_tries", max_tries, where)

  def init_fn(params: optax.Params) -> CriticalPointNewtonState:
    if not _is_placeholder(params):
      products.require_params(params, where)
    dtype = _state_dtype(params)
    return CriticalPointNewtonState(
      count=jnp.zeros([], jnp.int32),
      damping=jnp.asarray(damping, dtype),
      ratio=jnp.full([], jnp.nan, dtype),
      accepted=jnp.ones([], bool),
      tries=jnp.zeros([], jnp.int32),
    )

  def update_fn(updates, state, params, *, value, grad, value_fn, **fn_kwargs):
    del value, grad
    _require_dense_hessian_fits(params, True, where)
    problem = loss_problem(value_fn, params, fn_kwargs, where)
    layout = problem.objective.layout
    g = layout.ravel(updates)
    _require_factorizable(_state_dtype(params), where)
    eigenvalues, eigenvectors = jnp.linalg.eigh(dense.traced_hessian(problem))
    coefficients = eigenvectors.T @ g
    half_squared = 0.5 * jnp.sum(jnp.square(g))
    gradient_of = jax.grad(lambda p: value_fn(p, **fn_kwargs))

    def trial(carry):
      nu, _, tries, _, _ = carry
      nu = jnp.where(tries == 0, nu, 4 * nu)
      step_coefficients, predicted = _gauss_newton_root_step(
        eigenvalues, coefficients, nu * jnp.sqrt(2 * half_squared)
      )
      step = eigenvectors @ step_coefficients
      new_g = layout.ravel(gradient_of(optax.apply_updates(params, layout.unravel(step))))
      actual = half_squared - 0.5 * jnp.sum(jnp.square(new_g))
      # a NaN gradient at the trial point, or no predicted decrease (g = 0): not accepted
      accepted = (predicted > 0) & jnp.isfinite(actual) & (actual >= 1e-4 * predicted)
      ratio = jnp.where(predicted > 0, actual / jnp.where(predicted > 0, predicted, 1.0), jnp.nan)
      return nu, accepted, tries + 1, step, ratio

    def failed(carry):
      _, accepted, tries, _, _ = carry
      return ~accepted & (tries < max_tries) & (half_squared > 0)  # g = 0: a root, nothing to try

    start = (state.damping, jnp.zeros([], bool), jnp.zeros([], jnp.int32), jnp.zeros_like(g))
    nu, accepted, tries, step, ratio = jax.lax.while_loop(
      failed, trial, (*start, jnp.full([], jnp.nan, g.dtype))
    )
    nu = jnp.where(accepted & (ratio > _HIGH_RATIO), jnp.maximum(nu / 4, min_damping), nu)
    nu = jnp.where(accepted, nu, state.damping)
    update = jnp.where(accepted, step, jnp.zeros_like(step))
    return layout.unravel(update), CriticalPointNewtonState(
      count=optax.safe_increment(state.count),
      damping=nu.astype(state.damping.dtype),
      ratio=jnp.where(accepted, ratio, state.ratio).astype(state.ratio.dtype),
      accepted=accepted,
      tries=tries,
    )

  return _point_checked(
    where, guarded(where, optax.GradientTransformationExtraArgs(init_fn, update_fn))
  )
