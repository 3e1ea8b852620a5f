"""One pure training loop: `jit` + `lax.scan` over steps, held-out evaluation, early stopping.

It trains any `problem.Problem` (the user's module, loss, data and metrics). The loop records,
every `eval_every` steps (and at step 0 and at the last step), `problem.metric_names()`:

- `train_loss`: the problem's loss on the whole training set in training mode (BatchNorm batch
  statistics, dropout on), i.e. exactly the objective whose minibatch estimates the optimizer
  descends (the surrogate of §8.1.2);
- `grad_norm`: ‖∇θ train_loss‖₂, the full-batch gradient norm of Fig. 8.1 (§8.2.1);
- `train_<m>` for each of the problem's metrics, and with held-out data `test_loss` and
  `test_<m>`, in inference mode (BatchNorm running averages, no dropout).

With `l2_penalty=α > 0` the objective is the L2-regularized loss of §7.1.1 (eq. 7.1),
J̃(θ) = J(θ) + (α/2) θᵀθ, over every parameter (biases included, unlike eq. 7.1: for multinomial
logistic regression the softmax does not change when a constant is added to every class's bias, so
a penalty on the weights alone leaves a flat direction, while the full penalty makes J̃ strictly
convex, with one minimizer). The optimizers descend J̃ and `train_loss` is J̃; `test_loss` and the
metrics are the loss and metrics alone.

Early stopping (§7.8 of the book, used in §8.1.2) keeps the parameters of the evaluation with the
best value of one reported metric (`early_stopping="test_error"`): its lowest, or its highest for
a metric the problem names in `Problem.higher_is_better` (an accuracy); with `patience=p` the
parameters are frozen after p evaluations without an improvement (the loop keeps its static
length, so it stays one compiled program).

Optimizers that need the loss (Newton, line searches) get it as Optax's extra arguments
`value`, `grad` and `value_fn` (the minibatch loss as a function of the parameters), through
`optax.with_extra_args_support`, so plain and extra-args transformations run in the same loop.

`make_train_loop` exposes the loop's pieces for sweeps (`jaxopt_study.sweep`), which `vmap` it over
members and run it in segments: a member may use a traced batch size b ≤ the static `batch_size`
(`masked_batch_indices`: the first b indices of a max-size draw are exactly that member's own
minibatch, the rest get loss weight 0), and with `freeze_nonfinite=True` a member whose loss or
parameters become non-finite is frozen at its last finite point and flagged.
"""

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import models, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.hessian import tracking
from jaxopt_study.optim import preconditioners
from jaxopt_study.results import first_names

METRICS = ("train_loss", "grad_norm", "train_error", "test_loss", "test_error")  # built-in
SAMPLINGS = ("epoch", "replacement")
# the losses whose value at step 0 is checked (`warn_of_initial_loss`), by their name in words
INITIAL_LOSSES = {"train_loss": "training", "test_loss": "held-out"}
MINIBATCH_LOG = ("loss", "grad_norm")  # `make_train_loop(..., log_steps=n)`, per step
MAX_SEED = validate.MAX_SEED  # jax.random.key keeps 32 bits of a seed


class TrainState(NamedTuple):
  """The carry of the training scan.

  `best_value` is the best value so far of the early-stopping metric (its lowest, or highest for
  one of `Problem.higher_is_better`; at `best_step`, with `best_params`). `diverged` is set, and
  `diverged_at_step` holds t (−1 before), when the loop freezes a run
  (`make_train_loop(..., freeze_nonfinite=True)`) whose minibatch loss at θ_t or whose update
  θ_{t+1} is non-finite: it keeps θ_t, the last finite parameters (their loss may have
  overflowed). `curvature` holds the curvature monitor's warm starts (None without one);
  `minibatches` the per-step log of `make_train_loop(..., log_steps=n)` (None without one).
  """

  params: optax.Params
  model_state: Any
  opt_state: optax.OptState
  step: jax.Array
  best_params: optax.Params
  best_value: jax.Array
  best_step: jax.Array
  evals_since_best: jax.Array
  stopped: jax.Array
  diverged: jax.Array
  diverged_at_step: jax.Array
  curvature: tracking.MonitorState | None = None
  minibatches: dict[str, jax.Array] | None = None


class TrainResult(NamedTuple):
  """What a training run returns.

  Attributes:
    params: parameters after the last step (frozen at the stopping point under early stopping),
      an `nnx.State` of the module's `nnx.Param`s (`problem.Pure.module` rebuilds the module).
    model_state: non-parameter model state (BatchNorm statistics, RNG state) at the end.
    opt_state: the optimizer state at the end.
    history: metric name -> array over evaluations, plus `step`, the step of each evaluation.
    best_params: parameters at the evaluation with the best early-stopping metric (its lowest,
      or highest for one of `Problem.higher_is_better`; without early stopping: the last
      evaluation's).
    best_step: the step of that evaluation.
    minibatches: with `train(..., log_minibatches=True)`, the minibatch of every step t = 0, ...,
      steps − 1: `step`, `loss` (its loss at θ_t, the one the step descended) and `grad_norm`
      (‖∇ of that loss‖, the quantity of Fig. 8.1); empty otherwise.
  """

  params: optax.Params
  model_state: Any
  opt_state: optax.OptState
  history: dict[str, np.ndarray]
  best_params: optax.Params
  best_step: int
  minibatches: dict[str, np.ndarray] = {}


class TrainLoop(NamedTuple):
  """The training loop in pieces, for callers that `vmap` it or run it in segments.

  Attributes:
    init: `(params, model_state) -> TrainState` at step 0.
    update: `(state, batch, weights) -> state` after one optimizer step on the minibatch `batch`
      (a tuple of arrays), its loss weighted by `weights` (None: the plain mean).
    step: `(state, data, key, member_batch_size) -> state`: draws the step's minibatch, updates.
    evaluate: `(params, model_state, data) -> metrics`, `metric_names` on the full data.
    record: `(state, metrics) -> state` after an evaluation (best parameters, early stopping).
    monitor: `(state, data) -> (state, curvature metrics)`, the curvature monitor
      (`hessian.tracking.measure`) at the state's parameters; None without one.
    run: `(state, data, key, member_batch_size, block_lengths, measure) -> (state, history)`: for
      each entry n of `block_lengths` (int32, any length), n steps then one evaluation, and the
      curvature monitor where the bool `measure` (same length; None: nowhere) is true, NaN
      elsewhere; `history[name]` has one entry per block.
    metric_names: the names `run` records: `evaluate`'s, then the monitor's.

  `data` is a `problem.Data` (or a `data.Dataset`). `member_batch_size` is None for minibatches
  of the static `batch_size`, or a traced int32 b ∈ [1, batch_size]: the step then draws
  `masked_batch_indices` and weights the loss by the mask.
  """

  init: Callable[[optax.Params, Any], TrainState]
  update: Callable[[TrainState, tuple, jax.Array | None], TrainState]
  step: Callable[[TrainState, Any, jax.Array, jax.Array | None], TrainState]
  evaluate: Callable[[optax.Params, Any, Any], dict[str, jax.Array]]
  record: Callable[[TrainState, dict[str, jax.Array]], TrainState]
  monitor: Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]] | None
  run: Callable[
    [TrainState, Any, jax.Array, jax.Array | None, jax.Array, jax.Array | None],
    tuple[TrainState, dict[str, jax.Array]],
  ]
  metric_names: tuple[str, ...]


def eval_steps(steps: int, eval_every: int) -> np.ndarray:
  """The steps at which `train` evaluates: 0, e, 2e, ..., and `steps` itself."""
  points = list(range(0, steps + 1, eval_every))
  if points[-1] != steps:
    points.append(steps)
  return np.asarray(points)


def curvature_schedule(steps: int, eval_every: int, curvature_every: int | None) -> np.ndarray:
  """Which of `eval_steps(steps, eval_every)` the curvature monitor measures: step 0, every
  multiple of `curvature_every` and the last step (none when `curvature_every` is None)."""
  points = eval_steps(steps, eval_every)
  if curvature_every is None:
    return np.zeros(points.shape, bool)
  return (points % curvature_every == 0) | (points == steps)


def check_curvature(
  curvature_every: int | None,
  curvature: tracking.CurvatureOptions | None,
  eval_every: int,
  num_train: int,
  where: str,
) -> None:
  """Refuses a curvature monitor that cannot run, naming the argument (before compiling)."""
  if curvature_every is None:
    if curvature is not None:
      raise ValueError(f"{where}: curvature= needs curvature_every=<steps between measurements>")
    return
  validate.require_positive_int("curvature_every", curvature_every, where)
  if curvature_every % eval_every:
    raise ValueError(
      f"{where}: curvature_every={curvature_every} must be a multiple of eval_every="
      f"{eval_every} (the monitor measures at evaluations)"
    )
  if curvature is None:
    return
  if not isinstance(curvature, tracking.CurvatureOptions):
    raise TypeError(
      f"{where}: curvature={curvature!r} must be a hessian.CurvatureOptions(lanczos_steps=..., "
      "probes=..., examples=..., preconditioner=...)"
    )
  validate.require_positive_int("curvature.lanczos_steps", curvature.lanczos_steps, where)
  validate.require_positive_int("curvature.probes", curvature.probes, where)
  validate.require_int("curvature.seed", curvature.seed, where, low=0)
  if curvature.tolerance is not None:
    validate.require_unit_interval(
      "curvature.tolerance", curvature.tolerance, where, include_zero=False
    )
  if curvature.examples is not None:
    validate.require_int("curvature.examples", curvature.examples, where, low=1, high=num_train)
  if curvature.preconditioner is not None and not callable(curvature.preconditioner):
    raise TypeError(
      f"{where}: curvature.preconditioner={curvature.preconditioner!r} must be a function "
      "opt_state -> P, e.g. optim.adam_preconditioner()"
    )
  factories = {id(f): name for name, f in preconditioners.PRECONDITIONERS.items()}
  if id(curvature.preconditioner) in factories:
    name = factories[id(curvature.preconditioner)]
    raise TypeError(
      f"{where}: curvature.preconditioner=optim.{name}_preconditioner is the factory of the "
      f"function opt_state -> P: call it, optim.{name}_preconditioner() (with the optimizer's "
      "δ and β's)"
    )


def check_arguments(
  num_train: int,
  steps: int,
  batch_size: int,
  eval_every: int,
  sampling: str,
  patience: int | None,
  l2_penalty: float = 0.0,
  early_stopping: str | None = None,
  metric_names: tuple[str, ...] = METRICS,
) -> None:
  """Raises ValueError, naming the argument, for a training setup that cannot run."""
  validate.require_positive_int("steps", steps, "train")
  validate.require_int("batch_size", batch_size, "train", low=1, high=num_train)
  validate.require_positive_int("eval_every", eval_every, "train")
  validate.require_choice("sampling", sampling, "train", SAMPLINGS)
  if patience is not None:
    validate.require_positive_int("patience", patience, "train")
  check_early_stopping(early_stopping, patience, metric_names, "train")
  check_l2_penalty(l2_penalty, "train")


def check_early_stopping(
  early_stopping: str | None, patience: int | None, metric_names: tuple[str, ...], where: str
) -> None:
  """Refuses an early-stopping metric that is not reported, or patience without a metric."""
  if early_stopping is not None and early_stopping not in metric_names:
    raise ValueError(
      f"{where}: early_stopping={early_stopping!r} is not a reported metric; the problem "
      f"reports {', '.join(metric_names)}"
    )
  if patience is not None and early_stopping is None:
    raise ValueError(
      f"{where}: patience={patience} needs early_stopping=<metric>, e.g. early_stopping="
      f"{next((m for m in metric_names if m.startswith('test_')), 'train_loss')!r}"
    )


def check_l2_penalty(l2_penalty: float, where: str) -> None:
  """Raises ValueError unless the L2 penalty α is a finite real number ≥ 0."""
  validate.require_non_negative("l2_penalty", l2_penalty, where)


def masked_batch_indices(
  key: jax.Array,
  step: jax.Array,
  num_examples: int,
  batch_size: jax.Array,
  max_batch_size: int,
  sampling: str = "epoch",
) -> tuple[jax.Array, jax.Array]:
  """A max-size minibatch whose first b indices are `data.batch_indices(key, step, n, b)`.

  Every member of a sweep group draws `max_batch_size` indices under one compiled program; its
  own b = `batch_size` (traced) come first and the mask gives the rest weight 0, so its loss is
  exactly the mean over its own minibatch (Algorithm 8.1) and it sees the same examples, in the
  same order, as when it is trained alone.

  * ``"epoch"``: the permutation of the epoch step // (n // b) sliced at (step mod (n // b)) · b,
    as `data.batch_indices` does; the permutation is padded so the slice never runs off its end
    (a clamped `dynamic_slice` would shift it), the padding pointing at example 0.
  * ``"replacement"``: ``randint(fold_in(key, step), (max_batch_size,))``, whose first b draws are
    those of shape (b,) because JAX's threefry is partitionable (each entry's bits depend on its
    index only, `jax_threefry_partitionable`, the default since JAX 0.5).

  Returns:
    int32 indices (max_batch_size,) and float32 weights (max_batch_size,), 1 on the first b.
  """
  step = jnp.asarray(step, jnp.int32)
  batch_size = jnp.asarray(batch_size, jnp.int32)
  if sampling == "epoch":
    epoch, position = jnp.divmod(step, num_examples // batch_size)
    order = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
    return epoch_slice(order, position, batch_size, max_batch_size)
  indices = data_lib.batch_indices(key, step, num_examples, max_batch_size, sampling)
  return indices, batch_mask(batch_size, max_batch_size)


def epoch_slice(
  order: jax.Array, position: jax.Array, batch_size: jax.Array, max_batch_size: int
) -> tuple[jax.Array, jax.Array]:
  """The `position`-th slice of b = `batch_size` indices of an epoch's `order`, max-size, masked.

  `order` is padded (pointing at example 0) so that the slice never runs off its end, where a
  clamped `dynamic_slice` would shift it.
  """
  padded = jnp.concatenate([order, jnp.zeros([max_batch_size], order.dtype)])
  indices = jax.lax.dynamic_slice_in_dim(padded, position * batch_size, max_batch_size)
  return indices.astype(jnp.int32), batch_mask(batch_size, max_batch_size)


def batch_mask(batch_size: jax.Array, max_batch_size: int) -> jax.Array:
  """Loss weights (max_batch_size,) float32: 1 on the first `batch_size` examples, 0 after."""
  return (jnp.arange(max_batch_size) < batch_size).astype(jnp.float32)


def make_train_loop(
  problem: Any,
  optimizer: optax.GradientTransformation,
  *,
  batch_size: int,
  loss: str | None = None,
  sampling: str = "epoch",
  patience: int | None = None,
  early_stopping: str | None = None,
  freeze_nonfinite: bool = False,
  l2_penalty: float = 0.0,
  curvature: tracking.CurvatureOptions | None = None,
  log_steps: int | None = None,
) -> TrainLoop:
  """The pure pieces of the training loop (see `TrainLoop`); `make_train_fn` assembles them.

  Args:
    problem: a `problem.Problem` (or its `problem.Pure` form), or a `models.FunctionalModel`
      trained on the `losses.LOSSES` entry `loss` (default "cross_entropy").
    optimizer: any Optax transformation, plain or with extra args.
    batch_size: the static minibatch size (the largest of a sweep group).
    loss: for a `FunctionalModel` only: a name in `losses.LOSSES`.
    sampling: "epoch" or "replacement" (`data.batch_indices`).
    patience: early-stopping patience in evaluations (None: never stop).
    early_stopping: the reported metric whose best value (lowest, or highest for one of
      `Problem.higher_is_better`) selects `best_params` (None: the last evaluation). A
      `FunctionalModel` defaults to "test_error" (cross-entropy) or "test_loss".
    freeze_nonfinite: freeze a run whose minibatch loss, parameters or model state become
      non-finite at its last finite state, and flag it (`TrainState.diverged`).
    l2_penalty: α ≥ 0, the L2 penalty (α/2) θᵀθ added to the loss (§7.1.1; 0: none).
    curvature: the curvature monitor's options (`hessian.CurvatureOptions`), measured on the
      training objective (the loss in training mode, with the L2 penalty) at the model state of
      the moment; None: no monitor. `run` measures where its `measure` flags say.
    log_steps: n: log the loss and gradient norm of each step's minibatch at steps 0, ..., n − 1
      in `TrainState.minibatches` (NaN where a step was frozen); None: no log.
  """
  check_l2_penalty(l2_penalty, "make_train_loop")
  if loss is not None and not isinstance(problem, models.FunctionalModel):
    raise ValueError(
      "make_train_loop: loss= names the loss of a FunctionalModel; a Problem carries its own loss"
    )
  pure = problem_lib.as_pure(problem, loss)
  if early_stopping is None and isinstance(pure, problem_lib.FunctionalPure):
    early_stopping = "test_error" if pure.classification else "test_loss"
  check_early_stopping(early_stopping, patience, pure.metric_names, "make_train_loop")
  # the loop keeps the lowest of sign · metric: the metric's highest where it is maximized
  sign = -1.0 if early_stopping in pure.maximized_metrics else 1.0
  tx = optax.with_extra_args_support(optimizer)

  def objective(params, model_state, batch, weights=None):
    value, new_model_state = pure.loss(params, model_state, batch, weights)
    if l2_penalty:  # static: an unregularized loop has no penalty term in its program
      value = value + 0.5 * l2_penalty * optax.tree.norm(params, squared=True)
    return value, new_model_state

  def evaluate(params, model_state, data):
    data = problem_lib.as_data(data)
    (train_loss, _), grads = jax.value_and_grad(objective, has_aux=True)(
      params, model_state, data.train
    )
    metrics = {"train_loss": train_loss, "grad_norm": optax.tree.norm(grads)}
    on_train = pure.metrics(params, model_state, data.train)
    metrics |= {f"train_{k}": v for k, v in on_train.items() if k != "loss"}
    if data.heldout is not None:
      metrics |= {
        f"test_{k}": v for k, v in pure.metrics(params, model_state, data.heldout).items()
      }
    return {k: metrics[k] for k in pure.metric_names}

  def record(state: TrainState, metrics: dict) -> TrainState:
    if early_stopping is None:
      value = jnp.zeros([], state.best_value.dtype)
      improved = ~state.stopped
    else:
      value = metrics[early_stopping]
      improved = jnp.logical_and(sign * value < sign * state.best_value, ~state.stopped)
    since = jnp.where(improved, 0, state.evals_since_best + 1)
    stopped = state.stopped
    if patience is not None:
      stopped = jnp.logical_or(stopped, since >= patience)
    return state._replace(
      best_params=_select(improved, state.params, state.best_params),
      best_value=jnp.where(improved, value, state.best_value),
      best_step=jnp.where(improved, state.step, state.best_step),
      evals_since_best=since,
      stopped=stopped,
    )

  def monitor(state: TrainState, data) -> tuple[TrainState, dict[str, jax.Array]]:
    train_data = problem_lib.as_data(data).train
    if curvature.examples is not None:
      train_data = tuple(a[: curvature.examples] for a in train_data)
    metrics, monitor_state = tracking.measure(
      lambda p: objective(p, state.model_state, train_data)[0],
      state.params,
      state.curvature,
      curvature,
      step=state.step,
      opt_state=state.opt_state,
    )
    return state._replace(curvature=monitor_state), metrics

  def skip_monitor(state: TrainState, data) -> tuple[TrainState, dict[str, jax.Array]]:
    del data
    return state, tracking.not_measured(state.params, curvature)

  def init(params, model_state) -> TrainState:
    return TrainState(
      params=params,
      model_state=model_state,
      opt_state=tx.init(params),
      step=jnp.zeros([], jnp.int32),
      best_params=params,
      best_value=jnp.asarray(sign * jnp.inf, jnp.result_type(float)),
      best_step=jnp.zeros([], jnp.int32),
      evals_since_best=jnp.zeros([], jnp.int32),
      stopped=jnp.zeros([], bool),
      diverged=jnp.zeros([], bool),
      diverged_at_step=jnp.full([], -1, jnp.int32),
      curvature=None if curvature is None else tracking.init(params, curvature),
      minibatches=None
      if log_steps is None
      else {name: jnp.full([log_steps], jnp.nan) for name in MINIBATCH_LOG},
    )

  def update(state: TrainState, batch, weights) -> TrainState:
    (value, new_model_state), grads = jax.value_and_grad(objective, has_aux=True)(
      state.params, state.model_state, batch, weights
    )
    updates, new_opt_state = tx.update(
      grads,
      state.opt_state,
      state.params,
      value=value,
      grad=grads,
      value_fn=lambda p: objective(p, state.model_state, batch, weights)[0],
    )
    new_opt_state = keep_dtypes(new_opt_state, state.opt_state)
    new_params = optax.apply_updates(state.params, updates)
    frozen = state.stopped  # early stopping: keep the stopped point, the scan length is static
    diverged, diverged_at_step = state.diverged, state.diverged_at_step
    if freeze_nonfinite:
      # A non-finite loss, parameter or statistic is frozen out before it is stored: the member
      # keeps its last finite state, and the other members of a vmapped sweep never see it.
      failed = ~_all_finite((value, new_params, new_model_state)) & ~frozen & ~diverged
      diverged_at_step = jnp.where(failed, state.step, diverged_at_step)
      diverged = diverged | failed
      frozen = frozen | diverged
    minibatches = state.minibatches
    if log_steps is not None:
      logged = {"loss": value, "grad_norm": optax.tree.norm(grads)}
      minibatches = {
        k: v.at[state.step].set(jnp.where(frozen, jnp.nan, logged[k]), mode="drop")
        for k, v in minibatches.items()
      }
    return state._replace(
      params=_select(frozen, state.params, new_params),
      model_state=_select(frozen, state.model_state, new_model_state),
      opt_state=_select(frozen, state.opt_state, new_opt_state),
      step=state.step + 1,
      diverged=diverged,
      diverged_at_step=diverged_at_step,
      minibatches=minibatches,
    )

  def step(state: TrainState, data, key, member_batch_size) -> TrainState:
    train_data = problem_lib.as_data(data).train
    num_train = train_data[0].shape[0]
    if member_batch_size is None:
      weights = None
      idx = data_lib.batch_indices(key, state.step, num_train, batch_size, sampling)
    else:
      idx, weights = masked_batch_indices(
        key, state.step, num_train, member_batch_size, batch_size, sampling
      )
    return update(state, tuple(a[idx] for a in train_data), weights)

  def run(state: TrainState, data, key, member_batch_size, block_lengths, measure=None):
    def one_step(_, state: TrainState) -> TrainState:
      return step(state, data, key, member_batch_size)

    def block(state: TrainState, schedule):
      # One evaluation after `num_steps` steps (0 for the first block): the step and the
      # evaluation appear once each in the program, which keeps compilation short.
      num_steps, measured = schedule
      state = jax.lax.fori_loop(0, num_steps, one_step, state)
      metrics = evaluate(state.params, state.model_state, data)
      state = record(state, metrics)
      if curvature is not None:  # an unbatched flag: a real branch, also under a sweep's vmap
        state, more = jax.lax.cond(measured, monitor, skip_monitor, state, data)
        metrics = metrics | more
      return state, metrics

    lengths = jnp.asarray(block_lengths, jnp.int32)
    flags = jnp.zeros(lengths.shape, bool) if measure is None else jnp.asarray(measure, bool)
    return jax.lax.scan(block, state, (lengths, flags))

  curvature_names = () if curvature is None else curvature.metric_names()
  return TrainLoop(
    init=init,
    update=update,
    step=step,
    evaluate=evaluate,
    record=record,
    monitor=None if curvature is None else monitor,
    run=run,
    metric_names=pure.metric_names + curvature_names,
  )


def make_train_fn(
  problem: Any,
  optimizer: optax.GradientTransformation,
  *,
  steps: int,
  batch_size: int,
  eval_every: int,
  curvature_every: int | None = None,
  log_minibatches: bool = False,
  **options: Any,
) -> Callable[[optax.Params, Any, Any, jax.Array], tuple[TrainState, dict]]:
  """Builds the pure function `(params, model_state, data, key) -> (final TrainState, history)`.

  It is what `train` jits; it is exposed so that a sweep can `vmap` it over members. `options`
  are `make_train_loop`'s (loss, sampling, patience, early_stopping, l2_penalty, curvature);
  with `curvature_every` the monitor measures at `curvature_schedule`'s steps (default options
  when `curvature` is not given); `log_minibatches` logs every step's minibatch loss and
  gradient norm (`TrainState.minibatches`).
  """
  if curvature_every is not None and options.get("curvature") is None:
    options["curvature"] = tracking.CurvatureOptions()
  if log_minibatches:
    options["log_steps"] = steps
  loop = make_train_loop(problem, optimizer, batch_size=batch_size, **options)
  steps_per_block = np.diff(eval_steps(steps, eval_every), prepend=0)
  measure = curvature_schedule(steps, eval_every, curvature_every)

  def train_fn(params, model_state, data, key):
    return loop.run(loop.init(params, model_state), data, key, None, steps_per_block, measure)

  return train_fn


def starting_point(
  pure: problem_lib.Pure, seed: int, init_scale: float, params: Any, model_state: Any
) -> tuple[Any, Any]:
  """The arrays a run starts from: `params` and `model_state` where given, else the seed's
  initialization (`init_scale` applied to freshly drawn parameters only).

  Raises:
    ValueError: `params` or `model_state` is not shaped as the model's (naming the first array
      that differs), before anything compiles.
  """
  for name, given, expected in (
    ("params", params, pure.params_shape),
    ("model_state", model_state, pure.model_state_shape),
  ):
    if given is not None:
      _require_like(name, given, expected)
  if params is None:
    params, initial_state = pure.initial(seed, init_scale)
    return params, initial_state if model_state is None else model_state
  return params, pure.initial(seed)[1] if model_state is None else model_state


def _require_like(name: str, given: Any, expected: Any) -> None:
  """Refuses arrays `given` unless they are, in flattening order, as many as `expected`'s and of
  their shapes (the container may differ, an `nnx.State` or its pure dict; so may dtypes)."""
  found = jax.tree.leaves(given)
  wanted = jax.tree_util.tree_flatten_with_path(expected)[0]
  paths = [f"{name}{jax.tree_util.keystr(path)}" for path, _ in wanted]
  if len(found) != len(wanted):
    raise ValueError(
      f"train: {name}= has {len(found)} arrays where the model has {len(wanted)} "
      f"({', '.join(paths[:4])}{', ...' if len(paths) > 4 else ''}): pass the model's own "
      f"{name} (nnx.split(module, nnx.Param, ...)), or a result's"
    )
  for leaf, path, (_, like) in zip(found, paths, wanted, strict=True):
    if jnp.shape(leaf) != like.shape:
      raise ValueError(
        f"train: {name}= holds an array of shape {jnp.shape(leaf)} where the model's {path} "
        f"has shape {like.shape}"
      )


def train(
  problem: problem_lib.Problem,
  optimizer: optax.GradientTransformation,
  *,
  steps: int,
  batch_size: int,
  eval_every: int | None = None,
  sampling: str = "epoch",
  patience: int | None = None,
  early_stopping: str | None = None,
  seed: int = 0,
  init_scale: float = 1.0,
  l2_penalty: float = 0.0,
  params: optax.Params | None = None,
  model_state: Any = None,
  curvature_every: int | None = None,
  curvature: tracking.CurvatureOptions | None = None,
  log_minibatches: bool = False,
) -> TrainResult:
  """Trains `problem`'s model with `optimizer` for `steps` minibatch steps, as one compiled scan.

  Example::

      problem = Problem(model=lambda rngs: MyNet(rngs=rngs), loss=my_loss,
                        train_data=(x, y), heldout_data=(x_test, y_test))
      result = train.train(problem, optim.adam(1e-3), steps=500, batch_size=64, eval_every=50)
      result.history["test_loss"]

  Args:
    problem: a `problem.Problem`.
    optimizer: any Optax transformation, plain or with extra args.
    steps: number of optimizer steps.
    batch_size: examples per minibatch.
    eval_every: evaluate every this many steps (default: 50 evaluations over the run).
    sampling: "epoch" (shuffle once per epoch) or "replacement" (§8.1.3).
    patience: stop after this many evaluations without a better `early_stopping` metric.
    early_stopping: a reported metric (e.g. "test_error") whose best value picks `best_params`:
      its lowest, or its highest for one of `Problem.higher_is_better`; None: the last
      evaluation.
    seed: seeds the parameters (`model(nnx.Rngs(seed))`) and the minibatch order.
    init_scale: factor on the initial parameters, by the problem's `init` rule (§8.4).
    l2_penalty: α ≥ 0: train on the loss + (α/2) θᵀθ (§7.1.1); `train_loss` includes it.
    params, model_state: start from these arrays instead of the seed's initialization (e.g. a
      pretrained model: `nnx.split(module, nnx.Param, ...)`).
    curvature_every: measure the curvature of the training objective inside the compiled loop
      (`hessian.tracking`: `lambda_max`, `hessian_trace`, `g_hess_g`, `g_dot_g`, and
      `preconditioned_lambda_max` with a preconditioner) at step 0, every this many steps (a
      multiple of `eval_every`) and at the last step; NaN in the history's other rows. The
      monitor does not change the training trajectory. None: no monitor.
    curvature: the monitor's options (`hessian.CurvatureOptions`: Lanczos steps, probes, a fixed
      subset of the training set, the optimizer's preconditioner); default options if None.
    log_minibatches: keep the loss and gradient norm of every step's minibatch
      (`TrainResult.minibatches`; Fig. 8.1 plots these gradient norms, not the full-batch one).

  Returns:
    A `TrainResult`; `history[name]` is indexed like `history["step"]`. The loop holds, measures
    and returns the params the optimizer updates: under `optim.nesterov` (as under Optax's
    Nesterov) those are the look-ahead point θ̃ = θ + αv where Alg. 8.3 takes its gradient, not
    the book's θ (`optim.nesterov_params(result.params, result.opt_state, α)` gives θ).
  """
  if not isinstance(problem, problem_lib.Problem):
    raise TypeError(
      f"train: expected a Problem, got {type(problem).__name__}: wrap the model, loss and data "
      "in jaxopt_study.Problem(model=..., loss=..., train_data=...)"
    )
  validate.require_transformation("optimizer", optimizer, "train")
  validate.require_non_negative("init_scale", init_scale, "train")
  validate.require_int("seed", seed, "train", low=0, high=MAX_SEED)
  seed = int(seed)  # nnx.Rngs takes a Python int, not np.int64
  pure = problem_lib.pure(problem)
  if params is None:  # a given starting point is not scaled
    problem_lib.check_init_scale(problem, [init_scale], "train")
  # 50 evaluations, at the monitor's steps too (a NumPy integer is an integer: np.int64 steps)
  if eval_every is None and validate.is_integer(steps):
    eval_every = max(1, int(steps) // 50)
    if validate.is_integer(curvature_every) and curvature_every > 0:
      eval_every = math.gcd(eval_every, int(curvature_every))
  check_arguments(
    problem.num_train,
    steps,
    batch_size,
    eval_every,
    sampling,
    patience,
    l2_penalty,
    early_stopping,
    pure.metric_names,
  )
  check_curvature(curvature_every, curvature, eval_every, problem.num_train, "train")
  params, model_state = starting_point(pure, seed, init_scale, params, model_state)
  train_fn = make_train_fn(
    problem,
    optimizer,
    steps=steps,
    batch_size=batch_size,
    eval_every=eval_every,
    sampling=sampling,
    patience=patience,
    early_stopping=early_stopping,
    l2_penalty=l2_penalty,
    curvature_every=curvature_every,
    curvature=curvature,
    log_minibatches=bool(log_minibatches),
  )
  data = problem_lib.as_data(problem)
  state, history = jax.jit(train_fn)(params, model_state, data, jax.random.key(seed))
  history = {k: np.asarray(v) for k, v in history.items()}
  history["step"] = eval_steps(steps, eval_every)
  warn_of_initial_loss(
    {k: {"the run": history[k][0]} for k in INITIAL_LOSSES if k in history}, stacklevel=3
  )
  minibatches = {}
  if state.minibatches is not None:
    minibatches = {"step": np.arange(steps)} | {
      k: np.asarray(v) for k, v in state.minibatches.items()
    }
  return TrainResult(
    params=state.params,
    model_state=state.model_state,
    opt_state=state.opt_state,
    history=history,
    best_params=state.best_params,
    best_step=int(state.best_step),
    minibatches=minibatches,
  )


def warn_of_initial_loss(losses: dict[str, dict[str, float]], stacklevel: int) -> None:
  """Warns where the training or held-out loss at step 0, at the initial parameters before any
  update, is not finite (`losses`: "train_loss" or "test_loss" -> a run's name -> that loss): no
  step diverged; the data, the loss or the initial scale is at fault (a class id outside the
  model's classes reads as NaN, a log of 0)."""
  for metric, values in losses.items():
    if bad := [name for name, value in values.items() if not np.isfinite(value)]:
      warnings.warn(
        f"the {INITIAL_LOSSES[metric]} loss at step 0, before any update, is not finite for "
        f"{first_names(bad)}: check the data and the loss (a label outside the model's classes, "
        "a log of 0, a NaN input) or the initial scale; this is not a divergence of training",
        stacklevel=stacklevel,
      )


def keep_dtypes(new_state: Any, state: Any) -> Any:
  """`new_state` in the dtypes of `state`, leaf by leaf. A float32 hyperparameter (injected by
  `optax.inject_hyperparams`, or a sweep's) times a bfloat16 moment makes a float32 moment, and
  a loop's carry must keep its types: the state stays in the precision its `init` chose, as it
  does with the Python-number hyperparameters of a run without injection."""
  return jax.tree.map(
    lambda new, old: new if new.dtype == old.dtype else new.astype(old.dtype), new_state, state
  )


def _select(pred: jax.Array, on_true, on_false):
  """`where(pred, a, b)` leaf by leaf over two pytrees of the same structure."""
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _all_finite(tree) -> jax.Array:
  """Whether every floating-point leaf of `tree` is finite (a scalar bool)."""
  leaves = [
    jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.ones([], bool)


class Descent(NamedTuple):
  """What `descend` returns: the final parameters and optimizer state, and `record`'s values at
  steps `eval_steps(steps, every)` stacked along a leading axis."""

  params: Any
  opt_state: Any
  records: Any


def descend(
  loss_fn: Callable[[Any], jax.Array],
  params: Any,
  optimizer: optax.GradientTransformation,
  *,
  steps: int,
  every: int = 1,
  record: Callable[[Any, jax.Array], Any] | None = None,
) -> Descent:
  """Full-batch descent on `loss_fn(params) -> scalar`: `steps` updates of `optimizer`, one scan.

  The deterministic counterpart of `train` for a loss that is one function of the parameters (a
  test surface, a toy network on a fixed batch): θ ← θ + update(∇f(θ)), the update getting the
  loss as Optax's extra arguments (`value`, `grad`, `value_fn`) when the optimizer takes them
  (line searches, Newton). `record(params, value)` (default: the value f(θ)) is kept at the
  steps `eval_steps(steps, every)`: 0, every, 2·every, ..., and `steps`. Pure, so it can be
  jitted and vmapped over starting points or hyperparameters.
  """
  validate.require_positive_int("steps", steps, "descend")
  validate.require_positive_int("every", every, "descend")
  record = record or (lambda _, value: value)
  takes_extra = isinstance(optimizer, optax.GradientTransformationExtraArgs)
  value_and_grad = jax.value_and_grad(loss_fn)

  def one_step(_, carry):
    params, opt_state = carry
    value, grad = value_and_grad(params)
    extra = {"value": value, "grad": grad, "value_fn": loss_fn} if takes_extra else {}
    updates, new_opt_state = optimizer.update(grad, opt_state, params, **extra)
    return optax.apply_updates(params, updates), keep_dtypes(new_opt_state, opt_state)

  def block(carry, length):
    carry = jax.lax.fori_loop(0, length, one_step, carry)
    return carry, record(carry[0], loss_fn(carry[0]))

  lengths = np.diff(eval_steps(steps, every))
  start = (params, optimizer.init(params))
  (params, opt_state), records = jax.lax.scan(block, start, jnp.asarray(lengths))
  first = record(start[0], loss_fn(start[0]))
  records = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, records)
  return Descent(params, opt_state, records)
