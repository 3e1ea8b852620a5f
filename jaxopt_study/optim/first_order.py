"""First-order optimizers of chapter 8 as Optax transformations, each computing the book's update.

Goodfellow, Bengio & Courville (2016), *Deep Learning*, chapter 8: SGD (Alg. 8.1), momentum (8.2),
Nesterov momentum (8.3), AdaGrad (8.4), RMSProp (8.5), RMSProp with Nesterov momentum (8.6) and
Adam (8.7); with AdaDelta (Zeiler 2012) and delta-bar-delta (Jacobs 1988) from §8.5.

Notation: g is the gradient, ε_k the learning rate at step k (a float, or an Optax schedule called
with the 0-based count of updates done so far), δ = `eps`, α = `momentum`, ρ = `decay`, and ⊙, /
and √ act element-wise. Where Optax already computes the book's update the optimizer is a chain of
Optax's `scale_by_*` blocks; where it does not, the block is written here and its docstring says
how Optax differs. The δ of AdaGrad, RMSProp (with or without Nesterov), Adam and AdaDelta must be
> 0 ("for numerical stability", the book's 10⁻⁷ or so): with δ = 0 a coordinate whose gradient is
exactly 0 from the first step (the weight of an always-blank pixel, a dead unit) takes 0/0 = NaN.
"""

import warnings
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_study import validate
from jaxopt_study.optim import extra_args


def _learning_rate_at(learning_rate: optax.ScalarOrSchedule, count: chex.Array) -> chex.Numeric:
  """ε_k (or a scheduled momentum α_k): the schedule at the 0-based step count, or the constant."""
  return learning_rate(count) if callable(learning_rate) else learning_rate


def _abs_sq(g: chex.Array) -> chex.Array:
  """|g|² element-wise: g ⊙ g for real g, Re(ḡ g) for complex g (real-valued, in g's dtype)."""
  return jnp.real(jnp.conj(g) * g).astype(g.dtype) if jnp.iscomplexobj(g) else g * g


def _eps_checked(
  tx: optax.GradientTransformation, eps: float, where: str
) -> optax.GradientTransformation:
  """`tx`, whose init warns of a parameter in whose dtype δ rounds to 0 (the default 1e-8 in
  float16): the 0/0 = NaN that δ > 0 prevents is then back. A warning, not an error: Optax's own
  optimizers run float16 with these defaults, and its generic tests do too."""

  def init_fn(params: optax.Params) -> optax.OptState:
    if not isinstance(eps, jax.core.Tracer):
      for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.inexact) and float(np.abs(np.asarray(eps, dtype))) == 0:
          warnings.warn(
            f"{where}: eps={float(eps):g} rounds to 0 in {dtype.name}, the dtype of "
            f"params{jax.tree_util.keystr(path)}, so a gradient of exactly 0 gives 0/0 = NaN; "
            f"pass an eps ≥ {float(jnp.finfo(dtype).smallest_subnormal):g}"
            + (", or keep the parameters in float32" if jnp.finfo(dtype).bits < 32 else ""),
            stacklevel=2,
          )
          break
    return tx.init(params)

  return optax.GradientTransformation(init_fn, tx.update)


def sgd(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
  """Stochastic gradient descent, Goodfellow et al. (2016) Algorithm 8.1.

  .. math:: Δθ = −ε_k g

  This is `optax.scale_by_learning_rate`, which is exactly Alg. 8.1's update.

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...

  Returns:
    An `optax.GradientTransformation`.
  """
  validate.require_learning_rate(learning_rate, "sgd")
  return optax.with_extra_args_support(optax.scale_by_learning_rate(learning_rate))


class BookMomentumState(NamedTuple):
  """State of `scale_by_book_momentum`."""

  count: chex.Array  # k: the number of updates done so far (int32 scalar), the step of ε_k
  velocity: optax.Updates  # v: the velocity of Alg. 8.2 / 8.3, shaped like the params


def scale_by_book_momentum(
  learning_rate: optax.ScalarOrSchedule,
  momentum: optax.ScalarOrSchedule = 0.9,
  nesterov: bool = False,
) -> optax.GradientTransformation:
  """The velocity of Goodfellow et al. (2016) Algorithms 8.2 and 8.3, learning rate included.

  .. math::
    v_{k+1} = α_k v_k − ε_k g,  v_0 = 0;
    Δθ = v_{k+1}  (Alg. 8.2),   Δθ̃ = α_{k+1} v_{k+1} − ε_k g  (Alg. 8.3, on θ̃_k = θ_k + α_k v_k).

  The learning rate lives inside the velocity, as in the book. `optax.trace` followed by
  `optax.scale_by_learning_rate` (what `optax.sgd(momentum=...)` is) keeps u = Σ α^j g instead and
  steps by −ε_k (α u + g): the same when ε is constant, but with a schedule Optax rescales the whole
  history by the current ε_k, while the book keeps each past gradient at the rate it was taken
  with. Optax's blocks in the other order, `optax.chain(optax.scale_by_learning_rate(ε),
  optax.trace(α, nesterov))`, compute the book's steps too; this block holds the count and the
  velocity v of the book in one named state, so that θ = θ̃ − α v can be read from it.

  For `nesterov=True` the params carried are the look-ahead point θ̃ = θ + αv, where Alg. 8.3
  evaluates the gradient. From θ̃_{k+1} = θ_{k+1} + α_{k+1} v_{k+1} and θ_{k+1} = θ_k + v_{k+1}:
  θ̃_{k+1} − θ̃_k = v_{k+1} + α_{k+1} v_{k+1} − α_k v_k = α_{k+1} v_{k+1} − ε_k g. Since v_0 = 0,
  θ̃_0 = θ_0, and the book's θ is recovered at any step as θ = θ̃ − α_k v with v =
  `state.velocity` and k = `state.count`. A momentum schedule (Sutskever et al. 2013, eq. 5) is
  evaluated at k and, for Nesterov, at k + 1: `optax.inject_hyperparams` would instead hold α_k
  for the whole step and carry θ + α_k v_{k+1}, off the book's look-ahead wherever α changes.

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...
    momentum: α ∈ [0, 1), or a schedule of k (α_k; its values are not checked).
    nesterov: whether the params are Alg. 8.3's look-ahead point θ̃ (True) or θ (False).

  Returns:
    An `optax.GradientTransformation` with state `BookMomentumState`.
  """
  where = "scale_by_book_momentum"
  validate.require_learning_rate(learning_rate, where)
  validate.require_momentum(momentum, where)

  def init_fn(params: optax.Params) -> BookMomentumState:
    return BookMomentumState(count=jnp.zeros([], jnp.int32), velocity=optax.tree.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    step_size = _learning_rate_at(learning_rate, state.count)

    def momentum_step(alpha):  # α v − ε_k g, in the dtype of v and g
      return lambda g, v: jnp.asarray(alpha, v.dtype) * v - jnp.asarray(step_size, g.dtype) * g

    alpha = _learning_rate_at(momentum, state.count)
    velocity = jax.tree.map(momentum_step(alpha), updates, state.velocity)
    if nesterov:
      alpha_next = _learning_rate_at(momentum, optax.safe_increment(state.count))
      updates = jax.tree.map(momentum_step(alpha_next), updates, velocity)
    else:
      updates = velocity
    return updates, BookMomentumState(count=optax.safe_increment(state.count), velocity=velocity)

  return optax.with_extra_args_support(optax.GradientTransformation(init_fn, update_fn))


def momentum(
  learning_rate: optax.ScalarOrSchedule, momentum: optax.ScalarOrSchedule = 0.9
) -> optax.GradientTransformation:
  """SGD with momentum, Goodfellow et al. (2016) Algorithm 8.2.

  .. math:: v ← α v − ε_k g,  θ ← θ + v,  v_0 = 0.

  Differs from `optax.sgd(learning_rate, momentum=α)` when ε is scheduled: see
  `scale_by_book_momentum`.

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...
    momentum: α ∈ [0, 1), or a schedule of k (Sutskever et al. 2013).

  Returns:
    An `optax.GradientTransformation` with state `BookMomentumState`.
  """
  validate.require_learning_rate(learning_rate, "momentum")
  validate.require_momentum(momentum, "momentum")
  return scale_by_book_momentum(learning_rate, momentum)


def nesterov(
  learning_rate: optax.ScalarOrSchedule, momentum: optax.ScalarOrSchedule = 0.9
) -> optax.GradientTransformation:
  """SGD with Nesterov momentum, Goodfellow et al. (2016) Algorithm 8.3, on the look-ahead point.

  .. math::
    θ̃ = θ + α v;  g = ∇L(θ̃);  v ← α v − ε_k g;  θ ← θ + v.

  The caller holds θ̃ = θ + αv, not θ: the params passed to `update` (and where the gradient is
  taken) are θ̃, which moves by Δθ̃ = α v_{k+1} − ε_k g, so each step costs one gradient, taken
  exactly where the book takes it. θ̃_0 = θ_0 (v_0 = 0) and θ = θ̃ − α `state.velocity`
  (`nesterov_params`); a training loop (`train.train`, a sweep) evaluates and returns θ̃.
  `optax.sgd(momentum=α, nesterov=True)` computes the same steps for a constant ε but not for a
  scheduled one (see `scale_by_book_momentum`).

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...
    momentum: α ∈ [0, 1), or a schedule of k (Sutskever et al. 2013).

  Returns:
    An `optax.GradientTransformation` with state `BookMomentumState`.

  Example:
    >>> tx = nesterov(learning_rate=0.1, momentum=0.9)
    >>> params_tilde = {"x": jnp.asarray(1.0)}  # θ̃_0 = θ_0
    >>> state = tx.init(params_tilde)
    >>> grads = {"x": 2 * params_tilde["x"]}  # gradient of x², taken at θ̃
    >>> updates, state = tx.update(grads, state)
    >>> params_tilde = optax.apply_updates(params_tilde, updates)
    >>> theta = params_tilde["x"] - 0.9 * state.velocity["x"]  # the book's θ_1 = 1 − 0.1 · 2
    >>> print(round(float(theta), 6))
    0.8
  """
  validate.require_learning_rate(learning_rate, "nesterov")
  validate.require_momentum(momentum, "nesterov")
  return scale_by_book_momentum(learning_rate, momentum, nesterov=True)


def nesterov_params(
  lookahead: optax.Params, state: optax.OptState, momentum: optax.ScalarOrSchedule = 0.9
) -> optax.Params:
  """The book's θ from the look-ahead point θ̃ that `nesterov` carries: θ = θ̃ − α_k v.

  Alg. 8.3 evaluates the gradient at θ̃ = θ + α v; the params a caller (or `flax.nnx.Optimizer`)
  holds under `nesterov` are θ̃. With v and k the velocity and step count of the
  `BookMomentumState` inside `state` (found anywhere in a chain), θ = θ̃ − α_k v.

  Args:
    lookahead: θ̃, the params updated by `nesterov` (a pytree, or an `nnx.State` of params).
    state: the optimizer state (of `nesterov`, or of a chain that contains it).
    momentum: the α (number or schedule) the optimizer was built with.
  """
  found = [value for _, value in optax.tree.get_all_with_path(state, "BookMomentumState")]
  if len(found) != 1:
    raise ValueError(
      f"nesterov_params: state holds {len(found)} momentum states; pass the state of nesterov(...)"
      " (or of a chain with one nesterov)"
    )
  alpha = _learning_rate_at(momentum, found[0].count)
  # leaf by leaf in flattening order: an nnx.Optimizer wraps the velocity in OptVariables and
  # the params in Params, trees that `jax.tree.map` would not pair
  leaves, treedef = jax.tree.flatten(lookahead)
  velocity = jax.tree.leaves(found[0].velocity)
  if len(velocity) != len(leaves):
    raise ValueError(
      f"nesterov_params: lookahead has {len(leaves)} arrays and the momentum state "
      f"{len(velocity)}: pass the params the optimizer updates"
    )
  thetas = [p - jnp.asarray(alpha, v.dtype) * v for p, v in zip(leaves, velocity, strict=True)]
  return jax.tree.unflatten(treedef, thetas)


class BookAdagradState(NamedTuple):
  """State of `scale_by_book_adagrad`."""

  sum_sq_grad: optax.Updates  # r = Σ |g|² over all steps so far, shaped like the params


def scale_by_book_adagrad(eps: float = 1e-7) -> optax.GradientTransformation:
  """AdaGrad's rescaling, Goodfellow et al. (2016) Algorithm 8.4, without the learning rate.

  .. math:: r ← r + g ⊙ g,  r_0 = 0;  output g / (δ + √r).

  For complex parameters g ⊙ g is |g|² = Re(ḡ g), as Optax's second moments use it, so r stays
  real and non-negative (held in the params' dtype, as Optax holds its moments).
  `optax.scale_by_rss` differs: it starts r at `initial_accumulator_value` (0.1 in
  `optax.adagrad`) and puts δ under the root, g / √(r + δ).

  Args:
    eps: δ ≥ 0, added to √r.

  Returns:
    An `optax.GradientTransformation` with state `BookAdagradState`.
  """
  validate.require_positive("eps", eps, "scale_by_book_adagrad")

  def init_fn(params: optax.Params) -> BookAdagradState:
    return BookAdagradState(sum_sq_grad=optax.tree.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    sum_sq_grad = jax.tree.map(lambda g, r: r + _abs_sq(g), updates, state.sum_sq_grad)
    updates = jax.tree.map(lambda g, r: g / (eps + jnp.sqrt(r)), updates, sum_sq_grad)
    return updates, BookAdagradState(sum_sq_grad=sum_sq_grad)

  return optax.with_extra_args_support(optax.GradientTransformation(init_fn, update_fn))


def adagrad(
  learning_rate: optax.ScalarOrSchedule, eps: float = 1e-7
) -> optax.GradientTransformation:
  """AdaGrad, Goodfellow et al. (2016) Algorithm 8.4 (Duchi et al. 2011).

  .. math:: r ← r + g ⊙ g,  r_0 = 0;  Δθ = −ε_k g / (δ + √r).

  Differs from `optax.adagrad` (r_0 = 0.1, δ under the root): see `scale_by_book_adagrad`.

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...
    eps: δ ≥ 0 (the book suggests about 1e-7).

  Returns:
    An `optax.GradientTransformation`: chain of `scale_by_book_adagrad` and
    `optax.scale_by_learning_rate`.
  """
  validate.require_learning_rate(learning_rate, "adagrad")
  validate.require_positive("eps", eps, "adagrad")
  return _eps_checked(
    optax.chain(scale_by_book_adagrad(eps), optax.scale_by_learning_rate(learning_rate)),
    eps,
    "adagrad",
  )


def _scale_by_book_rms(decay: float, eps: float) -> optax.GradientTransformation:
  """r ← ρ r + (1 − ρ) g ⊙ g with r_0 = 0, output g / √(δ + r): `optax.scale_by_rms` as is."""
  return optax.scale_by_rms(decay=decay, eps=eps, initial_scale=0.0, eps_in_sqrt=True)


def rmsprop(
  learning_rate: optax.ScalarOrSchedule, decay: float = 0.9, eps: float = 1e-6
) -> optax.GradientTransformation:
  """RMSProp, Goodfellow et al. (2016) Algorithm 8.5 (Hinton 2012).

  .. math:: r ← ρ r + (1 − ρ) g ⊙ g,  r_0 = 0;  Δθ = −ε_k g / √(δ + r).

  `optax.scale_by_rms(decay, eps, initial_scale=0, eps_in_sqrt=True)` is exactly this rescaling,
  so this equals `optax.rmsprop(learning_rate, decay, eps)`.

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...
    decay: ρ ∈ [0, 1).
    eps: δ ≥ 0, under the root (the book suggests about 1e-6).

  Returns:
    An `optax.GradientTransformation`.
  """
  validate.require_learning_rate(learning_rate, "rmsprop")
  validate.require_unit_interval("decay", decay, "rmsprop")
  validate.require_positive("eps", eps, "rmsprop")
  return _eps_checked(
    optax.chain(_scale_by_book_rms(decay, eps), optax.scale_by_learning_rate(learning_rate)),
    eps,
    "rmsprop",
  )


def rmsprop_nesterov(
  learning_rate: optax.ScalarOrSchedule,
  decay: float = 0.9,
  momentum: float = 0.9,
  eps: float = 1e-8,
) -> optax.GradientTransformation:
  """RMSProp with Nesterov momentum, Goodfellow et al. (2016) Algorithm 8.6, on the look-ahead θ̃.

  .. math::
    θ̃ = θ + α v;  g = ∇L(θ̃);  r ← ρ r + (1 − ρ) g ⊙ g;  v ← α v − ε_k g / √(δ + r);  θ ← θ + v.

  The book's Alg. 8.6 writes ε/√r; δ is put under the root as in its Alg. 8.5, so that a zero
  gradient at step one gives no 0/0. As in `nesterov`, the caller holds θ̃ = θ + αv, which moves
  by Δθ̃ = α v_{k+1} − ε_k g / √(δ + r); θ = θ̃ − α v. Built as `optax.scale_by_rms` (Alg. 8.5's
  r and g / √(δ + r)) followed by the Nesterov velocity of `scale_by_book_momentum`; the steps
  equal those of `optax.rmsprop(learning_rate, decay, eps, momentum=α, nesterov=True)`, which
  applies the learning rate before its momentum trace.

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...
    decay: ρ ∈ [0, 1).
    momentum: α ∈ [0, 1).
    eps: δ ≥ 0, under the root.

  Returns:
    An `optax.GradientTransformation`; the second state of the chain is `BookMomentumState`.
  """
  where = "rmsprop_nesterov"
  validate.require_learning_rate(learning_rate, where)
  validate.require_unit_interval("decay", decay, where)
  validate.require_unit_interval("momentum", momentum, where)
  validate.require_positive("eps", eps, where)
  return _eps_checked(
    optax.chain(
      _scale_by_book_rms(decay, eps),
      scale_by_book_momentum(learning_rate, momentum, nesterov=True),
    ),
    eps,
    where,
  )


def adam(
  learning_rate: optax.ScalarOrSchedule = 1e-3,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
) -> optax.GradientTransformation:
  """Adam, Goodfellow et al. (2016) Algorithm 8.7 (Kingma & Ba 2014).

  .. math::
    t ← t + 1;  s ← ρ₁ s + (1 − ρ₁) g;  r ← ρ₂ r + (1 − ρ₂) g ⊙ g;
    ŝ = s / (1 − ρ₁^t);  r̂ = r / (1 − ρ₂^t);  Δθ = −ε_k ŝ / (√r̂ + δ).

  `optax.scale_by_adam(b1, b2, eps)` is exactly the bias-corrected ŝ / (√r̂ + δ), so this is the
  same chain as `optax.adam(learning_rate, b1, b2, eps)` and costs the same per step.

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...
    b1: ρ₁ ∈ [0, 1), decay of the first moment s.
    b2: ρ₂ ∈ [0, 1), decay of the second moment r.
    eps: δ ≥ 0, outside the root.

  Returns:
    An `optax.GradientTransformation`.
  """
  validate.require_learning_rate(learning_rate, "adam")
  validate.require_unit_interval("b1", b1, "adam")
  validate.require_unit_interval("b2", b2, "adam")
  validate.require_positive("eps", eps, "adam")
  return _eps_checked(
    optax.chain(
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps), optax.scale_by_learning_rate(learning_rate)
    ),
    eps,
    "adam",
  )


def adadelta(
  learning_rate: optax.ScalarOrSchedule = 1.0, decay: float = 0.95, eps: float = 1e-6
) -> optax.GradientTransformation:
  """AdaDelta, Zeiler (2012) Algorithm 1, mentioned in Goodfellow et al. (2016) §8.5.

  .. math::
    E[g²] ← ρ E[g²] + (1 − ρ) g ⊙ g;  Δx = −√(E[Δx²] + δ) / √(E[g²] + δ) ⊙ g;
    E[Δx²] ← ρ E[Δx²] + (1 − ρ) Δx ⊙ Δx;  θ ← θ + ε_k Δx,

  with both averages starting at 0 and E[Δx²] in Δx the one from before this step.
  `optax.scale_by_adadelta(rho=decay, eps)` computes Δx (up to the sign, which
  `optax.scale_by_learning_rate` applies), so for real parameters this equals
  `optax.adadelta(learning_rate, decay, eps)`; Zeiler's algorithm is ε = 1. For complex
  parameters g ⊙ g and Δx ⊙ Δx are the squared moduli |g|², |Δx|², where Optax squares.

  Args:
    learning_rate: ε, a non-negative float or a schedule of the step count k = 0, 1, ...
    decay: ρ ∈ [0, 1).
    eps: δ > 0; with δ = 0 the first Δx is 0 and E[Δx²] stays 0, so the params never move.

  Returns:
    An `optax.GradientTransformation`.
  """
  validate.require_learning_rate(learning_rate, "adadelta")
  validate.require_unit_interval("decay", decay, "adadelta")
  validate.require_positive("eps", eps, "adadelta")
  return _eps_checked(
    optax.chain(_scale_by_adadelta(decay, eps), optax.scale_by_learning_rate(learning_rate)),
    eps,
    "adadelta",
  )


def _scale_by_adadelta(decay: float, eps: float) -> optax.GradientTransformation:
  """Zeiler's Δx (up to the sign), `optax.scale_by_adadelta(rho=decay, eps)` with squared moduli.

  Optax averages g² and Δx², which for complex parameters are not |g|² and |Δx|² (Optax's own
  tests skip AdaDelta on complex parameters); here both averages use |·|², as Optax's RMSProp and
  Adam do, and for real parameters every step is Optax's, bit for bit.
  """

  def init_fn(params: optax.Params) -> optax.ScaleByAdaDeltaState:
    return optax.ScaleByAdaDeltaState(
      e_g=optax.tree.zeros_like(params), e_x=optax.tree.zeros_like(params)
    )

  def update_fn(updates, state, params=None):
    del params
    e_g = optax.tree.update_moment_per_elem_norm(updates, state.e_g, decay, 2)
    updates = jax.tree.map(
      lambda g, e_g, e_x: jnp.sqrt(e_x + eps) / jnp.sqrt(e_g + eps) * g, updates, e_g, state.e_x
    )
    e_x = optax.tree.update_moment_per_elem_norm(updates, state.e_x, decay, 2)
    return updates, optax.ScaleByAdaDeltaState(e_g=e_g, e_x=e_x)

  return optax.GradientTransformation(init_fn, update_fn)


class DeltaBarDeltaState(NamedTuple):
  """State of `delta_bar_delta`."""

  learning_rates: optax.Updates  # ε: one real rate per parameter (float32 at least)
  bar_delta: optax.Updates  # δ̄: exponential average of past gradients, shaped like the params


def delta_bar_delta(
  learning_rate: float, kappa: float, phi: float, theta: float
) -> optax.GradientTransformation:
  """Delta-bar-delta, Jacobs (1988) §"The delta-bar-delta rule"; Goodfellow et al. (2016) §8.5.

  Each parameter has its own learning rate ε, which grows by κ while its gradient keeps the sign
  of δ̄ (the average of its past gradients) and shrinks by the factor 1 − φ when it flips:

  .. math::
    s = δ̄ ⊙ g;  ε ← ε + κ where s > 0;  ε ← (1 − φ) ε where s < 0 (unchanged where s = 0);
    Δθ = −ε ⊙ g (with the new ε);  δ̄ ← (1 − θ) g + θ δ̄,

  with ε starting at `learning_rate` and δ̄ at 0. Optax has no counterpart.

  Complex parameters are supported: each complex parameter has one real rate ε (held in the
  params' real dtype, float32 at least), and the sign test uses s = Re(conj(δ̄) g), the inner
  product of δ̄ and g as vectors of ℝ², which is δ̄ g for a real parameter: the rate grows while
  the gradient keeps pointing within 90° of its average. The gradients passed are conj(∇f),
  Optax's convention for complex parameters, so Δθ = −ε ⊙ g descends.

  Args:
    learning_rate: the initial rate of every parameter, a non-negative number (the rates then
      adapt themselves, so a schedule is refused).
    kappa: κ ≥ 0, the additive increase.
    phi: φ ∈ [0, 1], the fraction a rate loses when the gradient's sign flips.
    theta: θ ∈ [0, 1), Jacobs's averaging weight of δ̄ (not the parameters).

  Returns:
    An `optax.GradientTransformation` with state `DeltaBarDeltaState`.
  """
  where = "delta_bar_delta"
  if callable(learning_rate):
    raise ValueError(
      f"{where}: learning_rate={learning_rate!r} must be a number, the initial per-parameter "
      "rate; a schedule is not supported because the rates adapt themselves"
    )
  validate.require_non_negative("learning_rate", learning_rate, where)
  validate.require_non_negative("kappa", kappa, where)
  validate.require_unit_interval("phi", phi, where, include_one=True)
  validate.require_unit_interval("theta", theta, where)

  def init_fn(params: optax.Params) -> DeltaBarDeltaState:
    params = extra_args.as_arrays(params)  # a Python number's dtype, as jnp.asarray gives it
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
      if not jnp.issubdtype(leaf.dtype, jnp.inexact):
        raise TypeError(
          f"{where}: params{jax.tree_util.keystr(path)} has dtype {leaf.dtype}: each parameter "
          "needs a real learning rate of its own, so it must be floating point"
        )

    def initial_rates(p):  # real rates, shaped (and sharded) like p, in float32 at least: a
      # bfloat16 rate of 0.01 does not grow by κ = 1e-5 (its rounding step is 6e-5)
      return jnp.full_like(p, learning_rate, jnp.promote_types(jnp.finfo(p.dtype).dtype, "float32"))

    return DeltaBarDeltaState(
      learning_rates=jax.tree.map(initial_rates, params),
      bar_delta=optax.tree.zeros_like(params),
    )

  def update_fn(updates, state, params=None):
    del params
    updates = extra_args.as_arrays(updates)

    def new_rate(g, rate, bar):
      agreement = jnp.real(jnp.conj(bar) * g)  # bar · g, as vectors of ℝ² if complex
      grown = jnp.where(agreement > 0, rate + kappa, rate)
      return jnp.where(agreement < 0, (1 - phi) * rate, grown)

    rates = jax.tree.map(new_rate, updates, state.learning_rates, state.bar_delta)
    steps = jax.tree.map(lambda g, rate: (-rate * g).astype(g.dtype), updates, rates)
    bar_delta = jax.tree.map(lambda g, bar: (1 - theta) * g + theta * bar, updates, state.bar_delta)
    return steps, DeltaBarDeltaState(learning_rates=rates, bar_delta=bar_delta)

  return optax.with_extra_args_support(optax.GradientTransformation(init_fn, update_fn))
