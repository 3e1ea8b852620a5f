"""Outliers and bulk of a Hessian spectrum (Sagun et al. 2017; Papyan 2019).

The Hessian of a trained classifier has a bulk of eigenvalues near zero and a few large outliers,
about one per class (Sagun, Evci, Güney, Dauphin & Bottou 2017, §3; Papyan 2019). Counting the
outliers needs a rule; the one here is the eigengap heuristic, fixed in advance of any
measurement: the outliers are the eigenvalues above the largest ratio λ_k / λ_{k+1} between
consecutive eigenvalues among the largest `search` + 1 (a ratio, since the outliers and the bulk
live on different scales).
"""

from typing import NamedTuple

import numpy as np


class Outliers(NamedTuple):
  """The outliers of a spectrum by the largest eigengap (see `count_outliers`)."""

  count: int  # k, the number of outliers
  gap_ratio: float  # λ_k / λ_{k+1}, the largest ratio found
  bulk_edge: float  # λ_{k+1}, the largest eigenvalue of the bulk


def count_outliers(eigenvalues: np.ndarray, search: int = 50) -> Outliers:
  """The outliers of `eigenvalues` by the largest ratio between consecutive eigenvalues.

  With λ₁ ≥ λ₂ ≥ … the eigenvalues in decreasing order, k = argmax_{1 ≤ k ≤ search} λ_k / λ_{k+1}:
  λ₁ … λ_k are the outliers and λ_{k+1} is the edge of the bulk.

  Args:
    eigenvalues: the spectrum, in any order.
    search: the largest number of outliers considered.

  Returns:
    `Outliers(count, gap_ratio, bulk_edge)`.

  Raises:
    ValueError: fewer than `search` + 1 positive eigenvalues (the ratios would be undefined).
  """
  if int(search) != search or search < 1:
    raise ValueError(f"search={search!r}: must be an integer ≥ 1")
  top = np.sort(np.asarray(eigenvalues, float))[::-1][: search + 1]
  if top.size < search + 1 or top[-1] <= 0:
    raise ValueError(
      f"search={search}: needs at least {search + 1} positive eigenvalues, the largest "
      f"{search + 1} are {top.tolist()}"
    )
  ratios = top[:-1] / top[1:]
  k = int(np.argmax(ratios)) + 1
  return Outliers(count=k, gap_ratio=float(ratios[k - 1]), bulk_edge=float(top[k]))


def fraction_near_zero(eigenvalues: np.ndarray, relative: float) -> float:
  """The fraction of eigenvalues with |λ| ≤ relative · max|λ| (the bulk near zero)."""
  if not 0 < relative < 1:
    raise ValueError(f"relative={relative!r}: must lie strictly between 0 and 1")
  values = np.abs(np.asarray(eigenvalues, float))
  return float(np.mean(values <= relative * values.max()))
