"""jaxopt_study: run, measure and look at chapter 8 of Goodfellow, Bengio & Courville (2016).

Public modules: `optim` (the chapter's optimizers as Optax transformations), `init`, `models`,
`data`, `losses`, `train`, `hessian` (spectra and critical points), `sweep` (vmapped grids).
"""

from jaxopt_study import data, hessian, init, losses, models, optim, sweep, train

__all__ = ["data", "hessian", "init", "losses", "models", "optim", "sweep", "train"]
__version__ = "0.1.0"
