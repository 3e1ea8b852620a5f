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
grid of one method is one vmapped program.

`optim.nesterov` carries the look-ahead point θ̃_t = θ_t + μ_t v_t (its docstring); the loss that
`train.py` logs for it is the loss at θ̃, and the final loss reported here is the loss at the
book's θ = θ̃ − μ_T v_T, with T the number of steps and v the velocity in the optimizer state.

Claim: `final_loss_by_momentum`, per method and μ_max, the final full-training-set loss at the best
learning rate of the grid (Sutskever et al.: larger μ_max trains deep autoencoders much further,
and Nesterov is at least as good as classical momentum).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim, report, train
from jaxopt_study.lab import curves
from jaxopt_study.results import ExperimentResults, RunDir, history_rows, read_csv

TITLE = "Sutskever et al. (2013): momentum schedules on a deep autoencoder, classical vs Nesterov"
SECTION = "8.3.2"
DESCRIPTION = (
  "A deep autoencoder of scikit-learn's digits trained by minibatch SGD with classical momentum "
  "(Algorithm 8.2) and Nesterov momentum (Algorithm 8.3), the momentum following Sutskever et "
  "al.'s schedule μ_t = min(1 − 2^(−1−log2(⌊t/r⌋+1)), μ_max), passed to the library's "
  "optimizers as a schedule (Nesterov looks ahead with μ_{t+1}). Each (method, μ_max) "
  "is shown at the learning rate of its grid with the lowest final training loss; Nesterov's "
  "loss is evaluated at θ = θ̃ − μv, not at the look-ahead point it carries. At the quick "
  "config's scale momentum helps both methods, and Nesterov gains again from μ_max = 0.99, but "
  "classical momentum ends no lower at 0.99 than at 0.9, unlike Sutskever et al.'s long runs."
)
PUBLISHED = {
  "final_loss_by_momentum": "lower for larger μ_max (0.99 ≪ 0.9 ≪ 0), Nesterov ≤ classical "
  "(Sutskever et al. 2013, Table 1)",
}
METHODS = {"classical": optim.momentum, "nesterov": optim.nesterov}


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before any data is loaded or compiled."""
  if config.data.name != "digits":
    raise ValueError(f"data.name={config.data.name!r}: this experiment runs on 'digits'")
  for field in ("steps", "eval_every", "ramp_steps", "batch_size"):
    if not isinstance(config[field], int) or config[field] < 1:
      raise ValueError(f"{field}={config[field]!r}: must be an integer ≥ 1")
  for field in ("momentum_max", "learning_rate"):
    if not isinstance(config[field], list | tuple) or not config[field]:
      raise ValueError(f"{field}={config[field]!r}: must be a non-empty list")
  for mu in config.momentum_max:
    if not 0 <= mu < 1:
      raise ValueError(f"momentum_max: {mu!r} must be in [0, 1)")
  for lr in config.learning_rate:
    optim.momentum(lr, 0.0)
  if config.model.width >= 64:
    raise ValueError(f"model.width={config.model.width}: an autoencoder needs a bottleneck < 64")
  models.build_model(in_features=64, out_features=64, seed=config.seed, **config.model.to_dict())


def sutskever_schedule(ramp_steps: int, momentum_max) -> optax.Schedule:
  """μ_t = min(1 − 2^(−1 − log₂(⌊t / r⌋ + 1)), μ_max), Sutskever et al. (2013), eq. 5."""

  def schedule(count):
    stage = jnp.floor(jnp.asarray(count, jnp.float32) / ramp_steps) + 1.0
    return jnp.minimum(1.0 - 2.0 ** (-1.0 - jnp.log2(stage)), momentum_max)

  return schedule


def run(
  config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = True
) -> ExperimentResults:
  """Both methods over μ_max × learning rate, one vmapped program per method; no resuming."""
  del run_dir, progress
  check(config)
  digits = data_lib.load_digits(config.data.test_fraction, config.data.split_seed)
  data = data_lib.Dataset(digits.x_train, digits.x_train, digits.x_test, digits.x_test)
  model = models.functional(
    models.build_model(in_features=64, out_features=64, seed=config.seed, **config.model.to_dict())
  )
  grid = [(mu, lr) for mu in config.momentum_max for lr in config.learning_rate]
  mus = jnp.asarray([mu for mu, _ in grid], jnp.float32)
  rates = jnp.asarray([lr for _, lr in grid], jnp.float32)
  steps = train.eval_steps(config.steps, config.eval_every)
  table, history = [], []
  for method, constructor in METHODS.items():

    def one_member(mu_max, learning_rate, constructor=constructor, method=method):
      schedule = sutskever_schedule(config.ramp_steps, mu_max)
      tx = optax.inject_hyperparams(constructor, static_args=("momentum",))(
        learning_rate=learning_rate, momentum=schedule
      )
      train_fn = train.make_train_fn(
        model,
        tx,
        steps=config.steps,
        batch_size=config.batch_size,
        eval_every=config.eval_every,
        loss="mse",
      )
      state, member_history = train_fn(
        model.params, model.model_state, data, jax.random.key(config.seed)
      )
      params = state.params
      if method == "nesterov":  # θ_T = θ̃_T − μ_T v_T
        mu = jnp.asarray(schedule(config.steps))
        velocity = _velocity(state.opt_state)
        params = jax.tree.map(
          lambda theta, vel: theta - mu.astype(theta.dtype) * vel, params, velocity
        )
      outputs, _ = model.apply(params, model.model_state, data.x_train, True)
      return member_history, losses.mean_squared_error(outputs, data.y_train)

    histories, final_losses = jax.jit(jax.vmap(one_member))(mus, rates)
    for i, (mu, lr) in enumerate(grid):
      member = f"{method}@mu{mu:g},lr{lr:g}"
      member_history = {k: np.asarray(v[i]) for k, v in histories.items()} | {"step": steps}
      history.extend(history_rows(member, member_history))
      table.append(
        {
          "member": member,
          "method": method,
          "momentum_max": float(mu),
          "learning_rate": float(lr),
          "final_train_loss": float(final_losses[i]),
          "final_test_loss": float(member_history["test_loss"][-1]),
        }
      )
  return ExperimentResults(table, history, _summarize(table))


def _velocity(opt_state) -> optax.Updates:
  """The velocity v of the one `BookMomentumState` inside an optimizer state."""
  found = [
    leaf.velocity
    for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optim.BookMomentumState))
    if isinstance(leaf, optim.BookMomentumState)
  ]
  (velocity,) = found
  return velocity


def _best(table: list[dict]) -> dict[tuple[str, float], dict]:
  """(method, μ_max) -> the row of the learning rate with the lowest final training loss."""
  best: dict[tuple[str, float], dict] = {}
  for row in table:
    key = (row["method"], row["momentum_max"])
    loss = row["final_train_loss"]
    if np.isfinite(loss) and (key not in best or loss < best[key]["final_train_loss"]):
      best[key] = row
  return best


def _summarize(table: list[dict]) -> dict:
  best = _best(table)
  by_method: dict[str, dict[str, float]] = {}
  rates: dict[str, dict[str, float]] = {}
  for (method, mu), row in sorted(best.items()):
    by_method.setdefault(method, {})[f"{mu:g}"] = row["final_train_loss"]
    rates.setdefault(method, {})[f"{mu:g}"] = row["learning_rate"]
  return {
    "final_loss_by_momentum": by_method,
    "best_learning_rate_by_momentum": rates,
    "diverged_members": sorted(
      r["member"] for r in table if not np.isfinite(r["final_train_loss"])
    ),
  }


def plot(out_dir: Path) -> list[Path]:
  """Training loss of each (method, μ_max) at its best learning rate, from the saved CSVs."""
  best = _best(read_csv(out_dir / "results.csv"))
  losses_ = curves.read_curves(out_dir / "history.csv", "train_loss")
  return [
    report.line_plot(
      {
        f"{method}, μ_max {mu:g} (lr {row['learning_rate']:g})": losses_[row["member"]]
        for (method, mu), row in sorted(best.items())
      },
      out_dir / "train_loss.png",
      title="deep autoencoder: training loss (Nesterov: at the look-ahead point)",
      xlabel="step",
      ylabel="½‖f(x) − x‖² (training set)",
      logy=True,
    )
  ]
