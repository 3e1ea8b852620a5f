"""Schaul et al. (2014)'s comparison, as `optimizers` and `optimizer_comparison` judge it: the
best method of the adaptive-learning-rate family of §8.5 against the best of the others, paired
by seed.

`ADAPTIVE_RATE` names the family (AdaGrad, RMSProp and its Nesterov variant, Adam, with Adadelta
and delta-bar-delta), Schaul et al.'s robust group; `adaptive_over_other` takes each method's
final losses over seeds at its best grid point and returns the two best methods and the ratio
of their final losses with its standard error; `judged_on_fresh_seeds` judges that pick on the
two winners' runs from seeds the selection never saw.
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
    adaptive-rate method ends lower) and `adaptive_over_other_final_loss_se` (its standard error;
    None for one seed); both None where a group is empty or a loss is not finite.
  """
  medians = {k: float(np.median(v)) for k, v in losses_by_seed.items()}
  finite = [k for k, m in medians.items() if np.isfinite(m)]
  adaptive = min((k for k in finite if k in ADAPTIVE_RATE), key=medians.get, default=None)
  other = min((k for k in finite if k not in ADAPTIVE_RATE), key=medians.get, default=None)
  ratio, se = (
    verdicts.paired_ratio(losses_by_seed[adaptive], losses_by_seed[other])
    if adaptive and other
    else (None, None)
  )
  return {
    "best_adaptive_rate_optimizer": adaptive,
    "best_other_optimizer": other,
    "adaptive_over_other_final_loss": ratio,
    "adaptive_over_other_final_loss_se": se,
  }


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
    `selected`, with its ratio and error renamed `adaptive_over_other_final_loss_on_selection_seeds`
    (and `..._se`), and `adaptive_over_other_final_loss` (± `..._se`) the geometric mean over the
    fresh seeds of the per-seed ratio (None where a winner has no fresh run or a loss is not
    finite).
  """
  fresh: dict[str, list[float]] = {}
  for row in sorted(rows, key=lambda r: r["seed"]):
    loss = math.inf if row["diverged"] else row["final_train_loss"]
    fresh.setdefault(row["optimizer"], []).append(loss)
  adaptive, other = selected["best_adaptive_rate_optimizer"], selected["best_other_optimizer"]
  ratio, se = None, None
  if adaptive in fresh and other in fresh:
    pairs = np.asarray([fresh[adaptive], fresh[other]], np.float64)
    if np.all(np.isfinite(pairs)):
      ratio, se = verdicts.paired_ratio(*pairs)
  key = "adaptive_over_other_final_loss"
  return {
    **selected,
    f"{key}_on_selection_seeds": selected[key],
    f"{key}_on_selection_seeds_se": selected[f"{key}_se"],
    key: ratio,
    f"{key}_se": se,
  }
