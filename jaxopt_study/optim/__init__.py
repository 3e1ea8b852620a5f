"""Optimizers of Goodfellow et al. (2016) chapter 8 as Optax transformations, and schedules.

`OPTIMIZERS` maps the optimizer names used in configs to their constructors.
"""

from collections.abc import Callable

import optax

from jaxopt_study.optim.averaging import PolyakState, averaged_params, polyak_average
from jaxopt_study.optim.coordinate import CoordinateDescentState, coordinate_descent
from jaxopt_study.optim.first_order import (
  BookAdagradState,
  BookMomentumState,
  DeltaBarDeltaState,
  adadelta,
  adagrad,
  adam,
  delta_bar_delta,
  momentum,
  nesterov,
  nesterov_params,
  rmsprop,
  rmsprop_nesterov,
  scale_by_book_adagrad,
  scale_by_book_momentum,
  sgd,
)
from jaxopt_study.optim.linesearch import (
  ScaleByWolfeLinesearchState,
  is_stalled,
  scale_by_wolfe_linesearch,
)
from jaxopt_study.optim.preconditioners import (
  PRECONDITIONERS,
  adagrad_preconditioner,
  adam_preconditioner,
  rmsprop_preconditioner,
)
from jaxopt_study.optim.quasi_newton import (
  BFGSState,
  ConjugateGradientState,
  bfgs,
  conjugate_gradient,
  lbfgs,
  scale_by_bfgs,
  scale_by_checked_lbfgs,
  scale_by_conjugate_gradient,
)
from jaxopt_study.optim.schedules import (
  choose_schedule,
  cosine_warm_restarts,
  cycle_ends,
  exponential_decay,
  inverse_time_decay,
  linear_decay,
  step_decay,
  triangular_cycle,
)
from jaxopt_study.optim.second_order import (
  CriticalPointNewtonState,
  NewtonState,
  critical_point_newton,
  newton,
  saddle_free_newton,
)

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
  "sgd": sgd,
  "momentum": momentum,
  "nesterov": nesterov,
  "adagrad": adagrad,
  "rmsprop": rmsprop,
  "rmsprop_nesterov": rmsprop_nesterov,
  "adam": adam,
  "adadelta": adadelta,
  "delta_bar_delta": delta_bar_delta,
  "newton": newton,
  "conjugate_gradient": conjugate_gradient,
  "bfgs": bfgs,
  "lbfgs": lbfgs,
  "saddle_free_newton": saddle_free_newton,
}


__all__ = [
  "OPTIMIZERS",
  "PRECONDITIONERS",
  "BookAdagradState",
  "BookMomentumState",
  "BFGSState",
  "ConjugateGradientState",
  "CoordinateDescentState",
  "CriticalPointNewtonState",
  "DeltaBarDeltaState",
  "NewtonState",
  "PolyakState",
  "ScaleByWolfeLinesearchState",
  "adadelta",
  "adagrad",
  "adagrad_preconditioner",
  "adam",
  "adam_preconditioner",
  "averaged_params",
  "bfgs",
  "choose_schedule",
  "conjugate_gradient",
  "coordinate_descent",
  "cosine_warm_restarts",
  "critical_point_newton",
  "cycle_ends",
  "delta_bar_delta",
  "exponential_decay",
  "inverse_time_decay",
  "is_stalled",
  "lbfgs",
  "linear_decay",
  "momentum",
  "nesterov",
  "nesterov_params",
  "newton",
  "polyak_average",
  "rmsprop",
  "rmsprop_preconditioner",
  "rmsprop_nesterov",
  "saddle_free_newton",
  "scale_by_bfgs",
  "scale_by_book_adagrad",
  "scale_by_book_momentum",
  "scale_by_checked_lbfgs",
  "scale_by_conjugate_gradient",
  "scale_by_wolfe_linesearch",
  "sgd",
  "step_decay",
  "triangular_cycle",
]
