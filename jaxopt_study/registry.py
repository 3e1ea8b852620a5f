"""Every experiment of the repository, in the order of chapter 8, found by name.

The experiments live in the repository's top-level `experiments/` (one `Experiment` subclass in
`experiments/NAME.py`) and their configs in `configs/` (`NAME.py`, and `NAME_quick.py` for the
tour and the tests). Both are looked for, in this order: `$JAXOPT_STUDY_HOME` (a checkout of the
repository), the checkout this package runs from (an editable install), the working directory;
a non-editable install run from elsewhere is told where it looked.

A new experiment is added to `CHAPTER_ORDER` at its section: the tour, the tests and the CLI
(`jaxopt-study run NAME`, `jaxopt-study list`) take it from there.
"""

import importlib.util
import inspect
import os
import sys
from pathlib import Path

import ml_collections

from jaxopt_study import own_problem
from jaxopt_study.config import ConfigError
from jaxopt_study.experiment import Experiment

# Chapter 8 of Goodfellow, Bengio & Courville, Deep Learning (2016), section by section.
CHAPTER_ORDER = (
  "risk_vs_empirical_risk",  # 8.1.1
  "surrogate_early_stopping",  # 8.1.2
  "minibatch_noise",  # 8.1.3
  "sharp_minima",  # 8.1.3
  "hessian_outliers",  # 8.2
  "fig8_1_gradient_norm",  # 8.2.1
  "edge_of_stability",  # 8.2.1
  "symmetry_and_local_minima",  # 8.2.2
  "local_and_global_minima_1d",  # 8.2.2
  "fig8_2_interpolation",  # 8.2.3
  "saddle_proliferation",  # 8.2.3
  "saddles_newton",  # 8.2.3
  "cliffs_and_clipping",  # 8.2.4
  "long_term_dependencies",  # 8.2.5
  "local_vs_global",  # 8.2.7
  "lr_schedules",  # 8.3.1
  "momentum_schedules",  # 8.3.2
  "deep_linear_dynamics",  # 8.4
  "init_variance_propagation",  # 8.4
  "failure_modes",  # 8.4
  "sweep_init_batch",  # 8.4
  "adaptive_vs_sgd",  # 8.5.4
  "optimizer_comparison",  # 8.5.4
  "optimizers",  # 8.5.4
  "batchnorm_spectrum",  # 8.7.1
  "batchnorm_training",  # 8.7.1
  "coordinate_descent",  # 8.7.2
  "polyak_averaging",  # 8.7.3
  "ensembles",  # 8.7.3 (lecture notes: model ensembles)
  "pretraining",  # 8.7.4
  "transfer",  # 8.7.4 (lecture notes: transfer learning)
  "model_design",  # 8.7.5
  "continuation_curriculum",  # 8.7.6
  "search",  # lecture notes: hyperparameter search
  "regularization",  # lecture notes: regularization (ch. 7)
)

HOME_VARIABLE = "JAXOPT_STUDY_HOME"
_CHECKOUT = Path(__file__).resolve().parents[1]
_LOADED: dict[Path, Experiment] = {}


def candidates(extra: tuple[Path, ...] = ()) -> list[Path]:
  """Folders that may hold the repository's `experiments/` and `configs/`, in search order."""
  home = [Path(os.environ[HOME_VARIABLE])] if os.environ.get(HOME_VARIABLE) else []
  return [*extra, *home, _CHECKOUT, Path.cwd()]


def folder(kind: str, extra: tuple[Path, ...] = ()) -> Path:
  """The first `candidates()/kind` that exists (`kind` is "experiments" or "configs").

  Raises:
    ConfigError: none exists; the message lists where it looked and how to point at a checkout.
  """
  places = [place / kind for place in candidates(extra)]
  for place in places:
    if place.is_dir():
      return place
  raise ConfigError(
    f"no {kind}/ folder in {', '.join(map(str, places))}: run from a checkout of the repository "
    f"or set {HOME_VARIABLE} to one"
  )


def load(name: str, extra: tuple[Path, ...] = ()) -> Experiment:
  """The experiment `experiments/NAME.py` (its one `Experiment` subclass, instantiated).

  Raises:
    ConfigError: no such file where it looked, or the file defines no single experiment.
  """
  places = [place / "experiments" / f"{name}.py" for place in candidates(extra)]
  path = next((p for p in places if p.is_file()), None)
  if path is None:
    known = f"; known: {', '.join(CHAPTER_ORDER)}" if name not in CHAPTER_ORDER else ""
    raise ConfigError(
      f"experiment={name!r}: no file in {', '.join(map(str, places))}{known} (set "
      f"{HOME_VARIABLE} to a checkout of the repository)"
    )
  path = path.resolve()
  if path not in _LOADED:
    spec = importlib.util.spec_from_file_location(f"jaxopt_study_experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module.__name__] = module  # importable by name: pickling, tests of its functions
    spec.loader.exec_module(module)
    found = [
      cls
      for cls in vars(module).values()
      if inspect.isclass(cls) and issubclass(cls, Experiment) and cls.__module__ == module.__name__
    ]
    if len(found) != 1:
      raise ConfigError(f"{path}: defines {len(found)} Experiment subclasses, not one")
    _LOADED[path] = found[0]()
  return _LOADED[path]


def config_path(given: str) -> Path:
  """The config a command line names: a file path as given, or an experiment's name (`NAME` or
  `NAME_quick`) as `configs/NAME.py` of the repository (`folder`).

  Raises:
    ConfigError: neither a file nor a config of the repository; the message lists the names.
  """
  path = Path(given)
  if path.is_file() or path.suffix == ".py" or len(path.parts) > 1:
    return path
  configs = folder("configs")
  named = configs / f"{given}.py"
  if not named.is_file():
    raise ConfigError(
      f"{given!r} is neither a config file nor an experiment of {configs}; experiments: "
      f"{', '.join(CHAPTER_ORDER)} (add _quick for the quick config)"
    )
  return named


def for_config(config: ml_collections.ConfigDict, config_path: Path) -> Experiment:
  """The experiment a config names (`experiment = "NAME"`), looked for first in the repository
  that holds the config; without the field, the sweep of the config's own problem."""
  if "experiment" not in config:
    return own_problem.OwnProblem()
  return load(config.experiment, tuple(Path(config_path).resolve().parents))
