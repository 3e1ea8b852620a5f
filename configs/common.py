"""Config blocks the experiments' configs share, so a config states only what differs.

`from common import digits, mlp, quick` works in any config: `jaxopt_study.config.load_config`
runs a config with its own folder importable (a config copied elsewhere with this file beside it
works the same).
"""

from pathlib import Path
from typing import Any

import ml_collections

from jaxopt_study.config import load_config


def digits(test_fraction: float = 0.25, split_seed: int = 0) -> ml_collections.ConfigDict:
  """scikit-learn's 8×8 digits, split into training and held-out sets."""
  return ml_collections.ConfigDict(
    {"name": "digits", "test_fraction": test_fraction, "split_seed": split_seed}
  )


def mlp(
  width: int = 64,
  depth: int = 2,
  activation: str = "tanh",
  batchnorm: bool = False,
  init: str = "glorot_uniform",
  init_scale: float = 1.0,
  **more: Any,
) -> ml_collections.ConfigDict:
  """The built-in MLP (`models.MLP`): `depth` hidden layers of `width` units."""
  return ml_collections.ConfigDict(
    {
      "name": "mlp",
      "width": width,
      "depth": depth,
      "activation": activation,
      "batchnorm": batchnorm,
      "init": init,
      "init_scale": init_scale,
      **more,
    }
  )


def quick(quick_file: str, changes: dict[str, Any]) -> ml_collections.ConfigDict:
  """The full config beside `NAME_quick.py` (`NAME.py`) with `changes` applied and locked;
  a dotted key such as "model.width" sets a nested field."""
  path = Path(quick_file)
  config = load_config(path.with_name(path.name.removesuffix("_quick.py") + ".py"))
  config.unlock()
  for key, value in changes.items():
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  config.lock()
  return config
