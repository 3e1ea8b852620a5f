"""Pieces that serve only the experiments of `experiments/`, not the library a user imports.

* `adaptive_rate`: the adaptive-rate family of §8.5 and its best method against the best other
  one, paired by seed (Schaul et al.'s comparison, `optimizers` and `optimizer_comparison`).
* `curves`: curves of a run's `history.csv` (the one `history_curves`) and power-law fits.
* `digits_tasks`: a config's digits data and model (`mlp(seed, **config.model)`), seeds stacked
  for `vmap`, the training NLL, one figure per training metric.
* `grids`: learning-rate grids trained as one vmapped program, and the best rate per optimizer,
  refused at the grid's edge.
* `landscape`: lines and paths in parameter space, two-dimensional test surfaces (§8.2), critical
  points by Newton's method on ‖∇f‖².
* `one_dim`: the 1-D risk x·cos(πx) and a rippled empirical risk, grid extrema, descent kept
  inside an interval (§8.1.1, §8.2.2).
* `adam_variants`: Adam without its bias correction (`failure_modes`).
* `unit_stats`: per-unit and per-layer statistics of an MLP: distinct and dead units, single-sign
  weight gradients, layer and back-propagated gradient norms.
* `verdicts`: mean ± std, mean ± standard error and paired ratios over seeds: a claim's error bar.
* `random_matrix`: random-matrix ensembles and their spectra (saddle proliferation, §8.2.3).
* `rate_plots`: the final loss against the learning rate, and the curves at each best rate.
* `subspace_sharpness`: Keskar et al.'s ε-sharpness in a random subspace, by L-BFGS-B.
* `trained_mlp`: a digits MLP trained by `train.train` and the exact spectrum at its end.
"""
