"""jaxopt_study: run, measure and look at chapter 8 of Goodfellow, Bengio & Courville (2016).

Public names: `Problem` (your model, loss and data: what training, sweeps and the CLI take);
modules `optim` (the chapter's optimizers as Optax transformations), `init`, `models`, `data`,
`losses`, `problem`, `train`, `hessian` (spectra and critical points), `sweep` (vmapped grids),
`ensembles` (averaged predictions of trained members), `regularization` (dropout, DropConnect,
stochastic depth, augmentation, L1 and L2 penalties).
"""

from jaxopt_study import (
  data,
  ensembles,
  hessian,
  init,
  losses,
  models,
  optim,
  problem,
  regularization,
  sweep,
  train,
)
from jaxopt_study.problem import Problem

__all__ = [
  "Problem",
  "data",
  "ensembles",
  "hessian",
  "init",
  "losses",
  "models",
  "optim",
  "problem",
  "regularization",
  "sweep",
  "train",
]
__version__ = "0.1.0"
