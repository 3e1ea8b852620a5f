"""What the training-protocol experiments on scikit-learn's digits share: the data of a config's
`data` block, MLPs drawn for a list of seeds and stacked for `jax.vmap`, and one figure per
training metric.

Used by `surrogate_early_stopping` (§8.1.2), `minibatch_noise` (§8.1.3), `pretraining` (§8.7.4)
and `continuation_curriculum` (§8.7.6).
"""

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from jaxopt_study import data as data_lib
from jaxopt_study import models, report, validate

NUM_FEATURES, NUM_CLASSES = 64, 10  # 8×8 pixels, 10 classes

# The `FIELDS` rule of a config's `data.name`: these experiments run on the digits only.
DIGITS = functools.partial(validate.require_choice, choices=["digits"])

Curves = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def load(data: ml_collections.ConfigDict) -> data_lib.Dataset:
  """The digits split of a config's `data` block (`test_fraction`, `split_seed`)."""
  return data_lib.load_digits(data.test_fraction, data.split_seed)


def mlp(seed: int, name: str = "mlp", **options) -> models.FunctionalModel:
  """`models.build_model(name, 64, 10, seed=seed, **options)` for the digits, in functional form."""
  return models.functional(
    models.build_model(name, NUM_FEATURES, NUM_CLASSES, seed=seed, **options)
  )


def mlps(seeds: Sequence[int], **options) -> tuple[models.FunctionalModel, nnx.State]:
  """One `mlp` per seed: the first seed's model (its `apply` and `model_state` serve every seed)
  and the parameters of all, stacked along a leading axis for `jax.vmap`. A seed listed twice is
  the same draw twice."""
  by_seed = {seed: mlp(seed, **options) for seed in dict.fromkeys(seeds)}
  params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[by_seed[s].params for s in seeds])
  return by_seed[seeds[0]], params


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
