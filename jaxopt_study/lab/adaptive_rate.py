"""Schaul et al. (2014)'s comparison, as `optimizers` and `optimizer_comparison` judge it: the
best method of the adaptive-learning-rate family of §8.5 against the best of the others, paired
by seed.

`ADAPTIVE_RATE` names the family (AdaGrad, RMSProp and its Nesterov variant, Adam, with Adadelta
and delta-bar-delta), Schaul et al.'s robust group; `adaptive_over_other` takes each method's
final losses over seeds at its best grid point and returns the two best methods and the ratio
of their final losses with its standard error and degrees of freedom; `judged_on_fresh_seeds`
judges that pick on the two winners' runs from seeds the selection never saw.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxopt_study.lab import verdicts

ADAPTIVE_RATE = ("adagrad", "rmsprop", "rmsprop_nesterov", "adam", "adadelta", "delta_bar_delta")


def adaptive_over_other(losses_by_seed: Mapping[str, Sequence[float]]) -> dict[str, Any]:
  """The best adaptive-rate method against the best other method.

  Args:
    losses_by_seed: method -> its final losses at its best grid point, in seed order (the same
      seeds for every method, so that the i-th losses of two methods pair).

  Returns:
    `best_adaptive_rate_optimizer` and `best_other_optimizer` (the lowest median final loss of
    each group; None for an empty group), `adaptive_over_other_final_loss` (the geometric mean
    over seeds of the per-seed ratio adaptive / other, `verdicts.paired_ratio`: below 1 when the
    adaptive-rate method ends lower), `adaptive_over_other_final_loss_se` (its delta-method
    standard error, ratio · s/√n of the log ratios; None for one seed) and
    `adaptive_over_other_final_loss_dof` (its degrees of freedom, seeds − 1, which set a
    criterion's t_{0.975, dof} margin; None for one seed); all None where a group is empty or a
    loss is not finite.
  """
  medians = {k: float(np.median(v)) for k, v in losses_by_seed.items()}
  finite = [k for k, m in medians.items() if np.isfinite(m)]
  adaptive = min((k for k in finite if k in ADAPTIVE_RATE), key=medians.get, default=None)
  other = min((k for k in finite if k not in ADAPTIVE_RATE), key=medians.get, default=None)
  ratio, se, dof = (
    _paired(losses_by_seed[adaptive], losses_by_seed[other]) if adaptive and other else _NONE
  )
  return {
    "best_adaptive_rate_optimizer": adaptive,
    "best_other_optimizer": other,
    "adaptive_over_other_final_loss": ratio,
    "adaptive_over_other_final_loss_se": se,
    "adaptive_over_other_final_loss_dof": dof,
  }


_NONE = (None, None, None)


def _paired(
  numerator: Sequence[float], denominator: Sequence[float]
) -> tuple[float | None, float | None, int | None]:
  """`verdicts.paired_ratio` and the degrees of freedom of its error: the seeds it pairs, less
  one (None where it has no ratio or no error)."""
  ratio, se = verdicts.paired_ratio(numerator, denominator)
  return ratio, se, None if se is None else verdicts.dof(numerator)


def judged_on_fresh_seeds(selected: Mapping[str, Any], rows: Sequence[Mapping]) -> dict[str, Any]:
  """`adaptive_over_other`'s pick (`selected`, made on the selection seeds) judged on the two
  winners' runs from fresh seeds.

  Picked and judged on the same seeds, the larger family would be favoured: it has more draws to
  pick the luckiest from. The selection seeds' ratio is kept beside the judged one.

  Args:
    selected: `adaptive_over_other`'s result on the selection seeds.
    rows: the runs from the fresh seeds (`optimizer`, `seed`, `final_train_loss`, `diverged`);
      a diverged run counts as +inf.

  Returns:
    `selected`, with its ratio, error and degrees of freedom renamed
    `adaptive_over_other_final_loss_on_selection_seeds` (and `..._se`, `..._dof`), and
    `adaptive_over_other_final_loss` (± `..._se`, with `..._dof`, the fresh seeds less one) the
    geometric mean over the fresh seeds of the per-seed ratio (None where a winner has no fresh
    run or a loss is not finite).
  """
  fresh: dict[str, dict[int, float]] = {}
  for row in rows:
    loss = math.inf if row["diverged"] else row["final_train_loss"]
    fresh.setdefault(row["optimizer"], {})[row["seed"]] = loss
  adaptive, other = selected["best_adaptive_rate_optimizer"], selected["best_other_optimizer"]
  ratio, se, dof = _NONE
  if adaptive in fresh and other in fresh:  # paired by seed, the seeds both winners ran
    ratio, se, dof = verdicts.paired_ratio_by_seed(fresh[adaptive], fresh[other])
  key = "adaptive_over_other_final_loss"
  return {
    **selected,
    f"{key}_on_selection_seeds": selected[key],
    f"{key}_on_selection_seeds_se": selected[f"{key}_se"],
    f"{key}_on_selection_seeds_dof": selected[f"{key}_dof"],
    key: ratio,
    f"{key}_se": se,
    f"{key}_dof": dof,
  }
