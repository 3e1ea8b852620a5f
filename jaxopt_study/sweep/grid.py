"""A sweep's members: the Cartesian product of its axes, checked before anything is compiled.

A config's `sweep` maps axis names to lists of values; the members are every combination, in the
order of `itertools.product` over the axes as the config lists them (the last axis varies
fastest). Every member has a value on each base axis, `init_scale` (the factor on the
initializer's output, §8.4), `batch_size` (§8.1.3), `learning_rate` and `seed` (of the parameters
and of the minibatch order), taken from the config's own field where the sweep does not list it.
Any numeric hyperparameter of the config's optimizer (by its Optax name: `momentum`, `b1`, `eps`,
...) is an axis too; the optimizer's numeric hyperparameters are traced
(`optax.inject_hyperparams`), so a value never changes the compiled program. Integer
hyperparameters (annotated `int` or `int | None`: L-BFGS's `memory_size`, a Krylov dimension) fix
shapes or loop lengths, so they are static, passed as Python values, and cannot be sweep axes.
The optional `l2_penalty` (α ≥ 0, default 0) trains every member on loss + (α/2) θᵀθ (§7.1.1,
`train.make_train_loop`).

Members with different batch sizes share one compiled program when their sizes are close:
`batch_groups` puts sizes in one group while the largest is at most `MAX_BATCH_RATIO` times the
smallest, since every member of a group computes the group's largest minibatch.
"""

import functools
import inspect
import itertools
import math
import types
import typing
from typing import Any, NamedTuple

import jax
import ml_collections
from flax import nnx

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim, train

BASE_AXES = ("init_scale", "batch_size", "learning_rate", "seed")
MAX_BATCH_RATIO = 4
MAX_SEGMENTS = 10  # default checkpoint_every: the run in about this many segments


class Member(NamedTuple):
  """One member of a sweep.

  Attributes:
    index: position in the Cartesian product.
    values: every base axis and each swept optimizer hyperparameter -> this member's value.
    hyperparams: every numeric optimizer hyperparameter (learning rate included), as traced.
  """

  index: int
  values: dict[str, Any]
  hyperparams: dict[str, float]

  @property
  def name(self) -> str:
    """The member's name in tables and in the run folder: `m0003`."""
    return f"m{self.index:04d}"


class Plan(NamedTuple):
  """A checked sweep config: its members and everything that is the same for all of them."""

  members: list[Member]
  data: data_lib.Dataset
  model: dict[str, Any]
  optimizer: str
  static_hyperparams: dict[str, Any]
  steps: int
  eval_every: int
  checkpoint_every: int
  loss: str
  sampling: str
  patience: int | None
  l2_penalty: float


def integer_hyperparameters(name: str) -> tuple[str, ...]:
  """The hyperparameters of `optim.OPTIMIZERS[name]` annotated `int` or `int | None`.

  They set shapes or loop lengths (L-BFGS's memory, a Krylov dimension, a restart period), so a
  sweep passes them as static Python values (`optax.inject_hyperparams(static_args=...)`) instead
  of tracing them like the real-valued ones.
  """
  parameters = inspect.signature(optim.OPTIMIZERS[name]).parameters
  return tuple(k for k, p in parameters.items() if _is_integer_annotation(p.annotation))


def _is_integer_annotation(annotation: Any) -> bool:
  if annotation is int:
    return True
  if typing.get_origin(annotation) in (typing.Union, types.UnionType):
    options = set(typing.get_args(annotation)) - {type(None)}
    return options == {int}
  return False


def check(config: ml_collections.ConfigDict) -> Plan:
  """Validates a sweep config and returns its `Plan`; nothing is compiled.

  Raises:
    ValueError: naming the field or sweep axis at fault, e.g.
      ``batch_size=0 in sweep axis 'batch_size': must be ≥ 1``.
  """
  for field in ("steps", "eval_every"):
    _require_int(field, config[field], f"config field {field!r}", low=1)
  steps, eval_every = config.steps, config.eval_every
  num_blocks = math.ceil(steps / eval_every)
  default_every = eval_every * math.ceil(num_blocks / MAX_SEGMENTS)
  checkpoint_every = config.get("checkpoint_every", None) or default_every
  _require_int("checkpoint_every", checkpoint_every, "config field 'checkpoint_every'", low=1)
  if checkpoint_every % eval_every:
    raise ValueError(
      f"checkpoint_every={checkpoint_every} must be a multiple of eval_every={eval_every}: "
      "a segment of the run ends at an evaluation"
    )
  loss = config.get("loss", "cross_entropy")
  sampling = config.get("sampling", "epoch")
  patience = config.get("patience", None)
  l2_penalty = config.get("l2_penalty", 0.0)
  train.check_l2_penalty(l2_penalty, "config field 'l2_penalty'")
  if loss not in losses.LOSSES:
    raise ValueError(f"loss={loss!r}: must be one of {sorted(losses.LOSSES)}")
  if sampling not in train.SAMPLINGS:
    raise ValueError(f"sampling={sampling!r}: must be one of {list(train.SAMPLINGS)}")
  if patience is not None:
    _require_int("patience", patience, "config field 'patience'", low=1)

  optimizer = config.optimizer.to_dict()
  name = optimizer.pop("name")
  if name not in optim.OPTIMIZERS:
    raise ValueError(f"optimizer.name={name!r}: must be one of {sorted(optim.OPTIMIZERS)}")
  if "learning_rate" in optimizer:
    raise ValueError("optimizer.learning_rate: set the learning rate at the top level")
  sweep = config.sweep.to_dict() if config.get("sweep", None) else {}
  hyper_names = inspect.signature(optim.OPTIMIZERS[name]).parameters
  integers = integer_hyperparameters(name)
  known = [*BASE_AXES, *(h for h in hyper_names if h not in ("learning_rate", *integers))]
  for axis, values in sweep.items():
    if axis in integers:
      raise ValueError(
        f"sweep axis {axis!r}: {name}'s {axis} is an integer that fixes the program's shapes; "
        f"set optimizer.{axis} instead (one sweep per value)"
      )
    if axis not in known:
      raise ValueError(f"unknown sweep axis {axis!r}: known axes are {', '.join(known)}")
    if not isinstance(values, list | tuple) or not values:
      raise ValueError(f"sweep axis {axis!r}={values!r}: must be a non-empty list of values")
    if len(set(values)) != len(values):
      raise ValueError(f"sweep axis {axis!r}={list(values)}: a value is repeated")

  data = load_data(config)
  base = {
    "init_scale": config.model.get("init_scale", 1.0),
    "batch_size": config.batch_size,
    "learning_rate": config.learning_rate,
    "seed": config.seed,
  }
  _check_base_axes(base, sweep, data.x_train.shape[0])
  numeric = {k: float(v) for k, v in optimizer.items() if _is_real(v) and k not in integers}
  static = {k: v for k, v in optimizer.items() if k not in numeric}
  # Each swept value is checked with the other hyperparameters at their config values, or at
  # their axis's first value when only the sweep sets them (damping > 0 for an adaptive Newton).
  firsts = {a: v[0] for a, v in sweep.items() if a not in BASE_AXES}
  _check_hyperparameters(
    name, {**firsts, **optimizer, "learning_rate": base["learning_rate"]}, sweep
  )
  model = config.model.to_dict()
  model.pop("init_scale", None)
  _check_model(model["name"], model_features(data), frozen(_options(model)))

  swept_hyper = [a for a in sweep if a not in BASE_AXES]
  members = []
  for index, combination in enumerate(itertools.product(*sweep.values())):
    values = base | dict(zip(sweep, combination, strict=True))
    hyperparams = numeric | {a: float(values[a]) for a in ("learning_rate", *swept_hyper)}
    members.append(Member(index, values, hyperparams))
  return Plan(
    members=members,
    data=data,
    model=model,
    optimizer=name,
    static_hyperparams=static,
    steps=steps,
    eval_every=eval_every,
    checkpoint_every=checkpoint_every,
    loss=loss,
    sampling=sampling,
    patience=patience,
    l2_penalty=float(l2_penalty),
  )


def _check_base_axes(base: dict[str, Any], sweep: dict[str, list], num_train: int) -> None:
  for value in sweep.get("batch_size", [base["batch_size"]]):
    where = _where("batch_size", sweep)
    _require_int("batch_size", value, where, low=1)
    if value > num_train:
      raise ValueError(
        f"batch_size={value} in {where}: must be ≤ {num_train}, the number of training examples"
      )
  for value in sweep.get("seed", [base["seed"]]):
    _require_int("seed", value, _where("seed", sweep), low=0)
  for value in sweep.get("init_scale", [base["init_scale"]]):
    if not _is_real(value) or not math.isfinite(value) or value < 0:
      raise ValueError(
        f"init_scale={value!r} in {_where('init_scale', sweep)}: must be finite and ≥ 0"
      )


def _check_hyperparameters(name: str, hyperparams: dict[str, Any], sweep: dict[str, list]) -> None:
  """Constructs the optimizer with each swept value in turn (the others at their base values)."""
  for axis in ("learning_rate", *(a for a in sweep if a not in BASE_AXES)):
    for value in sweep.get(axis, [hyperparams.get(axis)]):
      where = _where(axis, sweep)
      if not _is_real(value):
        raise ValueError(f"{axis}={value!r} in {where}: must be a number")
      try:
        optim.OPTIMIZERS[name](**{**hyperparams, axis: value})
      except (TypeError, ValueError) as error:
        raise ValueError(f"{axis}={value!r} in {where}: {error}") from None


def batch_groups(batch_sizes: list[int], *, batchnorm: bool = False) -> list[tuple[int, ...]]:
  """Batch sizes that share one compiled program: ascending, max/min ≤ `MAX_BATCH_RATIO`.

  Sizes are taken in increasing order and each joins the current group while it is at most
  `MAX_BATCH_RATIO` times the group's smallest; a member of a group computes the group's largest
  minibatch and masks the rest, so at most 3/4 of its work is wasted. A BatchNorm model gets one
  group per size, since its batch statistics would include the masked examples (§8.7.1).
  """
  groups: list[list[int]] = []
  for size in sorted(set(batch_sizes)):
    if groups and not batchnorm and size <= MAX_BATCH_RATIO * groups[-1][0]:
      groups[-1].append(size)
    else:
      groups.append([size])
  return [tuple(g) for g in groups]


def load_data(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  """`data.DATASETS[config.data.name]` with the config's options (a `key` from `config.seed`).

  Loaded once per process for each name and options (the arrays are immutable).
  """
  options = config.data.to_dict()
  name = options.pop("name")
  if name not in data_lib.DATASETS:
    raise ValueError(f"data.name={name!r}: must be one of {sorted(data_lib.DATASETS)}")
  if "key" in inspect.signature(data_lib.DATASETS[name]).parameters:
    options["seed"] = config.seed
  return _load(name, frozen(options))


@functools.cache
def _load(name: str, options: tuple[tuple[str, Any], ...]) -> data_lib.Dataset:
  options = dict(options)
  loader = data_lib.DATASETS[name]
  if "key" in inspect.signature(loader).parameters:
    options["key"] = jax.random.key(options.pop("seed"))
  try:
    return loader(**options)
  except TypeError as error:
    raise ValueError(f"data {name!r}: {error}") from None


@functools.cache
def _check_model(name: str, features: tuple[int, int], options: tuple[tuple[str, Any], ...]):
  """Builds the model abstractly (`nnx.eval_shape`: no arrays), once per process for each setup."""
  nnx.eval_shape(lambda: models.build_model(name, *features, **dict(options)))


def frozen(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
  """Options as a hashable, sorted tuple (lists become tuples)."""
  return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))


def model_features(data: data_lib.Dataset) -> tuple[int, int]:
  """(in_features, out_features): classes for integer labels, target width for regression."""
  out = int(data.y_train.max()) + 1 if data.y_train.ndim == 1 else data.y_train.shape[-1]
  return data.x_train.shape[-1], out


def _options(model: dict[str, Any]) -> dict[str, Any]:
  return {k: v for k, v in model.items() if k != "name"}


def _where(axis: str, sweep: dict) -> str:
  return f"sweep axis {axis!r}" if axis in sweep else f"config field {axis!r}"


def _is_real(value: Any) -> bool:
  return isinstance(value, int | float) and not isinstance(value, bool)


def _require_int(name: str, value: Any, where: str, *, low: int) -> None:
  if not isinstance(value, int) or isinstance(value, bool):
    raise ValueError(f"{name}={value!r} in {where}: must be an integer")
  if value < low:
    raise ValueError(f"{name}={value!r} in {where}: must be ≥ {low}")
