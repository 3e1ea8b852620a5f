"""Pieces that serve only the experiments of `experiments/`, not the library a user imports.

* `curves`: curves of a run's `history.csv` (the one `history_curves`) and power-law fits.
* `digits_tasks`: a config's digits data and model (`mlp(seed, **config.model)`), seeds stacked
  for `vmap`, the training NLL, one figure per training metric.
* `grids`: learning-rate grids trained as one vmapped program, and the best rate per optimizer,
  refused at the grid's edge.
* `landscape`: lines and paths in parameter space, two-dimensional test surfaces (§8.2), critical
  points by Newton's method on ‖∇f‖².
* `random_matrix`: random-matrix ensembles and their spectra (saddle proliferation, §8.2.3).
* `rate_plots`: the final loss against the learning rate, and the curves at each best rate.
* `trained_mlp`: a digits MLP trained by `train.train` and the exact spectrum at its end.
"""
