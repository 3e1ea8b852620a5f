"""Validators with one argument order, `require_*(name, value, where)`, for what a user passes.

Used by the optimizers' constructors, `train`, `sweep` and every experiment's config check
(`require_fields`). A bad value (a negative learning rate, a decay of 1.5) raises a `ValueError`
naming the argument, its value and where it was given, before anything is compiled, instead of
turning into NaN many steps later.

`optax.inject_hyperparams` calls the constructor again inside `jit` with the hyperparameters as
traced arrays; those values cannot be inspected, so every validator skips a `jax.core.Tracer`
(they were checked when the same constructor ran on the concrete values at `init`). Plain numbers
and concrete 0-d arrays are validated; a hyperparameter is a real scalar (not a list, an array of
several values, a complex number or a bool).
"""

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

Rule = Callable[[str, Any, str], None]  # rule(name, value, where) raises ValueError
_LARGEST = float(np.finfo(np.float32).max)  # "finite" means finite once cast to float32
_INT32_MAX = 2**31 - 1  # counts and steps are int32 in compiled code
MAX_SEED = 2**32 - 1  # jax.random.key keeps 32 bits of a seed: 2**32 would be seed 0 again


def is_real_number(value: Any) -> bool:
  """A real number, finite or not: a Python or NumPy scalar (np.float32 is not a Python float),
  not a bool."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
  """An integer: a Python or NumPy integer scalar (np.int64 is not a Python int), not a bool."""
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
  """A finite `is_real_number`; None, a string or a non-finite value is not. How tables of
  results tell a measured value from a missing or diverged one."""
  return is_real_number(value) and math.isfinite(value)


def _concrete(value: Any) -> np.ndarray | None:
  """The value as a numpy array, or None when it is traced (unknowable at construction)."""
  if isinstance(value, jax.core.Tracer):
    return None
  return np.asarray(value)


def _describe(value: Any) -> str:
  """A short rendering of a hyperparameter for an error message: `1.5`, not `Array(1.5, ...)`."""
  array = np.asarray(value)
  return repr(array.item()) if array.ndim == 0 else repr(array.tolist())


def _require(name: str, value: Any, where: str, holds: Callable[[np.ndarray], Any], what: str):
  """Raises `ValueError("{where}: {name}={value} must be {what}")` unless `holds(value)` is true."""
  if isinstance(value, (list, tuple)):  # np.asarray would make an array of them
    raise ValueError(f"{where}: {name}={value!r} must be a number, not a {type(value).__name__}")
  array = _concrete(value)
  if array is None:
    return
  if array.dtype == np.bool_ or not jnp.issubdtype(array.dtype, jnp.number):  # bfloat16 too
    raise ValueError(f"{where}: {name}={value!r} must be a number")
  if array.dtype.kind in "iu" and array.ndim == 0 and abs(int(array)) > _INT32_MAX:
    # JAX cannot pass an integer beyond int32 to a compiled function (without x64)
    raise ValueError(f"{where}: {name}={value!r} is an integer beyond int32: write {value}.0")
  if jnp.issubdtype(array.dtype, jnp.complexfloating):
    raise ValueError(f"{where}: {name}={value!r} must be a real number, not complex")
  if array.ndim != 0:
    raise ValueError(f"{where}: {name} has shape {array.shape}: it must be a number (a scalar)")
  if not np.all(holds(array)):  # NaN fails every comparison, so it is rejected too
    if np.isfinite(array) and abs(float(array)) > _LARGEST:
      what += f" (at most {_LARGEST:.3g}, float32's largest)"
    if array.dtype in (jnp.bfloat16, jnp.float16):  # e.g. b2 = 0.999, 1.0 in bfloat16
      what += (
        f"; it arrived in {array.dtype.name}, as optax.inject_hyperparams casts hyperparameters "
        "to the parameters' dtype: pass hyperparam_dtype=jnp.float32 to keep their value"
      )
    raise ValueError(f"{where}: {name}={_describe(value)} must be {what}")


def _finite(v: np.ndarray) -> np.ndarray:
  """|v| ≤ float32's largest: a hyperparameter of 1e300 becomes inf in float32 arithmetic (and
  an eps of inf turns √(r + ε)/√(s + ε) into NaN), so it is refused like inf itself."""
  return np.isfinite(v) & (np.abs(v.astype(np.float64)) <= _LARGEST)


def require_non_negative(name: str, value: Any, where: str) -> None:
  """Checks 0 ≤ value < ∞ (a learning rate, an eps, an additive increment κ), finite in float32."""
  _require(name, value, where, lambda v: _finite(v) & (v >= 0), "finite and >= 0")


def require_positive(name: str, value: Any, where: str) -> None:
  """Checks 0 < value < ∞, finite in float32."""
  _require(name, value, where, lambda v: _finite(v) & (v > 0), "finite and > 0")


def require_unit_interval(
  name: str,
  value: Any,
  where: str,
  *,
  include_zero: bool = True,
  include_one: bool = False,
) -> None:
  """Checks value ∈ [0, 1) by default (a decay or momentum); the ends are chosen by the flags.

  Args:
    name: the argument's name, as the caller spells it.
    value: the value to check; a traced value is skipped.
    where: the constructor's name, which starts the error message.
    include_zero: whether 0 is allowed (`(0, 1]` for a factor that multiplies a learning rate).
    include_one: whether 1 is allowed (`[0, 1]` for a fraction that may be total).

  Raises:
    ValueError: `"{where}: {name}={value} must be in [0, 1)"` (with the interval asked for).
  """
  interval = ("[" if include_zero else "(") + "0, 1" + ("]" if include_one else ")")

  def holds(v):
    above = v >= 0 if include_zero else v > 0
    below = v <= 1 if include_one else v < 1
    return above & below

  _require(name, value, where, holds, f"in {interval}")


def require_positive_int(name: str, value: Any, where: str) -> None:
  """Checks that value is an integer in [1, 2³¹ − 1] (a number of steps, an int32 in compiled
  code); a float such as 2.5 is refused."""
  require_int(name, value, where, low=1)
  array = _concrete(value)
  if array is not None and array.item() > _INT32_MAX:
    raise ValueError(f"{where}: {name}={value!r} must be an integer >= 1 and <= {_INT32_MAX}")


def require_int(
  name: str, value: Any, where: str, *, low: int | None = None, high: int | None = None
) -> None:
  """Checks that value is an integer (not a bool, not a float such as 2.0) in [low, high]."""
  array = _concrete(value)
  if array is None:
    return
  if array.ndim != 0 or not np.issubdtype(array.dtype, np.integer) or isinstance(value, bool):
    raise ValueError(f"{where}: {name}={value!r} must be an integer")
  if (low is not None and array.item() < low) or (high is not None and array.item() > high):
    bounds = f">= {low}" if high is None else f"in [{low if low is not None else '-inf'}, {high}]"
    raise ValueError(f"{where}: {name}={value!r} must be an integer {bounds}")


def require_ordered(
  low_name: str, low: Any, high_name: str, high: Any, where: str, *, strict: bool = False
) -> None:
  """Checks `low` ≤ `high` (`low` < `high` with `strict`), naming both; skipped where either is
  traced (see the module docstring)."""
  if _concrete(low) is None or _concrete(high) is None:
    return
  if strict and not low < high:
    raise ValueError(f"{where}: {low_name}={low!r} must be < {high_name}={high!r}")
  if not strict and not low <= high:
    raise ValueError(f"{where}: {high_name}={high!r} must be >= {low_name}={low!r}")


def require_bool(name: str, value: Any, where: str) -> None:
  """Checks that value is True or False (not 1, 0 or a string)."""
  if not isinstance(value, bool | np.bool_):
    raise ValueError(f"{where}: {name}={value!r} must be True or False")


def require_choice(name: str, value: Any, where: str, choices: Iterable[Any]) -> None:
  """Checks that value is one of `choices`."""
  choices = list(choices)
  # an array compared with a string has no single truth value: it is simply not a choice
  if isinstance(value, (np.ndarray, jax.Array)) or value not in choices:
    raise ValueError(f"{where}: {name}={value!r} is not one of {choices}")


def require_sequence(
  name: str,
  value: Any,
  where: str,
  each: Rule | None = None,
  *,
  min_length: int = 1,
  distinct: bool = False,
) -> None:
  """Checks a list or tuple of at least `min_length` items, each passing `each(name[i], item,
  where)` when given (`each=require_positive` for a grid of learning rates), and with `distinct`
  no item twice."""
  if isinstance(value, str) or not isinstance(value, Sequence) or len(value) < min_length:
    raise ValueError(f"{where}: {name}={value!r} must be a list of at least {min_length} item(s)")
  if each is not None:
    for i, item in enumerate(value):
      each(f"{name}[{i}]", item, where)
  if distinct and (repeated := [v for i, v in enumerate(value) if v in value[:i]]):
    raise ValueError(f"{where}: {name}={list(value)!r} repeats {repeated[0]!r}: give each once")


def seeds(min_length: int = 1) -> Rule:
  """A rule for a config's list of seeds: at least `min_length`, each an integer in
  [0, MAX_SEED], none twice (a repeated seed would count one run as two and shrink an error bar
  over seeds that it does not have)."""
  return functools.partial(
    require_sequence,
    each=functools.partial(require_int, low=0, high=MAX_SEED),
    min_length=min_length,
    distinct=True,
  )


def each(rule: Rule, **options: Any) -> Rule:
  """`require_sequence` with `rule(name, value, where, **options)` applied to every item."""

  def check(name: str, value: Any, where: str) -> None:
    require_sequence(name, value, where, functools.partial(rule, **options) if options else rule)

  return check


def require_fields(config: Mapping[str, Any], where: str, rules: Mapping[str, Rule]) -> None:
  """Applies `rules[field](field, config[field], where)` for every field (dotted names such as
  `model.width` reach into nested configs); a missing field is refused by name too."""
  for field, rule in rules.items():
    value: Any = config
    for part in field.split("."):
      if not isinstance(value, Mapping | ml_collections.ConfigDict) or part not in value:
        raise ValueError(f"{where}: the config has no field {field!r}")
      value = value[part]
    rule(field, value, where)


def require_momentum(value: Any, where: str) -> None:
  """Checks a momentum: a schedule (any callable) passes, a number must be in [0, 1)."""
  if not callable(value):
    require_unit_interval("momentum", value, where)


def require_transformation(name: str, value: Any, where: str) -> None:
  """Refuses anything but an Optax transformation (an object with `init` and `update`), saying
  so of a factory passed uncalled (``optim.adam`` for ``optim.adam(1e-3)``)."""
  if callable(getattr(value, "init", None)) and callable(getattr(value, "update", None)):
    return
  if callable(value) and hasattr(value, "__qualname__"):
    found = f"the function {value.__qualname__}, which builds one: call it"
  else:
    found = f"{value!r} ({type(value).__name__})"
  raise TypeError(
    f"{where}: {name} must be an Optax transformation (with init and update), such as "
    f"optim.adam(1e-3) or an optax.chain; got {found}"
  )


def require_learning_rate(value: Any, where: str, name: str = "learning_rate") -> None:
  """Checks a learning rate: a schedule (any callable) passes, a number must be finite and ≥ 0."""
  if callable(value):
    return
  require_non_negative(name, value, where)
