"""Sutskever, Martens, Dahl & Hinton (2013): momentum schedules for a deep autoencoder, classical
momentum (Goodfellow et al. 2016, Algorithm 8.2) vs Nesterov momentum (Algorithm 8.3).

A deep autoencoder of the digits (`models.MLP` with `depth` hidden layers of `width` < 64 units,
mapping the 64 pixels back onto themselves, loss ½‖f(x) − x‖² averaged over examples) is trained
by minibatch SGD with momentum μ_t following Sutskever et al.'s schedule (their eq. 5)

  μ_t = min(1 − 2^(−1 − log₂(⌊t / r⌋ + 1)), μ_max) = min(1 − 1 / (2(⌊t / r⌋ + 1)), μ_max),

with r = `ramp_steps` (250 in the paper), for μ_max ∈ `momentum_max` and each learning rate of a
small grid (they tuned ε too). `optim.momentum` and `optim.nesterov` take the schedule itself
(μ_t at step t, and μ_{t+1} for Nesterov's look-ahead); the learning rate is injected with
`optax.inject_hyperparams` (the schedule passed through as a static argument) so that the whole
grid of one method is one vmapped program (`grids.train_vmapped`).

`optim.nesterov` carries the look-ahead point θ̃_t = θ_t + μ_t v_t (its docstring); the loss that
`train.py` logs for it is the loss at θ̃, and the final loss reported here is the loss at the
book's θ = θ̃ − μ_T v_T, with T the number of steps and v the velocity in the optimizer state.

Every member is trained from each of `seeds` (the initialization and the minibatch order). The
best learning rate of a (method, μ_max) is the one of its grid with the lowest median final
training loss over seeds. The claims judge each seed at the rate best on the other seeds (leave
one seed out, `grids.held_out_rows`), so that no judged value comes from a seed its rate was
picked on (picking and judging on the same seeds favours the rate whose seeds happened to do
well); `held_out_learning_rates` lists those picks per method, μ_max and seed, and the rate best
on all seeds (`best_learning_rate_by_momentum`, with `best_learning_rate_at_grid_edge`) is shown
in the plot. Claims: `final_loss_by_momentum`, per method and μ_max, the final full-training-set
loss (mean over seeds, each at its held-out rate) (Sutskever et al.: larger μ_max trains deep
autoencoders much further; judged by `loss_ratio_to_smaller_momentum`, each μ_max's loss over the
next smaller one's, paired by seed: the geometric mean of the per-seed ratios, its delta-method
`_se`, `verdicts.paired_ratio`, and `_dof`, the seeds paired less one), and
`nesterov_over_classical_final_loss` per μ_max > 0 (Nesterov is at least as good as classical
momentum; also paired by seed, with `_se` and `_dof`), each judged on the log scale beyond
t_{0.975, dof} standard errors of 1. A comparison one of whose held-out rates lies at the edge of
its grid (`held_out_learning_rate_at_grid_edge`) is judged inconclusive: the grid does not bracket
its optimum.
"""

import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, below
from jaxopt_study.lab import digits_tasks, grids, rate_plots, verdicts
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import history_rows, read_csv

METHODS = {"classical": optim.momentum, "nesterov": optim.nesterov}


class MomentumSchedules(Experiment):
  """Classical and Nesterov momentum under Sutskever et al.'s schedule, over μ_max × rate."""

  NAME = "momentum_schedules"
  TITLE = "Sutskever et al. (2013): momentum schedules on a deep autoencoder, classical vs Nesterov"
  SECTION = "8.3.2"
  DESCRIPTION = (
    "A deep autoencoder of scikit-learn's digits trained by minibatch SGD with classical momentum "
    "(Algorithm 8.2) and Nesterov momentum (Algorithm 8.3), the momentum following Sutskever et "
    "al.'s schedule μ_t = min(1 − 2^(−1−log2(⌊t/r⌋+1)), μ_max), passed to the library's "
    "optimizers as a schedule (Nesterov looks ahead with μ_{t+1}). Each seed of a (method, "
    "μ_max) is judged at the learning rate of its grid with the lowest median final training "
    "loss over the other seeds (leave one seed out), so that no judged value comes from a seed "
    "its rate was picked on; Nesterov's "
    "loss is evaluated at θ = θ̃ − μv, not at the look-ahead point it carries. Sutskever et al.'s "
    "long runs gain from every increase of μ_max, with Nesterov at least as good as classical "
    "momentum; the verdicts say whether this run's scale shows both."
  )
  PUBLISHED = {
    "final_loss_by_momentum": "lower for larger μ_max (0.99 ≪ 0.9 ≪ 0) (Sutskever et al. 2013, "
    "Table 1)",
    "nesterov_over_classical_final_loss": "≤ 1: Nesterov at least as good as classical momentum "
    "(Sutskever et al. 2013, Table 1)",
  }
  # Every step up in μ_max lowers the final loss, for both methods; Nesterov ends below classical
  # at every μ_max > 0 (at 0 both are SGD); each ratio paired by seed, beyond t_{0.975, dof}
  # standard errors, on the log scale its delta-method error was made on (`ratio=True`). Each seed
  # at the rate best on the other seeds; inconclusive where such a held-out rate is at its grid's
  # edge.
  CRITERIA = {
    "final_loss_by_momentum": below(
      "loss_ratio_to_smaller_momentum",
      1.0,
      standard_error="loss_ratio_to_smaller_momentum_se",
      ratio=True,
      unless="loss_ratio_at_grid_edge",
    ),
    "nesterov_over_classical_final_loss": below(
      "nesterov_over_classical_final_loss",
      1.0,
      standard_error="nesterov_over_classical_final_loss_se",
      ratio=True,
      unless="nesterov_over_classical_at_grid_edge",
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    **dict.fromkeys(
      ("steps", "eval_every", "ramp_steps", "batch_size"), validate.require_positive_int
    ),
    "seeds": validate.seeds(min_length=2),  # each seed's rate is picked on the others
    "momentum_max": validate.each(validate.require_unit_interval),
    "learning_rate": validate.each(validate.require_non_negative),
    "model.width": functools.partial(validate.require_int, low=1, high=63),  # a bottleneck < 64
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """The autoencoder builds; two seeds at least, for the comparisons' standard errors."""
    if len(config.seeds) < 2:
      raise ValueError(f"seeds={list(config.seeds)}: at least two, for the error bars")
    _autoencoder(config, config.seeds[0])

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Both methods over μ_max × learning rate, one vmapped program per method; no resuming."""
    digits = data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
    data = data_lib.Dataset(digits.x_train, digits.x_train, digits.x_test, digits.x_test)
    grid = [(mu, lr) for mu in config.momentum_max for lr in config.learning_rate]
    mus = jnp.asarray([mu for mu, _ in grid], jnp.float32)
    rates = jnp.asarray([lr for _, lr in grid], jnp.float32)
    steps = train.eval_steps(config.steps, config.eval_every)
    table, history = [], []
    for method, constructor in METHODS.items():
      injected = optax.inject_hyperparams(constructor, static_args=("momentum",))

      def optimizer(mu_max, learning_rate, injected=injected):
        schedule = sutskever_schedule(config.ramp_steps, mu_max)
        return injected(learning_rate=learning_rate, momentum=schedule)

      for seed in config.seeds:  # the initialization and the minibatch order
        model = _autoencoder(config, seed)

        def final_loss(params, opt_state, mu_max, method=method, model=model):
          """½‖f(x) − x‖² over the training set at θ_T (Nesterov: θ̃_T − μ_T v_T)."""
          if method == "nesterov":
            params = optim.nesterov_params(
              params, opt_state, sutskever_schedule(config.ramp_steps, mu_max)
            )
          outputs, _ = model.apply(params, model.model_state, data.x_train, True)
          return losses.mean_squared_error(outputs, data.y_train)

        states, histories = grids.train_vmapped(
          model,
          optimizer,
          [mus, rates],
          data,
          seed=seed,
          steps=config.steps,
          batch_size=config.batch_size,
          eval_every=config.eval_every,
          loss="mse",
        )
        final_losses = jax.jit(jax.vmap(final_loss))(states.params, states.opt_state, mus)
        for i, (mu, lr) in enumerate(grid):
          member = f"{method}@mu{mu:g},lr{lr:g},seed{seed}"
          member_history = {k: np.asarray(v[i]) for k, v in histories.items()} | {"step": steps}
          history.extend(history_rows(member, member_history))
          table.append(
            {
              "member": member,
              "method": method,
              "momentum_max": float(mu),
              "learning_rate": float(lr),
              "seed": seed,
              "final_train_loss": float(final_losses[i]),
              "final_test_loss": float(member_history["test_loss"][-1]),
            }
          )
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Per method and μ_max, each seed's final loss at the learning rate best on the other seeds
    (lowest median final training loss: leave one seed out, `grids.held_out_rows`) and their mean;
    each comparison as the geometric mean over seeds of the per-seed ratio at those held-out
    rates, with its standard error. A comparison one of whose held-out rates lies at its grid's
    edge (the grid does not bracket the optimum) is flagged, and its verdict is inconclusive. The
    rate best on all seeds (lowest median) is kept for display."""
    by_method: dict[str, dict[str, float]] = {}
    rates: dict[str, dict[str, float]] = {}
    edge: dict[str, dict[str, bool]] = {}
    held_out_rates: dict[str, dict[str, dict[str, float]]] = {}
    held_out_edge: dict[str, dict[str, bool]] = {}
    by_seed: dict[str, dict[str, dict[int, float]]] = {}
    _, best, at_edge = grids.best_by_median(results.table, GROUP, "final_train_loss")
    for (method, mu), row in sorted(best.items()):
      rates.setdefault(method, {})[f"{mu:g}"] = row["learning_rate"]
      edge.setdefault(method, {})[f"{mu:g}"] = at_edge[(method, mu)]
    picks, picks_at_edge = grids.held_out_rows(results.table, GROUP, "final_train_loss")
    for (method, mu), rows in sorted(picks.items()):
      seeds = {seed: row["final_train_loss"] for seed, row in sorted(rows.items())}
      by_seed.setdefault(method, {})[f"{mu:g}"] = seeds
      by_method.setdefault(method, {})[f"{mu:g}"] = float(np.mean(list(seeds.values())))
      held_out_rates.setdefault(method, {})[f"{mu:g}"] = {
        str(int(seed)): row["learning_rate"] for seed, row in sorted(rows.items())
      }
      held_out_edge.setdefault(method, {})[f"{mu:g}"] = picks_at_edge[(method, mu)]
    pairs = {
      f"{method} {high}/{low}": ((method, high), (method, low))
      for method, losses in by_method.items()
      for low, high in itertools.pairwise(sorted(losses, key=float))
    }
    mus = [
      mu
      for mu in by_method.get("classical", {})
      if float(mu) > 0 and mu in by_method.get("nesterov", {})
    ]
    versus = {mu: (("nesterov", mu), ("classical", mu)) for mu in mus}

    def ratios(comparisons: dict) -> tuple[dict, dict, dict]:
      """Each comparison's per-seed ratios, their geometric mean, its standard error and that
      error's degrees of freedom (the seeds both share, less one; None without an error)."""
      mean, error, dof = {}, {}, {}
      for key, ((m1, mu1), (m2, mu2)) in comparisons.items():
        top, bottom = by_seed[m1][mu1], by_seed[m2][mu2]
        mean[key], error[key], dof[key] = verdicts.paired_ratio_by_seed(top, bottom)
      return mean, error, dof

    step_up, step_up_se, step_up_dof = ratios(pairs)
    nesterov, nesterov_se, nesterov_dof = ratios(versus)
    return {
      "final_loss_by_momentum": by_method,
      # each μ_max's final loss over that of the next smaller μ_max, per method and seed
      "loss_ratio_to_smaller_momentum": step_up,
      "loss_ratio_to_smaller_momentum_se": step_up_se,
      "loss_ratio_to_smaller_momentum_dof": step_up_dof,
      "loss_ratio_at_grid_edge": {
        key: held_out_edge[method][high] or held_out_edge[method][low]
        for key, ((method, high), (_, low)) in pairs.items()
      },
      "nesterov_over_classical_final_loss": nesterov,
      "nesterov_over_classical_final_loss_se": nesterov_se,
      "nesterov_over_classical_final_loss_dof": nesterov_dof,
      "nesterov_over_classical_at_grid_edge": {
        mu: held_out_edge["nesterov"][mu] or held_out_edge["classical"][mu] for mu in mus
      },
      "best_learning_rate_by_momentum": rates,
      "best_learning_rate_at_grid_edge": edge,
      # the rates behind the judged values: each seed's, best on the other seeds
      "held_out_learning_rates": held_out_rates,
      "held_out_learning_rate_at_grid_edge": held_out_edge,
      "seeds": list(config.seeds),
      "diverged_members": sorted(
        r["member"] for r in results.table if not np.isfinite(r["final_train_loss"])
      ),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Training loss of each (method, μ_max) at its best learning rate, from the saved CSVs."""
    return [
      rate_plots.best_rate_plot(
        read_csv(out_dir / "results.csv"),
        read_curves(out_dir / "history.csv", "train_loss"),
        out_dir / "train_loss.png",
        group=GROUP,
        label=lambda key: f"{key[0]}, μ_max {key[1]:g}",
        title="deep autoencoder: training loss (Nesterov: at the look-ahead point)",
        ylabel="½‖f(x) − x‖² (training set)",
      )
    ]


GROUP = ("method", "momentum_max")  # each is shown at the best learning rate of its grid


def sutskever_schedule(ramp_steps: int, momentum_max) -> optax.Schedule:
  """μ_t = min(1 − 2^(−1 − log₂(⌊t / r⌋ + 1)), μ_max), Sutskever et al. (2013), eq. 5."""

  def schedule(count):
    stage = jnp.floor(jnp.asarray(count, jnp.float32) / ramp_steps) + 1.0
    return jnp.minimum(1.0 - 2.0 ** (-1.0 - jnp.log2(stage)), momentum_max)

  return schedule


def _autoencoder(config: ml_collections.ConfigDict, seed: int) -> models.FunctionalModel:
  """The config's MLP from the 64 pixels back onto themselves, initialized from `seed`."""
  return models.functional(
    models.build_model(in_features=64, out_features=64, seed=seed, **config.model)
  )
