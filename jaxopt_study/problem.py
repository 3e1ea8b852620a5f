"""A `Problem`: the user's model, loss and data, the one input of training, sweeps and the CLI.

    problem = Problem(
      model=lambda rngs: MyCNN(rngs=rngs),   # any nnx.Module factory; any __call__
      loss=my_loss,                          # (model, batch) -> scalar mean over the batch
      train_data=(x_train, y_train),         # arrays with one leading axis of examples
      heldout_data=(x_test, y_test),         # optional
      metrics={"error": my_error},           # optional: (model, batch) -> scalar
    )

Early stopping keeps the lowest value of its metric, or the highest of a metric named in
`higher_is_better` (an accuracy: `metrics={"acc": my_acc}, higher_is_better=("acc",)`).

Nothing here assumes a constructor or a call signature: the toolkit calls `model(rngs)` once per
seed and `loss(module, batch)` / `metric(module, batch)` on the live module, `batch` a tuple of
the data arrays sliced together along axis 0. The training loop sets the module's mode: train
mode (`module.train()`: batch statistics, dropout on) inside a step and for `train_loss`, eval
mode (`module.eval()`) for every other metric. That overrides what the constructor set: a
BatchNorm built with `use_running_average=True` still trains on batch statistics and updates its
running averages; to freeze one, call it with the flag in `__call__`
(``self.norm(h, use_running_average=True)``), which the mode does not change. A Linen module
brought in through `nnx.bridge.ToNNX` is outside the mode's reach: its dropout's
`deterministic` is a call argument, so eval-mode metrics include dropout unless the loss and
metrics pass it.

`pure(problem)` is the form the compiled loops take (`Pure`): the module split by `nnx.split` into
its graph (one per mode), its `nnx.Param` arrays and the rest of its state (BatchNorm statistics,
dropout's RNG state), with the loss and metrics as pure functions of those arrays. Building it
traces the loss and the metrics on two training examples (`jax.eval_shape`, nothing computed): a
loss that is not a real scalar (the per-example losses, say) is refused by name before anything
compiles.
`builtin(...)` makes the ready-made problems (the package's models, data sets and losses) in the
same form, so configs are a thin layer over the same API.
"""

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, regularization

Batch = tuple[jax.Array, ...]
ModelFn = Callable[[nnx.Rngs], nnx.Module]
LossFn = Callable[[nnx.Module, Batch], jax.Array]
InitFn = Callable[[nnx.State, float], nnx.State]


def scale_kernels(params: nnx.State, init_scale: float) -> nnx.State:
  """The default `init_scale` rule (§8.4): every kernel (`regularization.is_kernel`: an
  `nnx.Param` of ndim ≥ 2, kernels, embeddings, convolution filters) multiplied by `init_scale`;
  biases and normalization scales unchanged, also where stacked layers give them ndim 2."""
  return jax.tree_util.tree_map_with_path(
    lambda path, x: x * init_scale if regularization.is_kernel(path, x) else x, params
  )


def check_init_scale(problem: "Problem", scales: Any, where: str) -> None:
  """Refuses init scales other than 1 that the default rule `scale_kernels` would apply to a
  model without kernels (a logistic regression's weight vector, a temperature): every scale
  would train the same network, and an init-scale curve would be flat for no reason of the
  science.

  Raises:
    ValueError: naming the scale and the model's parameters, before anything compiles.
  """
  if problem.init is not scale_kernels or all(scale == 1 for scale in scales):
    return
  shapes = jax.tree_util.tree_flatten_with_path(pure(problem).params_shape)[0]
  if not any(regularization.is_kernel(path, leaf) for path, leaf in shapes):
    named = [f"{jax.tree_util.keystr(path)} {tuple(leaf.shape)}" for path, leaf in shapes]
    raise ValueError(
      f"{where}: init_scale={next(s for s in scales if s != 1)!r} would change nothing: the "
      "default rule (problem.scale_kernels) multiplies the kernels, nnx.Params of ndim ≥ 2 not "
      f"named bias or scale, and the model has none ({', '.join(named[:4])}"
      f"{', ...' if len(named) > 4 else ''}); give the Problem an init rule of your own, "
      "init=lambda params, init_scale: ..."
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
  """A model, a loss and data: what `train.train`, `sweep.run` and `jaxopt-study` take.

  Attributes:
    model: `rngs -> nnx.Module`, called with `nnx.Rngs(seed)` for each seed.
    loss: `(module, batch) -> scalar`, the mean over the batch's examples of a per-example loss
      (sweeps with several batch sizes in one program weight examples, so the mean matters).
    train_data: a tuple of arrays with the same leading length (examples).
    heldout_data: the same for held-out data, or None.
    metrics: name -> `(module, batch) -> scalar`, reported as `train_<name>` and
      `test_<name>` (evaluated in eval mode), never under another name.
    init: `(params, init_scale) -> params`, applied to every initialization at its
      `init_scale` (1 unless a sweep or `train.train` sets it); default `scale_kernels`.
    higher_is_better: names of `metrics` whose highest value is the best (an accuracy): early
      stopping on `train_<name>` or `test_<name>` keeps its highest value and a sweep's
      `best_<metric>` column is its maximum (as torchmetrics' `Metric.higher_is_better`); every
      other metric, and the loss, is best at its lowest.
  """

  model: ModelFn
  loss: LossFn
  train_data: Batch
  heldout_data: Batch | None = None
  metrics: Mapping[str, LossFn] = dataclasses.field(default_factory=dict)
  init: InitFn = scale_kernels
  higher_is_better: tuple[str, ...] = ()

  def __post_init__(self):
    for name in ("model", "loss", "init"):
      if not callable(getattr(self, name)):
        raise ValueError(f"Problem: {name}={getattr(self, name)!r} must be callable")
    object.__setattr__(self, "train_data", _as_batch("train_data", self.train_data))
    if self.heldout_data is not None:
      object.__setattr__(self, "heldout_data", _as_batch("heldout_data", self.heldout_data))
      if len(self.heldout_data) != len(self.train_data):
        raise ValueError(
          f"Problem: heldout_data has {len(self.heldout_data)} arrays, train_data "
          f"{len(self.train_data)}: they must match, since loss and metrics take either"
        )
    if not isinstance(self.metrics, Mapping):
      raise ValueError(f"Problem: metrics={self.metrics!r} must map names to functions")
    for name, fn in self.metrics.items():
      if not isinstance(name, str) or not name.isidentifier() or name == "loss":
        raise ValueError(
          f"Problem: metric name {name!r} must be an identifier other than 'loss' "
          "(reported as train_<name> and test_<name>)"
        )
      if not callable(fn):
        raise ValueError(f"Problem: metrics[{name!r}]={fn!r} must be callable")
    object.__setattr__(self, "metrics", dict(self.metrics))
    if isinstance(self.higher_is_better, str):
      raise ValueError(
        f"Problem: higher_is_better={self.higher_is_better!r} must be a tuple of metric names, "
        f"e.g. ({self.higher_is_better!r},)"
      )
    object.__setattr__(self, "higher_is_better", tuple(self.higher_is_better))
    for name in self.higher_is_better:
      if name not in self.metrics:
        raise ValueError(
          f"Problem: higher_is_better names {name!r}, which is not one of the metrics "
          f"({', '.join(self.metrics) or 'none given'})"
        )
    object.__setattr__(self, "_params_losses", {})  # params_loss's functions, by model state

  @property
  def num_train(self) -> int:
    return int(self.train_data[0].shape[0])

  def module(self, params: nnx.State, model_state: nnx.State | None = None, *, train=False):
    """The live module holding `params` (and `model_state`: default, the seed-0 initial state),
    in eval mode or, with `train=True`, train mode; e.g. of `train.train`'s result."""
    return pure(self).module(params, self._state(model_state), train=train)

  def params_loss(self, model_state: nnx.State | None = None, *, train: bool = True):
    """The loss as `loss_fn(params, *batch)`, the form `hessian` takes:
    ``hessian.classify(problem.params_loss(), params, *problem.train_data)``.

    `train=True` is the training objective (batch statistics, as the optimizer saw it);
    `model_state` (default: the initial one) holds BatchNorm statistics and RNG state.
    Model states of equal values give the same function object: the `hessian` tools compile once
    per loss function, so classifying every member of a sweep compiles once (for a model
    without state) instead of once per member.
    """
    pure_form, state = pure(self), self._state(model_state)
    leaves = jax.tree.leaves(state)
    key = None
    if not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
      key = (train, str(jax.tree.structure(state)), _fingerprint(leaves))
      if key in self._params_losses:
        return self._params_losses[key]

    def loss_fn(params, *batch):
      return self.loss(pure_form.module(params, state, train=train), batch)

    if key is not None:
      self._params_losses[key] = loss_fn  # lives and dies with this Problem
    return loss_fn

  def _state(self, model_state: nnx.State | None) -> nnx.State:
    """`model_state`, or the initial one (seed 0) when None."""
    return pure(self).initial(0)[1] if model_state is None else model_state

  def data_fingerprint(self) -> dict[str, str | None]:
    """A digest of the bytes (and shapes, dtypes) of `train_data` and `heldout_data`: equal for
    equal data, so a run folder can tell that it is resumed on the data it started with."""
    return {
      "train_data": _fingerprint(list(self.train_data))[1],
      "heldout_data": None
      if self.heldout_data is None
      else _fingerprint(list(self.heldout_data))[1],
    }

  def metric_names(self) -> tuple[str, ...]:
    """Every metric the training loop reports for this problem, in order."""
    return reported_metrics(tuple(self.metrics), self.heldout_data is not None)

  def maximized_metrics(self) -> tuple[str, ...]:
    """The reported metrics best at their highest (`higher_is_better`'s, on either data)."""
    named = {f"{data}_{name}" for data in ("train", "test") for name in self.higher_is_better}
    return tuple(m for m in self.metric_names() if m in named)


def _fingerprint(leaves: list) -> tuple:
  """The shapes, dtypes and a digest of the bytes of concrete arrays: equal for equal values."""
  digest = hashlib.blake2b(digest_size=16)
  for leaf in leaves:
    array = np.asarray(leaf)
    digest.update(f"{array.shape}{array.dtype}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return (len(leaves), digest.hexdigest())


def reported_metrics(metrics: tuple[str, ...], heldout: bool) -> tuple[str, ...]:
  """`train_loss`, `grad_norm`, `train_<m>` per metric, and with held-out data `test_loss` and
  `test_<m>`: the names the training loop reports."""
  names = ["train_loss", "grad_norm", *(f"train_{m}" for m in metrics)]
  if heldout:
    names += ["test_loss", *(f"test_{m}" for m in metrics)]
  return tuple(names)


def _as_batch(name: str, arrays: Any) -> Batch:
  if isinstance(arrays, Mapping):  # not one array: its keys would be taken for arrays
    raise ValueError(
      f"Problem: {name} is a {type(arrays).__name__}: give a tuple of arrays, e.g. (x, y), that "
      "the loss receives as its batch (a model of several inputs: (x1, x2, y), unpacked by it)"
    )
  if not isinstance(arrays, tuple | list):
    arrays = (arrays,)
  if not arrays:
    raise ValueError(f"Problem: {name} is empty: give a tuple of arrays, e.g. (x, y)")
  out = []
  for i, array in enumerate(arrays):
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
      raise ValueError(f"Problem: {name}[{i}] is a {type(array).__name__}, not an array")
    if np.ndim(array) == 0:
      raise ValueError(f"Problem: {name}[{i}] is a scalar: need a leading axis of examples")
    array = jnp.asarray(array)
    if jnp.issubdtype(array.dtype, jnp.inexact) and not bool(jnp.isfinite(array).all()):
      first = np.argwhere(~np.isfinite(np.asarray(array)))[0]
      raise ValueError(
        f"Problem: {name}[{i}] is not finite (NaN or ±inf) at index {tuple(first.tolist())}: "
        "every loss and gradient would be NaN"
      )
    out.append(array)
  lengths = {int(a.shape[0]) for a in out}
  if len(lengths) != 1:
    raise ValueError(f"Problem: the arrays of {name} have different lengths {sorted(lengths)}")
  if lengths == {0}:
    raise ValueError(f"Problem: {name} has no examples")
  return tuple(out)


class Data(NamedTuple):
  """The arrays a compiled loop takes: the training tuple and the held-out tuple (or None)."""

  train: Batch
  heldout: Batch | None


def as_data(data: Any) -> Data:
  """`Data` from a `Data`, a `Problem` or a `data.Dataset` (x_train, y_train, x_test, y_test)."""
  if isinstance(data, Data):
    return data
  if isinstance(data, Problem):
    return Data(data.train_data, data.heldout_data)
  if isinstance(data, data_lib.Dataset):
    return Data((data.x_train, data.y_train), (data.x_test, data.y_test))
  raise TypeError(f"expected a Problem, Data or data.Dataset, got {type(data).__name__}")


class Pure:
  """A problem as pure functions of (params, model_state) arrays, for jit, grad, vmap and scan.

  `model_state` is every non-`nnx.Param` variable (BatchNorm statistics, RNG state); PRNG keys in
  it are held as raw `uint32` key data, so states stack, checkpoint and save like other arrays.
  Built once per `Problem` by `pure`.
  """

  def __init__(self, problem: Problem):
    self.problem = problem
    module = problem.model(nnx.Rngs(0))
    if not isinstance(module, nnx.Module):
      raise ValueError(
        f"Problem: model(rngs) returned a {type(module).__name__}, not an nnx.Module"
      )
    self.module_class = type(module).__qualname__
    module.train()
    self.graph_train, params, state = nnx.split(module, nnx.Param, ...)
    module.eval()
    self.graph_eval = nnx.graphdef(module)
    if not jax.tree.leaves(params):
      raise ValueError("Problem: the model has no nnx.Param arrays to train")
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
      if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
        raise TypeError(
          f"Problem: the model's nnx.Param {jax.tree_util.keystr(path)} has dtype "
          f"{jnp.result_type(leaf)}: parameters are differentiated, so they must be floating "
          "point; hold fixed integer arrays (indices, permutations) as nnx.Variable, not Param"
        )
    self._keys = tuple(_is_key(x) for x in jax.tree.leaves(state))
    self._key_impls = tuple(
      jax.random.key_impl(x) if _is_key(x) else None for x in jax.tree.leaves(state)
    )
    self.params_shape = jax.tree.map(_shape_dtype, params)
    self.model_state_shape = jax.tree.map(_shape_dtype, self._raw(state))
    self.metric_names = problem.metric_names()
    self.maximized_metrics = problem.maximized_metrics()
    self.stateless = not jax.tree.leaves(state)
    self._check_outputs(params, self._raw(state))

  def initial(self, seed: int, init_scale: float = 1.0) -> tuple[nnx.State, nnx.State]:
    """The arrays of `model(nnx.Rngs(seed))` with `init(params, init_scale)` applied (the
    default `scale_kernels` is the identity at 1 and skipped there; a rule of the user's own is
    applied at every scale, 1 included)."""
    module = self.problem.model(nnx.Rngs(seed))
    _, params, state = nnx.split(module, nnx.Param, ...)
    if init_scale != 1.0 or self.problem.init is not scale_kernels:
      params = self.problem.init(params, init_scale)
    self._check_shapes(params, state)
    return params, self._raw(state)

  def _check_shapes(self, params, state) -> None:
    found = jax.tree.map(_shape_dtype, (params, self._raw(state)))
    if jax.tree.structure(found) != jax.tree.structure(
      (self.params_shape, self.model_state_shape)
    ) or jax.tree.leaves(found) != jax.tree.leaves((self.params_shape, self.model_state_shape)):
      raise ValueError(
        "Problem: model(rngs) built modules of different shapes for different seeds, or init "
        "changed the parameters' shapes; every seed must build the same structure"
      )

  def _check_outputs(self, params, model_state) -> None:
    """Refuses a loss or metric that does not return a real scalar, before anything compiles.

    Both are traced by `jax.eval_shape` (nothing is computed) on the first two examples: the loss
    in train mode on train_data, as a step takes it, and the loss and metrics in eval mode on
    train_data and on heldout_data, as the evaluations take them. An error raised while tracing
    (a model that does not take the data) gets a note naming the data it was given.
    """
    data = {"train_data": self.problem.train_data, "heldout_data": self.problem.heldout_data}
    for name, arrays in data.items():
      if arrays is None:
        continue
      batch = tuple(
        jax.ShapeDtypeStruct((min(2, a.shape[0]), *a.shape[1:]), a.dtype) for a in arrays
      )
      shapes = ", ".join(str(tuple(a.shape)) for a in batch)
      try:
        train_loss, new_state = (
          jax.eval_shape(self.loss, params, model_state, batch)
          if name == "train_data"
          else (None, None)
        )
        evaluated = jax.eval_shape(self.metrics, params, model_state, batch)
      except Exception as error:
        error.add_note(
          f"Problem: raised by the model, loss or a metric on the first {batch[0].shape[0]} "
          f"examples of {name} (shapes {shapes}), checked before training"
        )
        raise
      if train_loss is not None:
        _require_scalar("loss", train_loss, shapes, floating=True)
        _require_same_state(model_state, new_state)
      for metric, out in evaluated.items():
        _require_scalar("loss" if metric == "loss" else f"metrics[{metric!r}]", out, shapes)

  def module(self, params, model_state, *, train: bool = False) -> nnx.Module:
    """The live module of these arrays, in train or eval mode."""
    graph = self.graph_train if train else self.graph_eval
    return nnx.merge(graph, params, self._typed(model_state), copy=True)

  def loss(self, params, model_state, batch: Batch, weights: jax.Array | None = None):
    """(loss in train mode, new model state); with `weights`, Σ wᵢ ℓᵢ / Σ wᵢ over examples.

    The weighted form evaluates the loss on each example alone (`vmap` over batches of one), so
    it needs a model without state (no BatchNorm, no dropout RNG): `stateless`.
    """
    if weights is None:
      module = self.module(params, model_state, train=True)
      value = self.problem.loss(module, batch)
      # what the module sowed (`nnx.Intermediate`) is an output of the call, not state to keep
      _, _, _, new_state = nnx.split(module, nnx.Param, nnx.Intermediate, ...)
      return value, self._raw(new_state)
    if not self.stateless:
      raise ValueError(
        "weighted losses need a model without state (BatchNorm, dropout): the loss is taken one "
        "example at a time; train such a model with one batch size per program"
      )

    def one(example):
      module = self.module(params, model_state, train=True)
      return self.problem.loss(module, tuple(a[None] for a in example))

    per_example = jax.vmap(one)(batch)
    return losses.weighted_mean(per_example, weights), model_state

  @functools.cached_property
  def loss_is_example_mean(self) -> bool:
    """Whether the loss is a mean over the batch of per-example terms, ℓ(B) = Σᵢ ℓ({xᵢ}) / |B|,
    as the weighted form of `loss` (a sweep's masked minibatches of several sizes) assumes;
    False for a model with state.

    A loss with sample weights from the batch (Σ wᵢ ℓᵢ / Σ wᵢ), a sum, or a term across examples
    is not: taken one example at a time it would silently become another loss. Checked on the
    gradient at seed 0's parameters, on the training examples `_probe_indices` picks (every one
    of a small set; else 512 spread over it and the first example of every value of each integer
    label array, so that a rare class with its own weight is seen: 16 examples missed a class of
    4 in 64 more often than not, and its members trained on the unweighted mean), in batches of
    at most `PROBE_BATCH` (no more memory than a small training batch): on each, ∇ℓ(B) must equal
    the mean of the per-example gradients to √ε relative, as must the values.
    """
    if not self.stateless:  # one example at a time would change its batch statistics
      return False
    train = self.problem.train_data
    indices = _probe_indices(train)
    params, state = self.initial(0)

    @jax.jit
    def both(params, state, batch):
      ones = jnp.ones(batch[0].shape[0])
      whole = jax.value_and_grad(lambda p: self.loss(p, state, batch)[0])(params)
      split = jax.value_and_grad(lambda p: self.loss(p, state, batch, ones)[0])(params)
      return whole, split

    def close(a, b, tolerance) -> bool:
      return optax.tree.norm(optax.tree.sub(a, b)) <= tolerance * max(
        optax.tree.norm(a), optax.tree.norm(b)
      )

    for chunk in np.array_split(indices, -(-indices.size // PROBE_BATCH)):  # ≤ 2 batch shapes
      batch = tuple(jnp.asarray(a[chunk]) for a in train)
      (value, grad), (mean_value, mean_grad) = both(params, state, batch)
      tolerance = np.sqrt(np.finfo(np.asarray(value).dtype).eps)
      if not (close(value, mean_value, tolerance) and close(grad, mean_grad, tolerance)):
        return False
    return True

  def metrics(self, params, model_state, batch: Batch) -> dict[str, jax.Array]:
    """`loss` and every metric of the problem on `batch`, in eval mode."""
    module = self.module(params, model_state, train=False)
    values = {"loss": self.problem.loss(module, batch)}
    for name, fn in self.problem.metrics.items():
      values[name] = fn(module, batch)
    return values

  def _raw(self, state: nnx.State) -> nnx.State:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)

  def _typed(self, state: nnx.State) -> nnx.State:
    leaves, treedef = jax.tree.flatten(state)
    typed = [
      jax.random.wrap_key_data(x, impl=impl) if is_key else x
      for x, is_key, impl in zip(leaves, self._keys, self._key_impls, strict=True)
    ]
    return jax.tree.unflatten(treedef, typed)


PROBE_EXAMPLES = 512  # `Pure.loss_is_example_mean` checks every example of a set this small
PROBE_BATCH = 64  # in batches of at most this many examples


def _probe_indices(train: Batch) -> np.ndarray:
  """Sorted training indices for `Pure.loss_is_example_mean`: all of up to `PROBE_EXAMPLES`;
  else that many spread evenly, the first example of every distinct value of each integer array
  of one value per example (labels: every class, however rare), and the examples of the least
  and the largest value of each such float array (sample weights: a few heavy or zero-weight
  examples, which the even spread misses)."""
  count = train[0].shape[0]
  if count <= PROBE_EXAMPLES:
    return np.arange(count)
  chosen = [np.linspace(0, count - 1, PROBE_EXAMPLES).astype(int)]
  for array in train:
    values = np.asarray(array)
    if values.ndim != 1:
      continue
    if np.issubdtype(values.dtype, np.integer):
      chosen.append(np.unique(values, return_index=True)[1][:PROBE_EXAMPLES])
    elif np.issubdtype(values.dtype, np.floating):
      chosen.append(np.asarray([np.nanargmin(values), np.nanargmax(values)]))
  return np.unique(np.concatenate(chosen))


def _require_scalar(culprit: str, out: Any, shapes: str, floating: bool = False) -> None:
  """Refuses `out`, the `jax.eval_shape` of a loss or metric, unless it is a real scalar (for the
  loss, which is differentiated, a floating one)."""
  if not (isinstance(out, jax.ShapeDtypeStruct) and out.shape == ()):
    found = f"shape {out.shape}" if hasattr(out, "shape") else f"a {type(out).__name__}"
    raise ValueError(
      f"Problem: {culprit}(module, batch) returned {found} on a batch of shapes {shapes}: it "
      "must return one scalar, the mean over the batch's examples"
    )
  kinds = (jnp.floating,) if floating else (jnp.floating, jnp.integer, jnp.bool_)
  if not any(jnp.issubdtype(out.dtype, kind) for kind in kinds):
    needed = "a real floating" if floating else "a real"
    raise ValueError(
      f"Problem: {culprit}(module, batch) returned dtype {out.dtype}: it must return {needed} "
      "scalar"
    )


@functools.lru_cache(maxsize=64)
def pure(problem: Problem) -> Pure:
  """The `Pure` form of `problem`, built once per `Problem` object."""
  return Pure(problem)


class FunctionalPure:
  """The `Pure` interface over a `models.FunctionalModel` and a named loss of `losses.LOSSES`,
  for callers that hold a model's arrays rather than a `Problem` (`train.make_train_loop`).

  It reports what `builtin` reports: the loss, and the 0-1 error as `error` for cross-entropy.
  """

  def __init__(self, model: models.FunctionalModel, loss: str = "cross_entropy"):
    if loss not in losses.LOSSES:
      raise ValueError(f"loss={loss!r}: must be one of {sorted(losses.LOSSES)}")
    self.model, self.loss_fn = model, losses.LOSSES[loss]
    self.classification = loss == "cross_entropy"
    self.params_shape = jax.tree.map(_shape_dtype, model.params)
    self.model_state_shape = jax.tree.map(_shape_dtype, model.model_state)
    self.metric_names = reported_metrics(("error",) if self.classification else (), True)
    self.maximized_metrics = ()
    self.stateless = True  # the loss takes per-example weights itself

  def loss(self, params, model_state, batch: Batch, weights: jax.Array | None = None):
    outputs, new_state = self.model.apply(params, model_state, batch[0], True)
    return self.loss_fn(outputs, batch[1], weights), new_state

  def metrics(self, params, model_state, batch: Batch) -> dict[str, jax.Array]:
    outputs, _ = self.model.apply(params, model_state, batch[0], False)
    values = {"loss": self.loss_fn(outputs, batch[1])}
    if self.classification:
      values["error"] = losses.zero_one_error(outputs, batch[1])
    return values


def as_pure(problem: Any, loss: str | None = None) -> "Pure | FunctionalPure":
  """The pure form of a `Problem`, a `Pure`, or a `models.FunctionalModel` with a named loss."""
  if isinstance(problem, Problem):
    return pure(problem)
  if isinstance(problem, models.FunctionalModel):
    return FunctionalPure(problem, loss or "cross_entropy")
  if isinstance(problem, Pure | FunctionalPure):
    return problem
  raise TypeError(
    f"expected a jaxopt_study.Problem, got {type(problem).__name__}: wrap the model, loss and "
    "data in Problem(model=..., loss=..., train_data=...)"
  )


def _require_same_state(before: Any, after: Any) -> None:
  """Refuses a model whose call in train mode adds variables to its state (a cache made in
  `__call__`) or drops some: the training loop carries the state from step to step, and would
  fail on a pytree mismatch that names neither. Sown intermediates are set aside before this."""
  paths = [
    {jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(state)[0]}
    for state in (before, after)
  ]
  if paths[0] != paths[1]:
    added, dropped = sorted(paths[1] - paths[0]), sorted(paths[0] - paths[1])
    raise ValueError(
      f"Problem: calling the model changes its state: it adds {added or 'nothing'} and drops "
      f"{dropped or 'nothing'}; make every variable in __init__ (a value to return, sow as "
      "nnx.Intermediate, which training sets aside)"
    )


def _is_key(x: Any) -> bool:
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _shape_dtype(x: Any) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))


def builtin(
  model: str,
  data: data_lib.Dataset,
  *,
  loss: str = "cross_entropy",
  init: str = "glorot_uniform",
  **options: Any,
) -> Problem:
  """A ready-made problem: `models.MODELS[model]` on a `data.Dataset` with a named loss.

  Classification (`loss="cross_entropy"`, integer labels) reports the 0-1 error (§8.1.2) as the
  metric `error`; regression (`"mse"`) reports only the loss. The model's kernels are drawn from
  `init` (unit scale); `init_scale` scales them by the `Problem` rule, which for these models is
  the same as scaling the initializer (`models.build_model(init_scale=...)`).
  """
  if loss not in losses.LOSSES:
    raise ValueError(f"loss={loss!r}: must be one of {sorted(losses.LOSSES)}")
  if loss == "mse" and np.ndim(data.y_train) == 1:  # features() would read it as class ids
    raise ValueError(
      f"loss='mse': data.y_train has shape {tuple(np.shape(data.y_train))}; regression targets "
      "are (n, k), y[:, None] for one target (for class ids, use loss='cross_entropy')"
    )
  in_features, out_features = features(data)
  if loss == "cross_entropy":
    _check_class_labels(data, out_features)
  loss_fn = losses.LOSSES[loss]

  def make(rngs: nnx.Rngs) -> nnx.Module:
    return models.build_model(model, in_features, out_features, rngs=rngs, init=init, **options)

  def objective(module, batch):
    return loss_fn(module(batch[0]), batch[1])

  nnx.eval_shape(lambda: make(nnx.Rngs(0)))  # unknown options fail here, before any allocation
  metrics = {}
  if loss == "cross_entropy":
    metrics["error"] = lambda module, batch: losses.zero_one_error(module(batch[0]), batch[1])
  return Problem(
    model=make,
    loss=objective,
    train_data=(data.x_train, data.y_train),
    heldout_data=(data.x_test, data.y_test),
    metrics=metrics,
  )


def _check_class_labels(data: data_lib.Dataset, classes: int) -> None:
  """Integer class ids, one per example, in [0, classes) with `classes` from the training labels:
  a label −1 would silently read the last class, and a held-out class never seen in training has
  no output unit."""
  for name in ("y_train", "y_test"):
    y = np.asarray(getattr(data, name))
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
      raise ValueError(
        f"loss='cross_entropy': data.{name} must hold one integer class id per example, shape "
        f"(n,); got {y.dtype} of shape {y.shape} (for targets, use loss='mse')"
      )
    outside = y[(y < 0) | (y >= classes)]
    if outside.size:
      raise ValueError(
        f"loss='cross_entropy': data.{name} holds class id {int(outside[0])}, outside 0..."
        f"{classes - 1} (the training labels' classes); class ids must be 0, 1, ..., classes − 1"
      )


def features(data: data_lib.Dataset) -> tuple[int, int]:
  """(in_features, out_features): classes for integer labels, target width for regression."""
  y = data.y_train
  out = int(jnp.max(y)) + 1 if y.ndim == 1 else y.shape[-1]
  return int(data.x_train.shape[-1]), out
