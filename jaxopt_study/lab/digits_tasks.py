"""What the experiments on scikit-learn's digits share: the data of a config's `data` block, the
config's model drawn from a seed (`mlp(seed, **config.model)`; the one place that turns a model
block into a network), MLPs drawn for a list of seeds and stacked for `jax.vmap`, the training
NLL as a function of the parameters, and one figure per training metric.
"""

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, report, validate

NUM_FEATURES, NUM_CLASSES = 64, 10  # 8×8 pixels, 10 classes

# The `FIELDS` rule of a config's `data.name`: these experiments run on the digits only.
DIGITS = functools.partial(validate.require_choice, choices=["digits"])

Curves = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def load(data: ml_collections.ConfigDict, dtype: Any = np.float32) -> data_lib.Dataset:
  """The digits split of a config's `data` block (`test_fraction`, `split_seed`)."""
  return data_lib.load_digits(data.test_fraction, data.split_seed, dtype)


def mlp(seed: int, name: str = "mlp", **options) -> models.FunctionalModel:
  """`models.build_model(name, 64, 10, seed=seed, **options)` for the digits, in functional form."""
  return models.functional(
    models.build_model(name, NUM_FEATURES, NUM_CLASSES, seed=seed, **options)
  )


def nll(
  model: models.FunctionalModel, model_state: Any = None
) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
  """``loss_fn(params, x, y)``: the mean NLL (§8.1.2) in training mode (BatchNorm on the
  statistics of (x, y), the objective the minibatches estimate, §8.7.1), with `model_state`
  (default: the model's own), for the Hessian tools."""
  state = model.model_state if model_state is None else model_state

  def loss_fn(params, x, y):
    logits, _ = model.apply(params, state, x, True)
    return losses.softmax_cross_entropy(logits, y)

  return loss_fn


def mlps(seeds: Sequence[int], **options) -> tuple[models.FunctionalModel, nnx.State]:
  """One `mlp` per seed: the first seed's model (its `apply` and `model_state` serve every seed)
  and the parameters of all, stacked along a leading axis for `jax.vmap`. A seed listed twice is
  the same draw twice."""
  by_seed = {seed: mlp(seed, **options) for seed in dict.fromkeys(seeds)}
  return by_seed[seeds[0]], stack([by_seed[s].params for s in seeds])


def stack(trees: Sequence[Any]) -> Any:
  """Pytrees of one structure stacked along a new leading axis (`landscape.select` takes one
  back)."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def metric_figures(
  out_dir: Path,
  metrics: Sequence[tuple[str, str, bool]],
  curves_of: Callable[[str], Curves],
  *,
  file: str,
  title: str,
  xlabel: str = "step",
) -> list[Path]:
  """One line plot per (metric, ylabel, logy) of `metrics`, the lines `curves_of(metric)`, saved
  as `out_dir / file.format(metric=metric)` and titled `title.format(metric=metric)`."""
  return [
    report.line_plot(
      curves_of(metric),
      out_dir / file.format(metric=metric),
      title=title.format(metric=metric),
      xlabel=xlabel,
      ylabel=ylabel,
      logy=logy,
    )
    for metric, ylabel, logy in metrics
  ]
