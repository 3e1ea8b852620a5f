"""Sweeps: one training loop `vmap`ped over init scale × batch size × learning rate × seed × any
optimizer hyperparameter, sharded over every device (Goodfellow et al. 2016, §8.1.3, §8.4, §8.5).

    from jaxopt_study import Problem, sweep
    result = sweep.run(
      problem,                                              # any Problem
      optimizer=lambda learning_rate, b1: optim.adam(learning_rate, b1=b1),
      axes={"learning_rate": [1e-3, 1e-2], "b1": [0.8, 0.9], "seed": [0, 1, 2]},
      steps=500, eval_every=50, batch_size=64, out_dir="runs/my_sweep", progress=True,
    )
    result.table    # one row per member: its axis values, final metrics, diverged, ...
    result.history  # long format: member, step, metric, value

* `grid`: the members (the Cartesian product of `axes`), checked before compiling, and the
  batch-size groups that share a compiled program.
* `program`: the vmapped, sharded programs of a group; their memory footprint per device.
* `checkpoint`: Orbax checkpoints of a running chunk of members.
* `runner`: `run`, which ties them together, with a progress bar and resuming.
* `configured`: `run_config`, the same from a config file's fields.
* `search`: random search (axes drawn `log_uniform`, `uniform`, `choice`; `sample` draws them
  jointly, one point per member; Bergstra & Bengio 2012) and `coarse_to_fine` search.

A member's numbers equal those of the same member trained alone (`train.train` with its seed,
init scale, batch size and hyperparameters) to float32 rounding: it sees the same minibatches,
its loss is the mean over its own b examples (the group's larger minibatch is masked by loss
weights, `train.masked_batch_indices`; a loss that is not such a mean runs each batch size in its
own program), and a member whose loss or parameters become non-finite
is frozen at its last finite state and flagged, leaving every other member bit for bit as it was.
"""

from jaxopt_study.sweep.configured import check as check_config
from jaxopt_study.sweep.configured import optimizer_factory, run_config
from jaxopt_study.sweep.grid import (
  BASE_AXES,
  MAX_BATCH_RATIO,
  Member,
  Plan,
  batch_groups,
  check,
)
from jaxopt_study.sweep.runner import SweepResult, SweepStats, member_state, run
from jaxopt_study.sweep.search import (
  SearchRound,
  as_grid,
  choice,
  coarse_to_fine,
  log_uniform,
  narrow,
  sample,
  uniform,
)

__all__ = [
  "BASE_AXES",
  "MAX_BATCH_RATIO",
  "Member",
  "Plan",
  "SearchRound",
  "SweepResult",
  "SweepStats",
  "as_grid",
  "batch_groups",
  "check",
  "check_config",
  "choice",
  "coarse_to_fine",
  "log_uniform",
  "member_state",
  "narrow",
  "optimizer_factory",
  "run",
  "run_config",
  "sample",
  "uniform",
]
