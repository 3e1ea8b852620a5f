"""Experiment configs: load `configs/NAME.py`, apply `--set key=value` overrides, check values,
and build the config's `Problem`.

A config file defines `get_config() -> ml_collections.ConfigDict` (the Flax examples' layout).
Overrides name a field by its dotted path; the value is parsed as a Python literal (`0.1`, `[1, 2]`,
`True`) and falls back to a plain string. An unknown field or a value of the wrong type is refused
with a message that names the field, before anything is computed. `--set sweep.AXIS=[...]` adds a
sweep axis; setting a field that a sweep axis overrides (`learning_rate` under
`sweep.learning_rate`, `model.init_scale` under `sweep.init_scale`, `optimizer.b1` under
`sweep.b1`) is refused, naming both.

A config names its problem by `problem = "path/to/file.py:make_problem"` (relative to the config
file; `load_config` makes it absolute, so `config.json` records where it is) or
`"package.module:make_problem"`: a function of no arguments returning a `Problem`. Without a
`problem` field, `data`, `model` and `loss` name a built-in one (`problem.builtin`).
"""

import ast
import contextlib
import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_collections

from jaxopt_study import data as data_lib
from jaxopt_study import problem as problem_lib
from jaxopt_study import regularization

# sweep axis -> the config field it overrides (hyperparameter axes override optimizer.AXIS)
AXIS_FIELDS = {
  "learning_rate": "learning_rate",
  "batch_size": "batch_size",
  "seed": "seed",
  "init_scale": "model.init_scale",
}


class ConfigError(ValueError):
  """A config file, field or value that cannot be used; the message names the culprit."""


def load_config(path: str | Path) -> ml_collections.ConfigDict:
  """Imports `path` and returns its `get_config()`."""
  path = Path(path)
  if not path.is_file():
    raise ConfigError(f"config file {str(path)!r} does not exist")
  spec = importlib.util.spec_from_file_location(f"jaxopt_study_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  with _importable(path.resolve().parent):
    spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {str(path)!r} defines no get_config()")
  config = module.get_config()
  reference = config.get("problem", None) if isinstance(config, ml_collections.ConfigDict) else None
  absolute = _absolute(reference, path.resolve().parent) if isinstance(reference, str) else None
  if absolute is not None and absolute != reference:
    locked = config.is_locked
    config.unlock()
    config.problem = absolute
    if locked:
      config.lock()
  return config


def _absolute(reference: str, folder: Path) -> str:
  """A problem reference "file.py:function" with a relative file made absolute from `folder` (the
  config's folder; the working directory for `--set problem=...`), so that a run folder records
  the file wherever it is analyzed or resumed from; the reference itself otherwise."""
  file, _, function = reference.rpartition(":")
  if ".py:" not in reference or Path(file).is_absolute():
    return reference
  return f"{(folder / file).resolve()}:{function}"


@contextlib.contextmanager
def _importable(folder: Path) -> Iterator[None]:
  """Makes the modules of `folder` (the config's own `common.py`) importable while a config runs;
  a `common` module imported from another folder is set aside for that time."""
  previous = sys.modules.pop("common", None)
  sys.path.insert(0, str(folder))
  try:
    yield
  finally:
    sys.path.remove(str(folder))
    sys.modules.pop("common", None)
    if previous is not None:
      sys.modules["common"] = previous


def build_problem(config: ml_collections.ConfigDict) -> problem_lib.Problem:
  """The config's `Problem`: the user's (`config.problem`) or a built-in one (data, model, loss).

  The same config fields give the same `Problem` object within a process, so compiled programs
  are reused.

  Raises:
    ConfigError: naming the field, when the problem cannot be found or built.
  """
  if config.get("problem", None):
    return _user_problem(config.problem)
  for field in ("data", "model"):
    if field not in config:
      raise ConfigError(f"the config has neither 'problem' nor '{field}': name a problem")
  model = config.model.to_dict()
  model.pop("init_scale", None)
  if config.data.get("name") == "digits" and isinstance(model.get("augment"), dict):
    model["augment"] = _digits_augment(model["augment"], config.data)
  data = load_data(config)
  loss = config.get("loss", None) or "cross_entropy"
  key = (id(data), _frozen(model), loss)  # `load_data` caches data sets, so ids are stable
  if key not in _BUILTIN_PROBLEMS:
    options = dict(model)
    name = options.pop("name")
    try:
      _BUILTIN_PROBLEMS[key] = problem_lib.builtin(name, data, loss=loss, **options)
    except (TypeError, ValueError) as error:
      raise ConfigError(f"model {name!r}: {error}") from None
  return _BUILTIN_PROBLEMS[key]


# One `Problem` per data set, model and loss in a process, so that compiled programs are reused.
_BUILTIN_PROBLEMS: dict[tuple, problem_lib.Problem] = {}


def _user_problem(reference: str) -> problem_lib.Problem:
  if not isinstance(reference, str) or ":" not in reference:
    raise ConfigError(
      f"problem={reference!r}: expected 'path/to/file.py:function' or 'package.module:function'"
    )
  where, _, function = reference.rpartition(":")
  if where.endswith(".py"):
    path = Path(where)
    if not path.is_file():
      raise ConfigError(f"problem={reference!r}: file {where!r} does not exist")
    return _call_problem(reference, path.stat().st_mtime_ns)
  return _call_problem(reference, None)


@functools.cache
def _call_problem(reference: str, _mtime: int | None) -> problem_lib.Problem:
  """Imports and calls a problem function, once per reference (and file version)."""
  where, _, function = reference.rpartition(":")
  try:
    if where.endswith(".py"):
      spec = importlib.util.spec_from_file_location(
        f"jaxopt_study_problem_{Path(where).stem}", where
      )
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
    else:
      module = importlib.import_module(where)
  except ImportError as error:
    raise ConfigError(f"problem={reference!r}: cannot import {where!r}: {error}") from None
  make = getattr(module, function, None)
  if not callable(make):
    raise ConfigError(f"problem={reference!r}: {where} defines no function {function!r}")
  made = make()
  if not isinstance(made, problem_lib.Problem):
    raise ConfigError(
      f"problem={reference!r}: {function}() returned a {type(made).__name__}, not a Problem"
    )
  return made


def load_data(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  """`data.DATASETS[config.data.name]` with the config's options (a `key` from `config.seed`).

  Loaded once per process for each name and options (the arrays are immutable).
  """
  options = config.data.to_dict()
  name = options.pop("name")
  if name not in data_lib.DATASETS:
    raise ConfigError(f"data.name={name!r}: must be one of {sorted(data_lib.DATASETS)}")
  if "key" in inspect.signature(data_lib.DATASETS[name]).parameters:
    options["seed"] = config.seed
  return _load(name, _frozen(options))


@functools.cache
def _load(name: str, options: tuple[tuple[str, Any], ...]) -> data_lib.Dataset:
  options = dict(options)
  loader = data_lib.DATASETS[name]
  if "key" in inspect.signature(loader).parameters:
    options["key"] = jax.random.key(options.pop("seed"))
  try:
    return loader(**options)
  except TypeError as error:
    raise ConfigError(f"data {name!r}: {error}") from None


def _digits_augment(augment: dict[str, Any], data: ml_collections.ConfigDict) -> dict[str, Any]:
  """A model's `augment` block on the digits, which `data.load_digits` standardizes: unless the
  block says otherwise, `regularization.Augment` maps them back to pixels with the same split's
  statistics (`regularization.digits_standardization`) before shifting and rotating."""
  if "standardization" in augment:
    return augment
  split = {k: data[k] for k in ("test_fraction", "split_seed") if k in data}
  return augment | {"standardization": regularization.digits_standardization(**split)}


def _frozen(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
  """Options as a hashable, sorted tuple (lists become tuples, dicts nested tuples)."""
  return tuple(sorted((k, _hashable(v)) for k, v in options.items()))


def _hashable(value: Any) -> Any:
  if isinstance(value, dict):
    return _frozen(value)
  if isinstance(value, list | tuple):
    return tuple(_hashable(v) for v in value)
  return value


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: Sequence[str], optional: Sequence[str] = ()
) -> ml_collections.ConfigDict:
  """Returns a copy of `config` with each `key=value` of `overrides` applied. `optional`: the
  fields `--set` may add where the config file has none (a dotted key, or "block.*" for any
  field of a block), e.g. a sweep config's `l2_penalty`, or an optimizer's `b1`; the experiment's
  own check then judges them, before anything is compiled."""
  config = ml_collections.ConfigDict(config.to_dict())
  keys = []
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set steps=100")
    *parents, leaf = key.split(".")
    if parents == ["sweep"] and "sweep" in config:  # a new axis or new values of one
      _add_axis(config, key, text)
      keys.append(key)
      continue
    node = config
    for depth, part in enumerate(parents):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        where = ".".join(parents[: depth + 1])
        raise ConfigError(f"--set {key}: unknown config field {where!r}")
      node = node[part]
    if leaf not in node and not _may_add(key, optional):
      known = ", ".join(sorted(node.keys()))
      raise ConfigError(f"--set {key}: unknown config field {key!r} (known here: {known})")
    node[leaf] = _parse_value(key, text, node.get(leaf, None))
    if key == "problem" and isinstance(node[leaf], str):
      node[leaf] = _absolute(node[leaf], Path.cwd())
    keys.append(key)
  _refuse_overridden(config, keys)
  config.lock()
  return config


def _may_add(key: str, optional: Sequence[str]) -> bool:
  """Whether `key` is one of the `optional` fields (or a field of an `optional` "block.*")."""
  parent = key.rpartition(".")[0]
  return key in optional or (bool(parent) and f"{parent}.*" in optional)


def _has(config: ml_collections.ConfigDict, key: str) -> bool:
  node = config
  for part in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def _add_axis(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """`--set sweep.AXIS=[v1, v2]`: a new sweep axis (a non-empty list of numbers)."""
  try:
    values = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    values = None
  if not isinstance(values, list) or not values:
    raise ConfigError(f"--set {key}={text}: a sweep axis is a non-empty list, e.g. [0, 1, 2]")
  sweep = config.sweep
  if sweep is None or not isinstance(sweep, ml_collections.ConfigDict):
    config.sweep = ml_collections.ConfigDict()
    sweep = config.sweep
  sweep[key.split(".", 1)[1]] = values


def _refuse_overridden(config: ml_collections.ConfigDict, keys: list[str]) -> None:
  """Refuses `--set FIELD=...` where a sweep axis sets FIELD for every member."""
  sweep = config.get("sweep", None)
  if not isinstance(sweep, ml_collections.ConfigDict):
    return
  for axis in sweep.keys():
    field = AXIS_FIELDS.get(axis, f"optimizer.{axis}")
    if field in keys:
      raise ConfigError(
        f"--set {field}: the sweep axis sweep.{axis}={list(sweep[axis])} sets it for every "
        f"member; set --set sweep.{axis}=[...] instead"
      )


def _parse_value(key: str, text: str, current):
  """The value of `--set key=text`: a Python literal (else the text) of the field's current type;
  `None` for any field but a block (an optional field switched off: early_stopping=None), and any
  value for a field that is None in the config; the experiment's own check then judges it, before
  anything is compiled."""
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if value is None and not isinstance(current, ml_collections.ConfigDict):
    return None
  if current is None:
    return value
  if isinstance(current, bool) != isinstance(value, bool):
    raise ConfigError(f"--set {key}={text}: expected {type(current).__name__}, got {text!r}")
  if isinstance(current, float) and isinstance(value, int):
    value = float(value)
  if isinstance(current, ml_collections.ConfigDict) or (
    current is not None and not isinstance(value, type(current))
  ):
    raise ConfigError(
      f"--set {key}={text}: expected {type(current).__name__} like {current!r}, got {text!r}"
    )
  return value
