"""Shared pieces of the loss-landscape experiments of §8.2 (issue 6): a digits MLP from a config,
trained by SGD from several seeds (one `jaxopt_study.sweep`), its full-batch loss as a function
of the parameters, straight lines in parameter space, the hidden-unit permutations of §8.2.2, the
2-D test surfaces and trajectory geometry of §8.2.7, and critical points found from many starts by
Newton's method for ∇f = 0 (§8.2.3).

Apart from the training, everything here is a pure function of pytrees and arrays; the
experiments wire these to the Hessian tools (`jaxopt_study.hessian`).
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import threadpoolctl
from flax import nnx

from jaxopt_study import hessian, models, optim, sweep, train, validate
from jaxopt_study.config import build_problem
from jaxopt_study.lab import digits_tasks
from jaxopt_study.results import member_state

NUM_FEATURES, NUM_CLASSES = 64, 10  # scikit-learn's digits: 8×8 pixels, 10 classes


def check_digits_config(config: ml_collections.ConfigDict, where: str) -> models.FunctionalModel:
  """Checks `data`, `model`, `batch_size` and `sampling` of a digits-MLP config, naming the field
  (`validate`); returns the model it built.

  Raises:
    ValueError: data that is not digits, a model with BatchNorm (the loss must be a function of
      the parameters only) or that cannot be built, a batch size out of range, a bad sampling.
  """
  validate.require_choice("data.name", config.data.name, where, ["digits"])
  if config.model.get("batchnorm", False):
    raise ValueError(
      f"{where}: model.batchnorm=True: the loss must be a function of the parameters only"
    )
  try:
    model = digits_tasks.mlp(config.seed, **config.model)
  except (TypeError, ValueError) as error:
    raise ValueError(f"{where}: model: {error}") from error
  num_train = digits_tasks.load(config.data).x_train.shape[0]
  validate.require_int("batch_size", config.batch_size, where, low=1, high=num_train)
  validate.require_choice("sampling", config.sampling, where, train.SAMPLINGS)
  return model


def train_from_seeds(
  config: ml_collections.ConfigDict, seeds: Sequence[int], progress: bool = False
) -> tuple[nnx.State, nnx.State, np.ndarray]:
  """SGD (Algorithm 8.1) from one initialization per seed, as one vmapped, compiled sweep.

  Each seed draws θ₀ (`digits_tasks.mlp`) and the minibatch order; every run takes
  `config.steps` steps of `config.batch_size` at `config.learning_rate` (`sweep.run` over the
  seeds of the config's problem, `config.build_problem`).

  Returns:
    θ₀ and θ_T with a leading axis over `seeds`, and the final full-batch training losses.
  """
  result = sweep.run(
    build_problem(config),
    optim.sgd,
    {"seed": list(seeds)},
    steps=config.steps,
    eval_every=config.steps,
    batch_size=config.batch_size,
    learning_rate=config.learning_rate,
    init_scale=config.model.init_scale,
    sampling=config.sampling,
    progress=progress,
  )
  template = digits_tasks.mlp(seeds[0], **config.model)
  initial = [digits_tasks.mlp(seed, **config.model).params for seed in seeds]
  final = [
    member_state(result.arrays, row["member"], template.params, template.model_state)[0]
    for row in result.table
  ]
  final_loss = np.asarray([row["final_train_loss"] for row in result.table])
  return digits_tasks.stack(initial), digits_tasks.stack(final), final_loss


def select(tree: Any, index: int) -> Any:
  """Member `index` of a pytree stacked along a leading axis (`digits_tasks.stack`)."""
  return jax.tree.map(lambda leaf: leaf[index], tree)


def interpolate(start: optax.Params, end: optax.Params, alpha: jax.Array) -> optax.Params:
  """θ(α) = (1 − α) θ_start + α θ_end, leaf by leaf (Goodfellow, Vinyals & Saxe 2015, eq. 1)."""
  return jax.tree.map(lambda a, b: (1 - alpha) * a + alpha * b, start, end)


def loss_along_line(
  loss_fn: Callable[..., jax.Array],
  start: optax.Params,
  end: optax.Params,
  alphas: Sequence[float],
  *args: jax.Array,
) -> np.ndarray:
  """L(θ(α)) for every α of `alphas`, as one vmapped, jitted evaluation."""
  dtype = jax.tree.leaves(start)[0].dtype
  values = jax.jit(jax.vmap(lambda a: loss_fn(interpolate(start, end, a), *args)))(
    jnp.asarray(alphas, dtype)
  )
  return np.asarray(values)


def parameter_distance(a: optax.Params, b: optax.Params) -> float:
  """‖θ_a − θ_b‖₂ over every parameter."""
  return float(optax.tree.norm(jax.tree.map(jnp.subtract, a, b)))


def path_length(points: np.ndarray) -> float:
  """Σ_t ‖x_{t+1} − x_t‖ of a trajectory (T, d): the length of the polyline through its points."""
  return float(np.sum(np.linalg.norm(np.diff(points, axis=0), axis=-1)))


class Surface(NamedTuple):
  """A 2-D test surface of §8.2.7: the function, where descent starts, its global minimizer, and
  the box ((x_min, x_max), (y_min, y_max)) its contour plot shows."""

  fn: Callable[[jax.Array], jax.Array]
  start: tuple[float, float]
  minimizer: tuple[float, float]
  bounds: tuple[tuple[float, float], tuple[float, float]]


def mountain(theta: jax.Array) -> jax.Array:
  """A bowl around (0, 3) with a Gaussian mountain of height 4 at (0.3, 0) in the way.

  Goodfellow et al. (2016), §8.2.7 and Fig. 8.4: started on the wrong side of a mountain, local
  downhill moves cannot cross it; in two dimensions they go around it, a detour. The mountain's
  tail shifts the global minimizer to (−0.07505501, 3.75055013), found numerically (f = 0.05726).

  .. math:: f(x, y) = 0.05 (x^2 + (y − 3)^2) + 4 \\exp(−((x − 0.3)^2 + y^2) / (2 · 1.2^2))
  """
  x, y = theta[0], theta[1]
  return 0.05 * (x**2 + (y - 3.0) ** 2) + 4.0 * jnp.exp(-((x - 0.3) ** 2 + y**2) / (2 * 1.2**2))


def plateau(theta: jax.Array) -> jax.Array:
  """An inverted Gaussian well, flat far from its minimum at the origin (§8.2.3, §8.2.7).

  f(θ) = 1 − exp(−‖θ‖²/2): at ‖θ‖ = 5 the gradient is 5 e^{−12.5} ≈ 2e-5, so a step −ε∇f barely
  moves, while methods that divide by a running gradient scale (Adam) take steps of size ≈ ε.
  """
  return 1.0 - jnp.exp(-0.5 * jnp.sum(theta**2))


SURFACES: dict[str, Surface] = {
  "mountain": Surface(mountain, (0.0, -3.5), (-0.07505501, 3.75055013), ((-5.0, 5.0), (-5.0, 5.0))),
  "plateau": Surface(plateau, (5.0, 0.5), (0.0, 0.0), ((-1.5, 6.0), (-2.0, 2.0))),
}


def permute_hidden_units(params: nnx.State, rng: np.random.Generator) -> nnx.State:
  """The same `models.MLP` with the units of every hidden layer relabelled at random (§8.2.2).

  Goodfellow et al. (2016), §8.2.2, "weight space symmetry": swapping hidden units i and j (the
  columns i, j of the layer's kernel and entries i, j of its bias, and the rows i, j of the next
  layer's kernel) gives a different θ that computes the same function, so every minimum comes in
  m! equivalent copies per layer of m units. One permutation per hidden layer is drawn from `rng`.
  """
  layers = nnx.to_pure_dict(params)
  hidden = layers["hidden"]
  for index in sorted(hidden):
    order = rng.permutation(hidden[index]["bias"].shape[0])
    hidden[index]["kernel"] = hidden[index]["kernel"][:, order]
    hidden[index]["bias"] = hidden[index]["bias"][order]
    following = hidden[index + 1] if index + 1 in hidden else layers["output"]
    following["kernel"] = following["kernel"][order, :]
  permuted = jax.tree.map(jnp.asarray, params)  # a new State; `params` is left as it was
  nnx.replace_by_pure_dict(permuted, layers)
  return permuted


def critical_points_from(
  objective: Callable[[optax.Params], jax.Array],
  starts: optax.Params,
  steps: int,
  damping: float = 1.0,
) -> tuple[optax.Params, np.ndarray, list[hessian.CriticalPoint]]:
  """Newton's method for ∇f = 0 from many starts, and what each end point is (§8.2.3).

  Every start (the leaves of `starts` stacked along a leading axis) takes `steps` updates of
  `optim.critical_point_newton` on the full objective f (`train.descend`), all in one vmapped
  program; each end point is then classified by `hessian.classify` (exact spectrum, default
  tolerances), so a run that stalled short of a root (a gradient-flat point) comes back
  "not_critical". This is how Dauphin et al. (2014, §4, Fig. 1) find critical points of every
  index.

  Args:
    objective: f(θ), a scalar function of one parameter pytree.
    starts: parameter pytrees stacked along a leading axis.
    steps: Newton updates per start.
    damping: ν₀ of `optim.critical_point_newton`.

  Returns:
    The end points (stacked like `starts`), ‖∇f(θ_t)‖ at t = 0 … steps (starts, steps + 1) and
    one `hessian.CriticalPoint` per start.
  """
  tx = optim.critical_point_newton(damping=damping)

  def gradient_norm(params: optax.Params, _) -> jax.Array:
    return optax.tree.norm(jax.grad(objective)(params))

  def from_one(params):
    descent = train.descend(objective, params, tx, steps=steps, record=gradient_norm)
    return descent.params, descent.records

  # One BLAS thread for the small eigenproblems (XLA's CPU eigh calls scipy's LAPACK): on a
  # shared machine threads spin at their barriers (measured in `hessian.dense`).
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    ends, norms = jax.block_until_ready(jax.jit(jax.vmap(from_one))(starts))
  count = jax.tree.leaves(starts)[0].shape[0]
  points = [hessian.classify(objective, select(ends, i)) for i in range(count)]
  return ends, np.asarray(norms), points


def repeats_of(points: Sequence[hessian.CriticalPoint], rel_tol: float = 1e-9) -> list[int | None]:
  """For each point, the position of an earlier critical point it repeats, or None.

  Copies of one critical point under the symmetries of a network (hidden-unit permutations,
  §8.2.2; sign flips of odd activations such as tanh) have the same loss and the same spectrum,
  so a critical point (kind other than "not_critical") repeats the first earlier one with the
  same number of negative eigenvalues and a loss equal within `rel_tol` · (1 + |loss|). A
  point that is not critical repeats nothing.
  """
  firsts: list[int] = []
  found: list[int | None] = []
  for i, point in enumerate(points):
    same = None
    if point.kind != "not_critical":
      same = next(
        (
          j
          for j in firsts
          if points[j].n_negative == point.n_negative
          and abs(points[j].loss - point.loss) <= rel_tol * (1 + abs(point.loss))
        ),
        None,
      )
      if same is None:
        firsts.append(i)
    found.append(same)
  return found
