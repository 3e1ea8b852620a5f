"""Pieces that serve only the experiments of `experiments/`, not the library a user imports.

* `curves`: curves of a run's `history.csv` (one `history_curves`) and power-law fits.
* `grids`: best learning rate per optimizer from a grid, refused at the grid's edge.
* `landscape`: two-dimensional test surfaces and paths across them (§8.2).
* `random_matrix`: random-matrix ensembles and their spectra (saddle proliferation, §8.2.3).
* `trained_mlp`: a digits MLP trained the same way for the Hessian experiments.
"""
