"""Error bars for an experiment's claims: `mean_and_std(values)`, the mean and the sample standard
deviation over seeds, as a dict for `summary.json`; `mean_and_standard_error(values)`, the mean
and its standard error, the pair a criterion's `standard_error=` judges (`standard_error(values)`,
the error alone; `dof(values)`, the degrees of freedom a criterion's margin takes);
`paired_ratio(numerator, denominator)`, the geometric mean of per-seed ratios and its error
(`paired_ratio_by_seed` for {seed: value} maps, with the error's degrees of freedom; `ratio`, one
seed's); `geometric_mean(values)`, of losses over seeds; `jackknife_standard_error(values)`, of
a statistic from its leave-one-seed-out values (one that is no mean over seeds)."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def mean_and_std(values: Sequence[float]) -> dict[str, float | int]:
  """{"mean", "std" (sample standard deviation, ddof = 1; 0 for one value), "n"} of `values`."""
  array = np.asarray(values, np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f"mean_and_std: values must be a non-empty list of numbers, got {values!r}")
  std = float(array.std(ddof=1)) if array.size > 1 else 0.0
  return {"mean": float(array.mean()), "std": std, "n": int(array.size)}


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float | None]:
  """The mean over seeds and its standard error s/√n (None for one seed; (NaN, None) for none,
  which a criterion reads as undecided).

  Raises:
    ValueError: values that are not one number per seed (a table of them would be averaged
      whole, flattened).
  """
  array = np.asarray(values, float)
  if array.ndim != 1:
    raise ValueError(
      f"mean_and_standard_error: values must be a list of numbers, one per seed; got shape "
      f"{array.shape}"
    )
  if array.size == 0:
    return float("nan"), None
  if array.size < 2:
    return float(array.mean()), None
  return float(array.mean()), float(array.std(ddof=1) / np.sqrt(array.size))


def dof(values: Sequence[Any]) -> int | None:
  """The degrees of freedom of `mean_and_standard_error(values)` or `paired_ratio(values, ...)`:
  one less than the number of values (None below two, where there is no standard error). A
  summary keeps it beside the error ("gain_se" -> "gain_dof"), where `experiment.above` and
  `below` read it to widen their margin to t_{0.975, dof} standard errors."""
  return len(values) - 1 if len(values) > 1 else None


def standard_error(values: Sequence[float]) -> float | None:
  """The standard error s/√n of the mean over seeds (None for one seed or none: no error bar, which
  a criterion reads as undecided)."""
  return mean_and_standard_error(values)[1]


def jackknife_standard_error(values: Sequence[float | None]) -> float | None:
  """√((n − 1)/n · Σᵢ (vᵢ − mean v)²) of n leave-one-out values (Efron & Tibshirani 1993,
  ch. 11); None with fewer than two or with one missing (a seed left out leaves no ρ)."""
  if len(values) < 2 or any(v is None for v in values):
    return None
  array = np.asarray(values, float)
  return float(np.sqrt((array.size - 1) / array.size * np.sum((array - array.mean()) ** 2)))


def geometric_mean(values: Sequence[float]) -> float:
  """exp(mean log) of positive values over seeds; NaN if one is not finite or not positive (a
  diverged seed: no mean of the others, which would keep only the seeds that went one way)."""
  array = np.asarray(values, float)
  if not np.all(np.isfinite(array) & (array > 0)):
    return float("nan")
  return float(np.exp(np.mean(np.log(array))))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
  """One seed's numerator / denominator, or None where either is missing (None), not finite or
  not positive: the pairs `paired_ratio` takes no ratio of (a loss that underflowed to 0)."""
  pair = np.asarray([numerator, denominator], float)  # None reads as NaN
  return float(pair[0] / pair[1]) if np.all(np.isfinite(pair) & (pair > 0)) else None


def paired_ratio(
  numerator: Sequence[float | None], denominator: Sequence[float | None]
) -> tuple[float | None, float | None]:
  """The geometric mean over seeds of numeratorᵢ / denominatorᵢ (two measurements of seed i,
  e.g. without and with BatchNorm from one initialization) and its standard error by the delta
  method on logs, ratio · s/√n of the log ratios (None for one seed); (None, None) when a value is
  missing (None), not finite or not positive, where no ratio can be taken."""
  pairs = np.asarray(list(zip(numerator, denominator, strict=True)), float)  # None reads as NaN
  if not pairs.size or not np.all(np.isfinite(pairs) & (pairs > 0)):
    return None, None
  mean_log, se_log = mean_and_standard_error(np.log(pairs[:, 0] / pairs[:, 1]))
  ratio = float(np.exp(mean_log))
  return ratio, None if se_log is None else ratio * se_log


def paired_ratio_by_seed(
  numerator: Mapping[int, float | None], denominator: Mapping[int, float | None]
) -> tuple[float | None, float | None, int | None]:
  """`paired_ratio` of two {seed: value} maps over the seeds both hold, in seed order, and the
  degrees of freedom of its error, those seeds less one ((None, None, None) when they share none;
  the degrees of freedom are None wherever the error is)."""
  seeds = sorted(set(numerator) & set(denominator))
  ratio, se = paired_ratio([numerator[s] for s in seeds], [denominator[s] for s in seeds])
  return ratio, se, None if se is None else dof(seeds)
