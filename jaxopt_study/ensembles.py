"""Model averaging: the predicted class probabilities of K trained members, averaged.

Goodfellow et al. (2016) §7.11 (bagging and other ensemble methods): K models whose errors are
not perfectly correlated make, on average, a smaller expected squared error together than alone;
for classifiers the ensemble averages the members' predicted distributions,
p(y | x) = (1/K) Σ_k p_k(y | x), and predicts its argmax. The members may be a sweep's members
(independent seeds: `sweep.member_state` of each) or snapshots of one run (Huang et al. 2017,
taken at `optim.cycle_ends` of a `optim.cosine_warm_restarts` schedule).

A member is `(params, model_state)` of the problem's module, whose ``module(x)`` returns class
logits for the inputs x, the first array of a batch ``(x, y)``; the module runs in eval mode.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_study import problem as problem_lib

Member = tuple[Any, Any]  # (params, model_state)


def ensemble_probabilities(
  problem: problem_lib.Problem, members: Sequence[Member], inputs: Any
) -> np.ndarray:
  """(1/K) Σ_k softmax(module_k(inputs)): the ensemble's class probabilities, (examples, classes).

  Raises:
    ValueError: no members, or a member's logits are not (examples, classes).
  """
  if not members:
    raise ValueError("ensemble_probabilities: members is empty; give at least one (params, state)")
  total = None
  for index, (params, model_state) in enumerate(members):
    logits = jnp.asarray(problem.module(params, model_state)(inputs))
    if logits.ndim != 2:
      raise ValueError(
        f"ensemble_probabilities: member {index} returned logits of shape {logits.shape}; "
        "expected (examples, classes)"
      )
    probabilities = np.asarray(jax.nn.softmax(logits.astype(jnp.float32), axis=-1), np.float64)
    if total is not None and probabilities.shape != total.shape:
      raise ValueError(
        f"ensemble_probabilities: member {index} predicts shape {probabilities.shape}, member 0 "
        f"{total.shape}"
      )
    total = probabilities if total is None else total + probabilities
  return total / len(members)


def ensemble_error(
  problem: problem_lib.Problem,
  members: Sequence[Member],
  data: tuple[Any, Any] | None = None,
) -> float:
  """The 0-1 error of the ensemble's argmax on `data` = (x, y) (default: the held-out data).

  Raises:
    ValueError: no data given and the problem has no held-out data.
  """
  if data is None:
    if problem.heldout_data is None:
      raise ValueError("ensemble_error: the problem has no heldout_data; pass data=(x, y)")
    data = problem.heldout_data
  inputs, labels = data[0], np.asarray(data[1])
  predicted = ensemble_probabilities(problem, members, inputs).argmax(axis=-1)
  return float(np.mean(predicted != labels))
