"""Model averaging: the predicted class probabilities of K trained members, averaged.

Goodfellow et al. (2016) §7.11 (bagging and other ensemble methods): K models whose errors are
not perfectly correlated make, on average, a smaller expected squared error together than alone;
for classifiers the ensemble averages the members' predicted distributions,
p(y | x) = (1/K) Σ_k p_k(y | x), and predicts its argmax. The members may be a sweep's members
(independent seeds: `sweep.member_state` of each) or snapshots of one run (Huang et al. 2017,
taken at `optim.cycle_ends` of a `optim.cosine_warm_restarts` schedule: `snapshot_ensemble`).

A member is `(params, model_state)` of the problem's module, whose ``module(x)`` returns class
logits for the inputs x, the first array of a batch ``(x, y)``; the module runs in eval mode.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_study import optim, train, validate
from jaxopt_study import problem as problem_lib

Member = tuple[Any, Any]  # (params, model_state)


def ensemble_probabilities(
  problem: problem_lib.Problem, members: Sequence[Member], inputs: Any
) -> np.ndarray:
  """(1/K) Σ_k softmax(module_k(inputs)): the ensemble's class probabilities, (examples, classes).

  Each member's forward pass is one compiled program per problem (and input shape), reused by
  every member and every call.

  Raises:
    ValueError: no members, a member's logits are not (examples, classes ≥ 2), or a member predicts
      NaN (a diverged member, which would otherwise pass as a confident vote for class 0).
  """
  if not members:
    raise ValueError("ensemble_probabilities: members is empty; give at least one (params, state)")
  member_probabilities = _probabilities_fn(problem)
  total = None
  for index, (params, model_state) in enumerate(members):
    if model_state is None:  # the initial state, as `problem.module` takes it
      model_state = problem_lib.pure(problem).initial(0)[1]
    probabilities = np.asarray(member_probabilities(params, model_state, inputs), np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
      raise ValueError(
        f"ensemble_probabilities: member {index} returned logits of shape "
        f"{probabilities.shape}; expected (examples, classes) with 2 classes or more (one logit "
        "per example, a sigmoid's, would make the softmax 1 and every vote class 0: give a "
        "binary classifier two logits)"
      )
    if np.isnan(probabilities).any():
      raise ValueError(
        f"ensemble_probabilities: member {index} predicts NaN probabilities (did it diverge?); "
        "leave it out of the ensemble"
      )
    if total is not None and probabilities.shape != total.shape:
      raise ValueError(
        f"ensemble_probabilities: member {index} predicts shape {probabilities.shape}, member 0 "
        f"{total.shape}"
      )
    total = probabilities if total is None else total + probabilities
  return total / len(members)


@functools.lru_cache(maxsize=64)
def _probabilities_fn(problem: problem_lib.Problem) -> Callable[[Any, Any, Any], jax.Array]:
  """softmax(module(inputs)) of one member in eval mode, jitted once per problem, in the logits'
  precision (at least float32: a float64 model keeps its float64 probabilities)."""
  pure = problem_lib.pure(problem)

  def probabilities(params, model_state, inputs):
    logits = jnp.asarray(pure.module(params, model_state)(inputs))
    return jax.nn.softmax(logits.astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=-1)

  return jax.jit(probabilities)


def ensemble_error(
  problem: problem_lib.Problem,
  members: Sequence[Member],
  data: tuple[Any, Any] | None = None,
) -> float:
  """The 0-1 error of the ensemble's argmax on `data` = (x, y) (default: the held-out data).

  Raises:
    ValueError: no data given and the problem has no held-out data, data that is not (inputs,
      labels), or labels that are not one class id per example.
  """
  if data is None:
    if problem.heldout_data is None:
      raise ValueError("ensemble_error: the problem has no heldout_data; pass data=(x, y)")
    data = problem.heldout_data
  if len(data) != 2:
    raise ValueError(
      f"ensemble_error: the data holds {len(data)} arrays; it takes (inputs, labels), the model "
      "called on the inputs alone. For a model of several inputs, average its softmax over the "
      "members yourself (ensemble_probabilities takes one input array)"
    )
  inputs, labels = data[0], np.asarray(data[1])
  probabilities = ensemble_probabilities(problem, members, inputs)
  if labels.shape != probabilities.shape[:-1]:
    raise ValueError(
      f"ensemble_error: labels of shape {labels.shape} for {probabilities.shape[0]} examples: "
      f"give one class id per example, shape {probabilities.shape[:-1]}"
    )
  predicted = probabilities.argmax(axis=-1)
  return float(np.mean(predicted != labels))


class SnapshotRun(NamedTuple):
  """What `snapshot_ensemble` returns.

  Attributes:
    members: `(params, model_state)` at the end of every cycle, in order: the snapshots.
    history: metric -> its value at each snapshot (the problem's `metric_names`, as
      `train.train` reports them), and `step`, the steps done when each was taken.
    opt_state: the optimizer state after the last cycle.
  """

  members: list[Member]
  history: dict[str, np.ndarray]
  opt_state: optax.OptState


def cycle_lengths(steps_per_cycle: int, cycles: int, period_factor: int = 1) -> np.ndarray:
  """T_i = T_0 · T_mult^i, i = 0, ..., cycles − 1: the steps of each cycle of
  `optim.cosine_warm_restarts(..., T_0, T_mult)`, whose last steps are `optim.cycle_ends`."""
  where = "cycle_lengths"
  validate.require_positive_int("steps_per_cycle", steps_per_cycle, where)
  validate.require_positive_int("cycles", cycles, where)
  validate.require_positive_int("period_factor", period_factor, where)
  lengths = [int(steps_per_cycle) * int(period_factor) ** i for i in range(int(cycles))]
  validate.require_positive_int("total steps", sum(lengths), where)  # exact Python ints; int32
  return np.asarray(lengths, np.int64)


def make_snapshot_fn(
  problem: Any,
  optimizer: optax.GradientTransformation,
  *,
  lengths: Sequence[int],
  batch_size: int,
  **options: Any,
) -> Callable[[optax.Params, Any, Any, jax.Array], tuple[train.TrainState, Member, dict]]:
  """The pure function `(params, model_state, data, key) -> (final TrainState, snapshots,
  metrics)` of one training run cut into cycles of `lengths` steps: `snapshot_ensemble` jits it,
  an experiment may `vmap` it over seeds.

  One `lax.scan` over the cycles carries the whole `train.TrainState` (parameters, optimizer state,
  step count) from one cycle into the next, so the run is exactly `train.train`'s for
  Σ `lengths` steps; `snapshots` are the `(params, model_state)` at each cycle's end and
  `metrics` the evaluations there, both stacked along a leading axis of cycles. `options` are
  `train.make_train_loop`'s (sampling, l2_penalty, ...).
  """
  loop = train.make_train_loop(problem, optimizer, batch_size=batch_size, **options)
  cycle_steps = np.asarray(lengths, np.int32)

  def snapshot_fn(params, model_state, data, key):
    def cycle(state: train.TrainState, length: jax.Array):
      state, metrics = loop.run(state, data, key, None, length[None], None)
      snapshot = (state.params, state.model_state)
      return state, (snapshot, jax.tree.map(lambda m: m[0], metrics))

    state, (snapshots, metrics) = jax.lax.scan(cycle, loop.init(params, model_state), cycle_steps)
    return state, snapshots, metrics

  return snapshot_fn


def snapshot_ensemble(
  problem: problem_lib.Problem,
  optimizer: Callable[[optax.Schedule], optax.GradientTransformation],
  *,
  learning_rate: float,
  cycles: int,
  steps_per_cycle: int,
  batch_size: int,
  period_factor: int = 1,
  min_learning_rate: float = 0.0,
  seed: int = 0,
  init_scale: float = 1.0,
  sampling: str = "epoch",
  l2_penalty: float = 0.0,
  params: optax.Params | None = None,
  model_state: Any = None,
) -> SnapshotRun:
  """Snapshot ensembles (Huang et al. 2017, "Snapshot ensembles: train 1, get M for free"): one
  run under cosine annealing with warm restarts, a snapshot at the end of every cycle.

  The rate is `optim.cosine_warm_restarts(learning_rate, steps_per_cycle, period_factor,
  min_learning_rate)` (Loshchilov & Hutter 2017, eq. 5; Huang et al.'s eq. 2 is T_mult = 1 and
  ε_min = 0): each cycle anneals the rate from ε_0 = `learning_rate` to nearly ε_min, where the
  model settles into a minimum and is saved, then restarts at ε_0 to leave it for another. The
  ensemble of the M snapshots (`ensemble_error(problem, run.members)`, or of the last m,
  `run.members[-m:]`, as Huang et al. do) costs one training run.

  Across a restart the whole training state carries over, as in Huang et al.'s code (only the
  rate jumps back up): the optimizer state (momentum's velocity, Adam's moments, the schedule's
  step count) and the minibatch order are not reset. So snapshot i equals the parameters of
  `train.train(problem, optimizer(schedule), steps=cycle_ends[i] + 1, ...)` with the same seed.

  Example::

      run = ensembles.snapshot_ensemble(
        problem, lambda rate: optim.momentum(rate, 0.9),
        learning_rate=0.1, cycles=5, steps_per_cycle=400, batch_size=64,
      )
      ensembles.ensemble_error(problem, run.members)

  Args:
    problem: a `problem.Problem` whose module returns class logits.
    optimizer: `schedule -> transformation`, called once with the SGDR schedule, e.g.
      `optim.sgd` or `lambda rate: optim.momentum(rate, 0.9)`.
    learning_rate: ε_0 ≥ 0, the rate at the start of every cycle.
    cycles: M ≥ 1, the number of cycles and of snapshots.
    steps_per_cycle: T_0 ≥ 1, the steps of the first cycle.
    batch_size: examples per minibatch.
    period_factor: T_mult ≥ 1: cycle i has T_0 · T_mult^i steps.
    min_learning_rate: ε_min, where each cycle ends.
    seed, init_scale, sampling, l2_penalty, params, model_state: as in `train.train`.

  Returns:
    A `SnapshotRun`: the M snapshots, the metrics at each and the final optimizer state.
  """
  where = "snapshot_ensemble"
  if not isinstance(problem, problem_lib.Problem):
    raise TypeError(f"{where}: expected a Problem, got {type(problem).__name__}")
  if not callable(optimizer):
    raise TypeError(
      f"{where}: optimizer={optimizer!r} must be a function schedule -> transformation, e.g. "
      "optim.sgd or lambda rate: optim.momentum(rate, 0.9)"
    )
  lengths = cycle_lengths(steps_per_cycle, cycles, period_factor)
  validate.require_non_negative("learning_rate", learning_rate, where)
  validate.require_non_negative("min_learning_rate", min_learning_rate, where)
  if min_learning_rate > learning_rate:
    raise ValueError(
      f"{where}: min_learning_rate={min_learning_rate} must be <= learning_rate={learning_rate}"
    )
  schedule = optim.cosine_warm_restarts(
    learning_rate, steps_per_cycle, period_factor, min_learning_rate
  )
  validate.require_int("seed", seed, where, low=0, high=train.MAX_SEED)
  validate.require_non_negative("init_scale", init_scale, where)
  pure = problem_lib.pure(problem)
  train.check_arguments(
    problem.num_train,
    int(lengths.sum()),
    batch_size,
    steps_per_cycle,
    sampling,
    None,
    l2_penalty,
    None,
    pure.metric_names,
  )
  seed = int(seed)  # nnx.Rngs takes a Python int, not np.int64
  params, model_state = train.starting_point(pure, seed, init_scale, params, model_state)
  snapshot_fn = make_snapshot_fn(
    problem,
    optimizer(schedule),
    lengths=lengths,
    batch_size=batch_size,
    sampling=sampling,
    l2_penalty=l2_penalty,
  )
  data = problem_lib.as_data(problem)
  state, snapshots, metrics = jax.jit(snapshot_fn)(params, model_state, data, jax.random.key(seed))
  members = [jax.tree.map(lambda leaf, i=i: leaf[i], snapshots) for i in range(cycles)]
  history = {k: np.asarray(v) for k, v in metrics.items()} | {"step": np.cumsum(lengths)}
  return SnapshotRun(members=members, history=history, opt_state=state.opt_state)
