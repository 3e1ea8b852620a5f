"""One pure training loop: `jit` + `lax.scan` over steps, held-out evaluation, early stopping.

The loop records, every `eval_every` steps (and at step 0 and at the last step):

- `train_loss`: the surrogate loss (NLL for classification, §8.1.2) on the whole training set, in
  training mode, i.e. exactly the objective whose minibatch estimates the optimizer descends;
- `grad_norm`: ‖∇θ train_loss‖₂, the full-batch gradient norm of Fig. 8.1 (§8.2.1);
- `train_error`, `test_loss`, `test_error`: in inference mode (BatchNorm running averages); the
  error is the 0-1 loss for classification and the loss itself for regression.

With `l2_penalty=α > 0` the objective is the L2-regularized loss of §7.1.1 (eq. 7.1),
J̃(θ) = J(θ) + (α/2) θᵀθ, over every parameter (biases included, unlike eq. 7.1: for multinomial
logistic regression the softmax does not change when a constant is added to every class's bias, so
a penalty on the weights alone leaves a flat direction, while the full penalty makes J̃ strictly
convex, with one minimizer). The optimizers descend J̃ and `train_loss` is J̃; `test_loss` and the
errors are the loss and error alone.

Early stopping (§7.8 of the book, used in §8.1.2) keeps the parameters of the evaluation with the
lowest held-out error; with `patience=p` the parameters are frozen after p evaluations without an
improvement (the loop keeps its static length, so it stays one compiled program).

Optimizers that need the loss (Newton, line searches) get it as Optax's extra arguments
`value`, `grad` and `value_fn` (the minibatch loss as a function of the parameters), through
`optax.with_extra_args_support`, so plain and extra-args transformations run in the same loop.

`make_train_loop` exposes the loop's pieces for sweeps (`jaxopt_study.sweep`), which `vmap` it over
members and run it in segments: a member may use a traced batch size b ≤ the static `batch_size`
(`masked_batch_indices`: the first b indices of a max-size draw are exactly that member's own
minibatch, the rest get loss weight 0), and with `freeze_nonfinite=True` a member whose loss or
parameters become non-finite is frozen at its last finite point and flagged.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import losses
from jaxopt_study.models import FunctionalModel

METRICS = ("train_loss", "grad_norm", "train_error", "test_loss", "test_error")
SAMPLINGS = ("epoch", "replacement")


class TrainState(NamedTuple):
  """The carry of the training scan.

  `diverged` is set, and `diverged_at_step` holds t (−1 before), when the loop freezes a run
  (`make_train_loop(..., freeze_nonfinite=True)`) whose minibatch loss at θ_t or whose update
  θ_{t+1} is non-finite: it keeps θ_t, the last finite parameters (their loss may have overflowed).
  """

  params: optax.Params
  model_state: Any
  opt_state: optax.OptState
  step: jax.Array
  best_params: optax.Params
  best_error: jax.Array
  best_step: jax.Array
  evals_since_best: jax.Array
  stopped: jax.Array
  diverged: jax.Array
  diverged_at_step: jax.Array


class TrainResult(NamedTuple):
  """What a training run returns.

  Attributes:
    params: parameters after the last step (frozen at the stopping point under early stopping).
    model_state: non-parameter model state (BatchNorm statistics) at the end.
    opt_state: the optimizer state at the end.
    history: metric name -> array over evaluations, plus `step`, the step of each evaluation.
    best_params: parameters at the evaluation with the lowest held-out error.
    best_step: the step of that evaluation.
  """

  params: optax.Params
  model_state: Any
  opt_state: optax.OptState
  history: dict[str, np.ndarray]
  best_params: optax.Params
  best_step: int


class TrainLoop(NamedTuple):
  """The training loop in pieces, for callers that `vmap` it or run it in segments.

  Attributes:
    init: `(params, model_state) -> TrainState` at step 0.
    update: `(state, x, y, weights) -> state` after one optimizer step on the minibatch (x, y),
      its loss weighted by `weights` (None: the plain mean).
    step: `(state, data, key, member_batch_size) -> state`: draws the step's minibatch, updates.
    evaluate: `(params, model_state, data) -> metrics`, the `METRICS` on the full data.
    record: `(state, metrics) -> state` after an evaluation (best parameters, early stopping).
    run: `(state, data, key, member_batch_size, block_lengths) -> (state, history)`: for each
      entry n of `block_lengths` (int32, any length), n steps then one evaluation; `history[name]`
      has one entry per block.

  `member_batch_size` is None for minibatches of the static `batch_size`, or a traced int32
  b ∈ [1, batch_size]: the step then draws `masked_batch_indices` and weights the loss by the mask.
  """

  init: Callable[[optax.Params, Any], TrainState]
  update: Callable[[TrainState, jax.Array, jax.Array, jax.Array | None], TrainState]
  step: Callable[[TrainState, data_lib.Dataset, jax.Array, jax.Array | None], TrainState]
  evaluate: Callable[[optax.Params, Any, data_lib.Dataset], dict[str, jax.Array]]
  record: Callable[[TrainState, dict[str, jax.Array]], TrainState]
  run: Callable[
    [TrainState, data_lib.Dataset, jax.Array, jax.Array | None, jax.Array],
    tuple[TrainState, dict[str, jax.Array]],
  ]


def eval_steps(steps: int, eval_every: int) -> np.ndarray:
  """The steps at which `train` evaluates: 0, e, 2e, ..., and `steps` itself."""
  points = list(range(0, steps + 1, eval_every))
  if points[-1] != steps:
    points.append(steps)
  return np.asarray(points)


def check_arguments(
  data: data_lib.Dataset,
  steps: int,
  batch_size: int,
  eval_every: int,
  loss: str,
  sampling: str,
  patience: int | None,
  l2_penalty: float = 0.0,
) -> None:
  """Raises ValueError, naming the argument, for a training setup that cannot run."""
  num_train = data.x_train.shape[0]
  if not isinstance(steps, int) or steps < 1:
    raise ValueError(f"train: steps={steps!r} must be an integer ≥ 1")
  if not isinstance(batch_size, int) or not 1 <= batch_size <= num_train:
    raise ValueError(
      f"train: batch_size={batch_size!r} must be an integer in [1, {num_train}] "
      f"(the number of training examples)"
    )
  if not isinstance(eval_every, int) or eval_every < 1:
    raise ValueError(f"train: eval_every={eval_every!r} must be an integer ≥ 1")
  if loss not in losses.LOSSES:
    raise ValueError(f"train: loss={loss!r} is not one of {sorted(losses.LOSSES)}")
  if sampling not in SAMPLINGS:
    raise ValueError(f"train: sampling={sampling!r} is not one of {list(SAMPLINGS)}")
  if patience is not None and (not isinstance(patience, int) or patience < 1):
    raise ValueError(f"train: patience={patience!r} must be None or an integer ≥ 1")
  check_l2_penalty(l2_penalty, "train")


def check_l2_penalty(l2_penalty: float, where: str) -> None:
  """Raises ValueError unless the L2 penalty α is a finite real number ≥ 0."""
  if (
    not isinstance(l2_penalty, int | float)
    or isinstance(l2_penalty, bool)
    or not np.isfinite(l2_penalty)
    or l2_penalty < 0
  ):
    raise ValueError(f"{where}: l2_penalty={l2_penalty!r} must be a finite number ≥ 0")


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
  model: FunctionalModel,
  optimizer: optax.GradientTransformation,
  *,
  batch_size: int,
  loss: str = "cross_entropy",
  sampling: str = "epoch",
  patience: int | None = None,
  freeze_nonfinite: bool = False,
  l2_penalty: float = 0.0,
) -> TrainLoop:
  """The pure pieces of the training loop (see `TrainLoop`); `make_train_fn` assembles them.

  Args:
    model: a `models.FunctionalModel`.
    optimizer: any Optax transformation, plain or with extra args.
    batch_size: the static minibatch size (the largest of a sweep group).
    loss: a name in `losses.LOSSES`.
    sampling: "epoch" or "replacement" (`data.batch_indices`).
    patience: early-stopping patience in evaluations (None: never stop).
    freeze_nonfinite: freeze a run whose minibatch loss, parameters or model state become
      non-finite at its last finite state, and flag it (`TrainState.diverged`).
    l2_penalty: α ≥ 0, the L2 penalty (α/2) θᵀθ added to the loss (§7.1.1; 0: none).
  """
  check_l2_penalty(l2_penalty, "make_train_loop")
  loss_fn = losses.LOSSES[loss]
  error_fn = losses.zero_one_error if loss == "cross_entropy" else loss_fn
  tx = optax.with_extra_args_support(optimizer)

  def objective(params, model_state, x, y, weights=None):
    outputs, new_model_state = model.apply(params, model_state, x, True)
    value = loss_fn(outputs, y) if weights is None else loss_fn(outputs, y, weights)
    if l2_penalty:  # static: an unregularized loop has no penalty term in its program
      value = value + 0.5 * l2_penalty * optax.tree.norm(params, squared=True)
    return value, new_model_state

  def evaluate(params, model_state, data):
    (train_loss, _), grads = jax.value_and_grad(objective, has_aux=True)(
      params, model_state, data.x_train, data.y_train
    )
    train_out, _ = model.apply(params, model_state, data.x_train, False)
    test_out, _ = model.apply(params, model_state, data.x_test, False)
    return {
      "train_loss": train_loss,
      "grad_norm": optax.tree.norm(grads),
      "train_error": error_fn(train_out, data.y_train),
      "test_loss": loss_fn(test_out, data.y_test),
      "test_error": error_fn(test_out, data.y_test),
    }

  def record(state: TrainState, metrics: dict) -> TrainState:
    improved = jnp.logical_and(metrics["test_error"] < state.best_error, ~state.stopped)
    since = jnp.where(improved, 0, state.evals_since_best + 1)
    stopped = state.stopped
    if patience is not None:
      stopped = jnp.logical_or(stopped, since >= patience)
    return state._replace(
      best_params=_select(improved, state.params, state.best_params),
      best_error=jnp.where(improved, metrics["test_error"], state.best_error),
      best_step=jnp.where(improved, state.step, state.best_step),
      evals_since_best=since,
      stopped=stopped,
    )

  def init(params, model_state) -> TrainState:
    return TrainState(
      params=params,
      model_state=model_state,
      opt_state=tx.init(params),
      step=jnp.zeros([], jnp.int32),
      best_params=params,
      best_error=jnp.asarray(jnp.inf, jnp.result_type(float)),
      best_step=jnp.zeros([], jnp.int32),
      evals_since_best=jnp.zeros([], jnp.int32),
      stopped=jnp.zeros([], bool),
      diverged=jnp.zeros([], bool),
      diverged_at_step=jnp.full([], -1, jnp.int32),
    )

  def update(state: TrainState, x, y, weights) -> TrainState:
    (value, new_model_state), grads = jax.value_and_grad(objective, has_aux=True)(
      state.params, state.model_state, x, y, weights
    )
    updates, new_opt_state = tx.update(
      grads,
      state.opt_state,
      state.params,
      value=value,
      grad=grads,
      value_fn=lambda p: objective(p, state.model_state, x, y, weights)[0],
    )
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
    return state._replace(
      params=_select(frozen, state.params, new_params),
      model_state=_select(frozen, state.model_state, new_model_state),
      opt_state=_select(frozen, state.opt_state, new_opt_state),
      step=state.step + 1,
      diverged=diverged,
      diverged_at_step=diverged_at_step,
    )

  def step(state: TrainState, data, key, member_batch_size) -> TrainState:
    num_train = data.x_train.shape[0]
    if member_batch_size is None:
      weights = None
      idx = data_lib.batch_indices(key, state.step, num_train, batch_size, sampling)
    else:
      idx, weights = masked_batch_indices(
        key, state.step, num_train, member_batch_size, batch_size, sampling
      )
    return update(state, data.x_train[idx], data.y_train[idx], weights)

  def run(state: TrainState, data, key, member_batch_size, block_lengths):
    def one_step(_, state: TrainState) -> TrainState:
      return step(state, data, key, member_batch_size)

    def block(state: TrainState, num_steps: jax.Array):
      # One evaluation after `num_steps` steps (0 for the first block): the step and the
      # evaluation appear once each in the program, which keeps compilation short.
      state = jax.lax.fori_loop(0, num_steps, one_step, state)
      metrics = evaluate(state.params, state.model_state, data)
      return record(state, metrics), metrics

    return jax.lax.scan(block, state, jnp.asarray(block_lengths, jnp.int32))

  return TrainLoop(init=init, update=update, step=step, evaluate=evaluate, record=record, run=run)


def make_train_fn(
  model: FunctionalModel,
  optimizer: optax.GradientTransformation,
  *,
  steps: int,
  batch_size: int,
  eval_every: int,
  loss: str = "cross_entropy",
  sampling: str = "epoch",
  patience: int | None = None,
  l2_penalty: float = 0.0,
) -> Callable[[optax.Params, Any, data_lib.Dataset, jax.Array], tuple[TrainState, dict]]:
  """Builds the pure function `(params, model_state, data, key) -> (final TrainState, history)`.

  It is what `train` jits; it is exposed so that a sweep can `vmap` it over members.
  """
  loop = make_train_loop(
    model,
    optimizer,
    batch_size=batch_size,
    loss=loss,
    sampling=sampling,
    patience=patience,
    l2_penalty=l2_penalty,
  )
  steps_per_block = np.diff(eval_steps(steps, eval_every), prepend=0)

  def train_fn(params, model_state, data, key):
    return loop.run(loop.init(params, model_state), data, key, None, steps_per_block)

  return train_fn


def train(
  model: FunctionalModel,
  optimizer: optax.GradientTransformation,
  data: data_lib.Dataset,
  *,
  steps: int,
  batch_size: int,
  eval_every: int | None = None,
  loss: str = "cross_entropy",
  sampling: str = "epoch",
  patience: int | None = None,
  seed: int = 0,
  l2_penalty: float = 0.0,
) -> TrainResult:
  """Trains `model` on `data` with `optimizer` for `steps` minibatch steps, as one compiled scan.

  Args:
    model: a `models.FunctionalModel` (`models.functional(nnx_module)`).
    optimizer: any Optax transformation, plain or with extra args.
    data: a `data.Dataset`.
    steps: number of optimizer steps.
    batch_size: examples per minibatch.
    eval_every: evaluate every this many steps (default: 50 evaluations over the run).
    loss: a name in `losses.LOSSES` ("cross_entropy" or "mse").
    sampling: "epoch" (shuffle once per epoch) or "replacement" (§8.1.3).
    patience: stop after this many evaluations without a lower held-out error (None: never).
    seed: seeds the minibatch order.
    l2_penalty: α ≥ 0: train on the loss + (α/2) θᵀθ (§7.1.1); `train_loss` includes it.

  Returns:
    A `TrainResult`; `history[name]` is indexed like `history["step"]`.
  """
  eval_every = max(1, steps // 50) if eval_every is None else eval_every
  check_arguments(data, steps, batch_size, eval_every, loss, sampling, patience, l2_penalty)
  train_fn = make_train_fn(
    model,
    optimizer,
    steps=steps,
    batch_size=batch_size,
    eval_every=eval_every,
    loss=loss,
    sampling=sampling,
    patience=patience,
    l2_penalty=l2_penalty,
  )
  state, history = jax.jit(train_fn)(model.params, model.model_state, data, jax.random.key(seed))
  history = {k: np.asarray(v) for k, v in history.items()}
  history["step"] = eval_steps(steps, eval_every)
  return TrainResult(
    params=state.params,
    model_state=state.model_state,
    opt_state=state.opt_state,
    history=history,
    best_params=state.best_params,
    best_step=int(state.best_step),
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
