"""Experiment configs: load `configs/NAME.py`, apply `--set key=value` overrides, check values.

A config file defines `get_config() -> ml_collections.ConfigDict` (the Flax examples' layout).
Overrides name a field by its dotted path; the value is parsed as a Python literal (`0.1`, `[1, 2]`,
`True`) and falls back to a plain string. An unknown field or a value of the wrong type is refused
with a message that names the field, before anything is computed.
"""

import ast
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import ml_collections


class ConfigError(ValueError):
  """A config file, field or value that cannot be used; the message names the culprit."""


def load_config(path: str | Path) -> ml_collections.ConfigDict:
  """Imports `path` and returns its `get_config()`."""
  path = Path(path)
  if not path.is_file():
    raise ConfigError(f"config file {str(path)!r} does not exist")
  spec = importlib.util.spec_from_file_location(f"jaxopt_study_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {str(path)!r} defines no get_config()")
  return module.get_config()


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: Sequence[str]
) -> ml_collections.ConfigDict:
  """Returns a copy of `config` with each `key=value` of `overrides` applied."""
  config = ml_collections.ConfigDict(config.to_dict())
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set steps=100")
    *parents, leaf = key.split(".")
    node = config
    for depth, part in enumerate(parents):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        where = ".".join(parents[: depth + 1])
        raise ConfigError(f"--set {key}: unknown config field {where!r}")
      node = node[part]
    if leaf not in node:
      known = ", ".join(sorted(node.keys()))
      raise ConfigError(f"--set {key}: unknown config field {key!r} (known here: {known})")
    node[leaf] = _parse_value(key, text, node[leaf])
  config.lock()
  return config


def _parse_value(key: str, text: str, current):
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
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
