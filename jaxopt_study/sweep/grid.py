"""A sweep's members: the Cartesian product of its axes, checked before anything is compiled.

`axes` maps axis names to lists of values; the members are every combination, in the order of
`itertools.product` over the axes as given (the last axis varies fastest). A key may also be a
tuple of names, a joint axis: its values are tuples, one value per name, which a member takes
together instead of crossing them (the points of a random search, `search.sample`, drawn jointly
per member; Bergstra & Bengio 2012); it is crossed with the other axes like one axis. Every
member has a value on each base axis, `init_scale` (the factor of the problem's `init` rule,
§8.4), `batch_size` (§8.1.3) and `seed` (of the parameters and of the minibatch order), from the
axis or else from `run`'s argument of that name. Every other axis, and `learning_rate`, is a
hyperparameter: the optimizer factory is called with one keyword per hyperparameter, under
`optax.inject_hyperparams`, with traced values, so a new value never changes the compiled program.
A factory parameter annotated `int` (L-BFGS's `memory_size`, a Krylov dimension) fixes shapes or
loop lengths and cannot be an axis: bind it in the factory instead (one sweep per value).

Members with different batch sizes share one compiled program when their sizes are close:
`batch_groups` puts sizes in one group while the largest is at most `MAX_BATCH_RATIO` times the
smallest, since every member of a group computes the group's largest minibatch. A sweep at
`equal_epochs` compares batch sizes as Keskar et al. (2017) and Goyal et al. (2017) do, after
the same number of passes over the data: `steps` and `eval_every` are those of the smallest batch
size, a larger one runs proportionally fewer steps (`Plan.for_batch_size`), in a program of its own.
With `log_minibatches` every member keeps the loss and gradient norm of each step's minibatch (the
quantity Fig. 8.1 plots), for as many steps as its batch size runs.
"""

import inspect
import itertools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_study import problem as problem_lib
from jaxopt_study import train, validate
from jaxopt_study.hessian import tracking

BASE_AXES = ("init_scale", "batch_size", "seed")
MAX_BATCH_RATIO = 4
MAX_SEGMENTS = 10  # default checkpoint_every: the run in about this many segments


class Member(NamedTuple):
  """One member of a sweep.

  Attributes:
    index: position in the Cartesian product.
    values: every base axis and each hyperparameter -> this member's value.
    hyperparams: the optimizer's keywords (learning rate included when given), as traced.
  """

  index: int
  values: dict[str, Any]
  hyperparams: dict[str, float]

  @property
  def name(self) -> str:
    """The member's name in tables and in the run folder: `m0003`."""
    return f"m{self.index:04d}"


class Plan(NamedTuple):
  """A checked sweep: its members and everything that is the same for all of them."""

  members: list[Member]
  problem: problem_lib.Problem
  optimizer: Callable[..., Any]
  hyperparam_names: tuple[str, ...]
  steps: int
  eval_every: int
  checkpoint_every: int
  sampling: str
  patience: int | None
  early_stopping: str | None
  l2_penalty: float
  divergence_factor: float
  curvature_every: int | None = None
  curvature: tracking.CurvatureOptions | None = None
  equal_epochs: bool = False
  log_minibatches: bool = False

  def for_batch_size(self, batch_size: int) -> "Plan":
    """The plan a member of `batch_size` runs: this one, or with `equal_epochs` its step counts
    (`steps`, `eval_every`, `checkpoint_every`, `curvature_every`) scaled by b₀/b, b₀ the
    smallest batch size of the sweep, each rounded up: every batch size then sees the same
    number of epochs and evaluations (of checkpoints and of measurements) as the smallest."""
    if not self.equal_epochs:
      return self
    smallest = min(m.values["batch_size"] for m in self.members)
    eval_every = math.ceil(self.eval_every * smallest / batch_size)
    return self._replace(
      steps=math.ceil(self.steps * smallest / batch_size),
      eval_every=eval_every,
      checkpoint_every=eval_every * (self.checkpoint_every // self.eval_every),
      curvature_every=None
      if self.curvature_every is None
      else eval_every * (self.curvature_every // self.eval_every),
    )


def integer_hyperparameters(factory: Callable[..., Any]) -> tuple[str, ...]:
  """The parameters of `factory` annotated `int` or `int | None` (none if it has no signature).

  They set shapes or loop lengths (L-BFGS's memory, a Krylov dimension, a restart period), so a
  sweep cannot trace them like the real-valued ones.
  """
  try:
    parameters = inspect.signature(factory).parameters
  except (TypeError, ValueError):
    return ()
  return tuple(k for k, p in parameters.items() if _is_integer_annotation(p.annotation))


def keyword_names(factory: Callable[..., Any]) -> tuple[str, ...] | None:
  """The keyword parameters of `factory`, or None when it takes **kwargs or has no signature."""
  try:
    parameters = inspect.signature(factory).parameters.values()
  except (TypeError, ValueError):
    return None
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
    return None
  return tuple(p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY)


def _is_integer_annotation(annotation: Any) -> bool:
  if annotation is int:
    return True
  if typing.get_origin(annotation) in (typing.Union, types.UnionType):
    options = set(typing.get_args(annotation)) - {type(None)}
    return options == {int}
  return False


def check(
  problem: problem_lib.Problem,
  optimizer: Callable[..., Any],
  axes: Mapping[str | tuple[str, ...], Any],
  *,
  steps: int,
  eval_every: int,
  batch_size: int | None = None,
  learning_rate: float | None = None,
  init_scale: float = 1.0,
  seed: int = 0,
  sampling: str = "epoch",
  patience: int | None = None,
  early_stopping: str | None = None,
  l2_penalty: float = 0.0,
  checkpoint_every: int | None = None,
  divergence_factor: float = 10.0,
  curvature_every: int | None = None,
  curvature: tracking.CurvatureOptions | None = None,
  equal_epochs: bool = False,
  log_minibatches: bool = False,
) -> Plan:
  """Validates a sweep and returns its `Plan`; nothing is compiled.

  Raises:
    ValueError: naming the argument or axis at fault, e.g.
      ``sweep axis 'batch_size': batch_size=0 must be an integer >= 1``.
  """
  if not isinstance(problem, problem_lib.Problem):
    raise TypeError(
      f"sweep: expected a Problem, got {type(problem).__name__}: wrap the model, loss and data "
      "in jaxopt_study.Problem(model=..., loss=..., train_data=...)"
    )
  if not callable(optimizer):
    raise ValueError(
      f"sweep: optimizer={optimizer!r} must be a function of the hyperparameters returning an "
      "Optax transformation, e.g. lambda learning_rate: optim.sgd(learning_rate)"
    )
  if not isinstance(axes, Mapping):
    raise ValueError(f"sweep: axes={axes!r} must map axis names to lists of values")
  for field, value in (("steps", steps), ("eval_every", eval_every)):
    validate.require_positive_int(field, value, "sweep")
  validate.require_bool("equal_epochs", equal_epochs, "sweep")
  validate.require_bool("log_minibatches", log_minibatches, "sweep")
  num_blocks = math.ceil(steps / eval_every)
  if checkpoint_every is None:  # 0 is refused below, not taken for the default
    checkpoint_every = eval_every * math.ceil(num_blocks / MAX_SEGMENTS)
  validate.require_positive_int("checkpoint_every", checkpoint_every, "sweep")
  if checkpoint_every % eval_every:
    raise ValueError(
      f"checkpoint_every={checkpoint_every} must be a multiple of eval_every={eval_every}: "
      "a segment of the run ends at an evaluation"
    )
  train.check_l2_penalty(l2_penalty, "sweep")
  if sampling not in train.SAMPLINGS:
    validate.require_choice("sampling", sampling, "sweep", train.SAMPLINGS)
  if patience is not None:
    validate.require_positive_int("patience", patience, "sweep")
  # divergence_factor = inf flags NaN only
  if not validate.is_real_number(divergence_factor) or divergence_factor != math.inf:
    validate.require_positive("divergence_factor", divergence_factor, "sweep")
    if not divergence_factor > 1:
      raise ValueError(f"sweep: divergence_factor={divergence_factor!r} must be a number > 1")
  pure = problem_lib.pure(problem)
  train.check_early_stopping(early_stopping, patience, pure.metric_names, "sweep")
  train.check_curvature(curvature_every, curvature, eval_every, problem.num_train, "sweep")
  if curvature_every is not None and curvature is None:
    curvature = tracking.CurvatureOptions()

  axes = {k: [plain(x) for x in v] if isinstance(v, list | tuple) else v for k, v in axes.items()}
  columns = _columns(axes, integer_hyperparameters(optimizer), keyword_names(optimizer))
  if "batch_size" not in columns and batch_size is None:
    raise ValueError("sweep: batch_size is required when it is not an axis")
  base = {"init_scale": init_scale, "batch_size": batch_size, "seed": seed}
  _check_base_axes(base, columns, problem.num_train)
  problem_lib.check_init_scale(
    problem, columns.get("init_scale", [init_scale]), _where("init_scale", columns)
  )
  hyper_axes = [a for a in columns if a not in BASE_AXES]
  fixed = (
    {} if learning_rate is None or "learning_rate" in columns else {"learning_rate": learning_rate}
  )
  _check_hyperparameters(optimizer, fixed, axes, hyper_axes)

  members = []
  for index, combination in enumerate(itertools.product(*axes.values())):
    values = base | fixed | _named(axes, combination)
    hyperparams = {k: float(v) for k, v in fixed.items()}
    hyperparams |= {a: float(values[a]) for a in hyper_axes}
    members.append(Member(index, values, hyperparams))
  first = members[0]  # its values as given (an integer stays one), the program's traced floats
  _check_traced(
    optimizer, {k: first.values[k] for k in first.hyperparams}, hyper_axes, pure.params_shape
  )
  return Plan(
    members=members,
    problem=problem,
    optimizer=optimizer,
    hyperparam_names=tuple(sorted(members[0].hyperparams)),
    steps=steps,
    eval_every=eval_every,
    checkpoint_every=checkpoint_every,
    curvature_every=curvature_every,
    curvature=curvature,
    sampling=sampling,
    patience=patience,
    early_stopping=early_stopping,
    l2_penalty=float(l2_penalty),
    divergence_factor=float(divergence_factor),
    equal_epochs=bool(equal_epochs),
    log_minibatches=bool(log_minibatches),
  )


def _columns(
  axes: dict[Any, Any], integers: tuple[str, ...], keywords: tuple[str, ...] | None
) -> dict[str, list]:
  """Each axis name -> its values (for a joint axis, each name -> its entries of the points),
  after checking every key and value."""
  columns: dict[str, list] = {}
  for key, values in axes.items():
    names = key if isinstance(key, tuple) else (key,)
    if not names or not all(isinstance(name, str) for name in names):
      raise ValueError(f"sweep axis {key!r}: an axis is a name, or a tuple of names (a joint axis)")
    if len(set(names)) != len(names):
      raise ValueError(f"joint sweep axis {key!r}: a name is repeated")
    for axis in names:
      if axis in integers:
        raise ValueError(
          f"sweep axis {axis!r}: the optimizer's {axis} is an integer that fixes the program's "
          f"shapes; bind it in the optimizer function instead (in a config: set optimizer.{axis}; "
          "one sweep per value)"
        )
      if axis not in BASE_AXES and keywords is not None and axis not in keywords:
        raise ValueError(
          f"unknown sweep axis {axis!r}: known axes are {', '.join([*BASE_AXES, *keywords])} "
          f"(the base axes, then the optimizer factory's parameters: give the factory a "
          f"parameter {axis} to sweep it)"
        )
      if axis in columns:
        raise ValueError(f"sweep axis {axis!r} is given twice: a name may be in one axis only")
    if not isinstance(values, list | tuple) or not values:
      raise ValueError(
        f"sweep axis {key!r}={values!r}: must be a non-empty list of values (a sampled axis: "
        "draw its values first with sweep.sample(axes, num_samples, seed))"
      )
    if isinstance(key, tuple):  # points drawn at random may repeat (a choice axis): kept
      for point in values:
        if not isinstance(point, list | tuple) or len(point) != len(names):
          raise ValueError(
            f"joint sweep axis {key!r}: {point!r} must be a tuple of {len(names)} values, one "
            "per name"
          )
      columns |= {axis: [point[i] for point in values] for i, axis in enumerate(names)}
    else:
      if len(set(values)) != len(values):
        raise ValueError(f"sweep axis {key!r}={list(values)}: a value is repeated")
      columns[key] = list(values)
  return columns


def _named(axes: dict[Any, Any], combination: tuple) -> dict[str, Any]:
  """A member's values by name: one entry of each axis, a joint axis's point split by name."""
  values = {}
  for key, value in zip(axes, combination, strict=True):
    values |= dict(zip(key, value, strict=True)) if isinstance(key, tuple) else {key: value}
  return values


def _check_base_axes(base: dict[str, Any], axes: dict[str, list], num_train: int) -> None:
  for value in axes.get("batch_size", [base["batch_size"]]):
    where = _where("batch_size", axes)
    validate.require_int("batch_size", value, where, low=1)
    if value > num_train:
      raise ValueError(
        f"{where}: batch_size={value} must be ≤ {num_train}, the number of training examples"
      )
  for value in axes.get("seed", [base["seed"]]):
    validate.require_int("seed", value, _where("seed", axes), low=0, high=train.MAX_SEED)
  for value in axes.get("init_scale", [base["init_scale"]]):
    validate.require_non_negative("init_scale", value, _where("init_scale", axes))


def _check_hyperparameters(
  optimizer: Callable[..., Any], fixed: dict[str, float], axes: dict[Any, list], names: list[str]
) -> None:
  """Calls the optimizer factory with each value of each hyperparameter axis in turn (each point
  of a joint axis, its hyperparameters together), the others at their first."""
  settings: dict[Any, list[dict[str, Any]]] = {k: [{k: v}] for k, v in fixed.items()}
  for key, values in axes.items():
    if isinstance(key, tuple):
      if held := [(i, name) for i, name in enumerate(key) if name in names]:
        settings[key] = [{name: point[i] for i, name in held} for point in values]
    elif key in names:
      settings[key] = [{key: value} for value in values]
  firsts = {k: v for options in settings.values() for k, v in options[0].items()}
  for key, options in settings.items():
    for name, value in (item for option in options for item in option.items()):
      if not validate.is_finite_number(value):
        where = f"sweep axis {name!r}" if key in axes else "sweep"
        raise ValueError(f"{where}: {name}={value!r} must be a finite number")
  # every axis at its first value: a failure there is no one axis's (a fixed hyperparameter, or
  # the first value of any axis), so it is not blamed on the axis tried first
  _call_factory(
    optimizer, firsts, "sweep, with " + ", ".join(f"{k}={v!r}" for k, v in firsts.items())
  )
  for key, options in settings.items():
    for option in options[1:]:
      where = "sweep" if key not in axes else f"sweep axis {key!r}"
      at = f" at {tuple(option.values())}" if isinstance(key, tuple) else ""
      _call_factory(optimizer, {**firsts, **option}, where + at)


def _check_traced(
  optimizer: Callable[..., Any], hyperparams: dict[str, float], axes: list[str], params: Any
) -> None:
  """The program passes every real hyperparameter to the factory as a traced number
  (`optax.inject_hyperparams`): a factory that needs one as a Python number (an integer that sets
  a shape or a loop length, a value it branches on) failed deep in tracing, with an error that
  named no hyperparameter. The factory and the transformation's `init` and `update` (a line
  search's extra arguments from the quadratic ½‖θ‖²) are traced here, nothing computed: first
  with every hyperparameter a number (a failure there is the transformation's on these
  parameters, e.g. their dtype), then with each traced in turn, a failure refused naming it."""

  def trace(params, **traced):
    tx = optimizer(**{**hyperparams, **traced})
    extra = {}
    if isinstance(tx, optax.GradientTransformationExtraArgs):  # a quadratic stands in for L
      value_fn = lambda p: 0.5 * optax.tree.norm(p, squared=True)  # noqa: E731
      extra = {"value": value_fn(params), "grad": params, "value_fn": value_fn}
    tx.update(params, tx.init(params), params, **extra)

  def first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}" if str(error) else ""

  try:
    jax.eval_shape(trace, params)
  except Exception as error:  # any failure of the user's factory or transformation
    shown = ", ".join(f"{k}={v!r}" for k, v in hyperparams.items())
    raise ValueError(
      f"sweep: the optimizer ({shown}) fails on the problem's parameters ({first_line(error)})"
    ) from error
  for name in hyperparams:
    try:
      scalar = jax.ShapeDtypeStruct((), jnp.float32)
      jax.eval_shape(lambda p, v, name=name: trace(p, **{name: v}), params, scalar)
    except Exception as error:  # fails only when this hyperparameter is traced
      where = f"sweep axis {name!r}" if name in axes else "sweep"
      raise ValueError(
        f"{where}: the optimizer factory fails when {name} is a traced number, as a sweep passes "
        f"it ({first_line(error)}): it takes {name} as a Python number, an integer that sets a "
        "shape or a loop length, or a value a Python `if` branches on (as in some of Optax's "
        "schedules: optim's schedules take traced values); bind it in the factory, one sweep "
        "per value"
      ) from error


def _call_factory(optimizer: Callable[..., Any], hyperparams: dict[str, Any], where: str) -> None:
  """Calls the optimizer factory with `hyperparams`: an error it raises, or anything but an
  Optax transformation returned, is refused naming `where`."""
  try:
    made = optimizer(**hyperparams)
  except (TypeError, ValueError) as error:
    raise ValueError(f"{where}: {error}") from None
  validate.require_transformation("the optimizer factory's result", made, where)


def batch_groups(batch_sizes: list[int], *, separate: bool = False) -> list[tuple[int, ...]]:
  """Batch sizes that share one compiled program: ascending, max/min ≤ `MAX_BATCH_RATIO`.

  Sizes are taken in increasing order and each joins the current group while it is at most
  `MAX_BATCH_RATIO` times the group's smallest; a member of a group computes the group's largest
  minibatch and masks the rest, so at most 3/4 of its work is wasted. `separate` gives one group
  per size: for a model with state (BatchNorm, dropout's RNG), whose masked loss taken one example
  at a time would change its batch statistics (§8.7.1) and its random draws, for a loss that is
  not a mean of per-example terms (`problem.Pure.loss_is_example_mean`), and for a sweep at equal
  epochs, whose batch sizes run different numbers of steps.
  """
  groups: list[list[int]] = []
  for size in sorted(set(batch_sizes)):
    if groups and not separate and size <= MAX_BATCH_RATIO * groups[-1][0]:
      groups[-1].append(size)
    else:
      groups.append([size])
  return [tuple(g) for g in groups]


def _where(axis: str, axes: dict) -> str:
  return f"sweep axis {axis!r}" if axis in axes else "sweep"


def plain(value: Any) -> Any:
  """A NumPy scalar (np.float32(0.1), a value of np.arange) as the Python number it holds, the
  points of a joint axis too, so that tables and config.json can be written."""
  if isinstance(value, tuple):
    return tuple(map(plain, value))
  return value.item() if isinstance(value, np.generic) else value
