"""Error bars and composite criteria for an experiment's claims: `mean_and_std(values)`, the mean
and the sample standard deviation over seeds, as a dict for `summary.json`; `all_of(criteria)`,
one criterion for a claim of several parts (the verdict words are `experiment.verdict`'s)."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxopt_study.experiment import Criterion


def mean_and_std(values: Sequence[float]) -> dict[str, float | int]:
  """{"mean", "std" (sample standard deviation, ddof = 1; 0 for one value), "n"} of `values`."""
  array = np.asarray(values, np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f"mean_and_std: values must be a non-empty list of numbers, got {values!r}")
  std = float(array.std(ddof=1)) if array.size > 1 else 0.0
  return {"mean": float(array.mean()), "std": std, "n": int(array.size)}


def all_of(*criteria: Criterion) -> Criterion:
  """A criterion for a claim of several parts (e.g. "≪ 1 and falling with depth"): it holds when
  every part holds, fails when any part fails, and cannot decide otherwise (the rule of
  `experiment.above` for a dict of per-setting values)."""
  if not criteria or not all(callable(c) for c in criteria):
    raise TypeError(f"all_of: criteria must be one or more criteria, got {criteria!r}")

  def judge(summary: Mapping[str, Any]) -> bool | None:
    judged = [criterion(summary) for criterion in criteria]
    if any(j is not None and not j for j in judged):
      return False
    return None if any(j is None for j in judged) else True

  return judge
