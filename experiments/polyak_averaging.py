"""§8.7.3 "Polyak averaging": constant-step SGD on noisy linear regression, last vs mean iterate.

Streaming least squares (every step draws fresh examples, so the training loss is the risk):
x ~ N(0, H) with H = diag(h), h log-spaced from 1 down to `min_curvature`, and y = θ*ᵀx + σε with
ε ~ N(0, 1) and ‖θ*‖ = 1. A linear model (`models.DeepLinear` with one layer, started at 0) is
trained by `optim.polyak_average(optim.sgd(γ))`, whose `averaged_params` is the running mean
θ̂_t = (1/t) Σ θ_i of the iterates; one step is `train.make_train_loop(...).update` on the
minibatch, and `num_seeds` runs are vmapped. The excess risk of θ is exact, ½ (θ − θ*)ᵀ H (θ − θ*).

Theory (Gaussian inputs, constant step γ):

* the last iterate does not converge: with m the batch size and the Gaussian fourth moment
  E[xxᵀCxxᵀ] = 2HCH + tr(HC) H, its error covariance C reaches the stationary point of
  C ← C − γ(HC + CH) + γ²((1 + 1/m) HCH + tr(HC) H / m) + γ²σ² H / m, which is diagonal, and
  there the excess risk is ½ S with S = (γσ²A/m) / (1 − γA/m), A = Σᵢ hᵢ / (2 − γ(1 + 1/m) hᵢ)
  (a plateau of order γσ² tr H / (4m));
* the averaged iterate converges like the least-squares estimator (Polyak & Juditsky 1992; Bach &
  Moulines 2013): excess risk ≈ σ² d / (2 m t), a log-log slope of −1.

Claims (`summary.json`): `averaged_log_slope` (fitted over the last `fit_decades` decades of t,
theory −1), `averaged_excess_over_theory` (t · excess · 2m / (σ² d) at the end, theory → 1),
`last_iterate_plateau` (mean excess of the last iterate over the same window) against
`last_iterate_plateau_theory`, and `last_iterate_log_slope` (theory 0); the verdicts read their
distances from theory (`averaged_log_slope_error`, `averaged_excess_rel_error`,
`last_iterate_plateau_rel_error`, `last_iterate_abs_log_slope`).
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_study import models, optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, below
from jaxopt_study.lab import curves


class PolyakAveraging(Experiment):
  """The last and the averaged iterate of constant-step SGD on streaming least squares."""

  NAME = "polyak_averaging"
  TITLE = "Chapter 8.7.3: Polyak averaging of constant-step SGD on noisy linear regression"
  SECTION = "8.7.3"
  DESCRIPTION = (
    "Streaming noisy least squares (fresh Gaussian examples every step, so the excess risk ½(θ − "
    "θ*)ᵀH(θ − θ*) is exact) trained by constant-step SGD. The last iterate stalls at a noise "
    "floor whose height the stationary covariance of SGD predicts; the running mean of the "
    "iterates (optim.polyak_average) keeps converging at the statistical rate σ²d/(2mt), a slope "
    "of −1 in log-log. Curves average the excess risk over independent runs."
  )
  PUBLISHED = {
    "averaged_log_slope": "−1: averaged SGD reaches the O(1/t) rate (Polyak & Juditsky 1992; "
    "Bach & Moulines 2013)",
    "averaged_excess_over_theory": "1: excess risk σ²d/(2t), that of least squares (Polyak & "
    "Juditsky 1992)",
    "last_iterate_plateau": "a constant floor ∝ γσ² for a constant step (Goodfellow et al. 2016, "
    "§8.3.1 and §8.7.3)",
    "last_iterate_log_slope": "0: the last iterate stops improving",
  }
  # Each equality within 10%: slopes within 0.1 of −1 and of 0, levels within 10% of theory.
  CRITERIA = {
    "averaged_log_slope": below("averaged_log_slope_error", 0.1),
    "averaged_excess_over_theory": below("averaged_excess_rel_error", 0.1),
    "last_iterate_plateau": below("last_iterate_plateau_rel_error", 0.1),
    "last_iterate_log_slope": below("last_iterate_abs_log_slope", 0.1),
  }
  FIELDS = {
    **dict.fromkeys(("dim", "steps", "batch_size", "num_seeds"), validate.require_positive_int),
    "num_checkpoints": functools.partial(validate.require_int, low=4),  # enough to fit slopes
    "min_curvature": functools.partial(
      validate.require_unit_interval, include_zero=False, include_one=True
    ),
    "noise_std": validate.require_positive,
    "learning_rate": validate.require_positive,
    "fit_decades": validate.require_positive,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """The fit window lies within the run, and the step is small enough for a noise floor."""
    if not config.fit_decades < np.log10(config.steps):
      raise ValueError(
        f"{self.NAME}: fit_decades={config.fit_decades!r} must be < log10(steps) = "
        f"{np.log10(config.steps):.3g}"
      )
    stable = config.learning_rate * _plateau_sum(config)
    if not stable < config.batch_size:
      raise ValueError(
        f"{self.NAME}: learning_rate={config.learning_rate!r} is too large for a stationary SGD "
        f"noise floor (γA = {stable:.3g} must be < batch_size = {config.batch_size})"
      )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Runs every seed as one vmapped program (seconds: nothing to resume); the excess risks,
    averaged over seeds, at log-spaced steps."""
    dtype = jnp.result_type(float)
    curvature = jnp.asarray(_curvatures(config), dtype)
    model = models.functional(
      models.build_model(
        "deep_linear", config.dim, 1, width=1, depth=1, init_scale=0.0, param_dtype=dtype
      )
    )
    loop = train.make_train_loop(
      model,
      optim.polyak_average(optim.sgd(config.learning_rate)),
      batch_size=config.batch_size,
      loss="mse",
    )
    checkpoints = _checkpoints(config)
    block_lengths = jnp.asarray(np.diff(checkpoints, prepend=0), jnp.int32)

    def excess_risk(params, target):
      error = ravel_pytree(params)[0] - target
      return 0.5 * jnp.sum(curvature * error**2)

    def one_run(key: jax.Array):
      target_key, data_key = jax.random.split(key)
      target = jax.random.normal(target_key, (config.dim,), dtype)
      target = target / jnp.linalg.norm(target)  # θ*, ‖θ*‖ = 1

      def one_step(_, state: train.TrainState) -> train.TrainState:
        x_key, noise_key = jax.random.split(jax.random.fold_in(data_key, state.step))
        x = (
          jax.random.normal(x_key, (config.batch_size, config.dim), dtype)
          * jnp.sqrt(curvature)[None, :]
        )
        noise = config.noise_std * jax.random.normal(noise_key, (config.batch_size, 1), dtype)
        y = x @ target[:, None] + noise
        return loop.update(state, (x, y), None)

      def block(state: train.TrainState, num_steps: jax.Array):
        state = jax.lax.fori_loop(0, num_steps, one_step, state)
        averaged = optim.averaged_params(state.opt_state, state.params)
        return state, (excess_risk(state.params, target), excess_risk(averaged, target))

      state = loop.init(model.params, model.model_state)
      return jax.lax.scan(block, state, block_lengths)[1]

    keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
    last, averaged = (np.asarray(v).mean(axis=0) for v in jax.jit(jax.vmap(one_run))(keys))
    table = [
      {"step": int(t), "excess_last": float(a), "excess_averaged": float(b)}
      for t, a, b in zip(checkpoints, last, averaged, strict=True)
    ]
    history = [
      {"member": name, "step": row["step"], "metric": "excess_risk", "value": row[f"excess_{name}"]}
      for name in ("last", "averaged")
      for row in table
    ]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Slopes and levels over the last `fit_decades` decades of t, against theory."""
    checkpoints = np.asarray([row["step"] for row in results.table])
    # The means over seeds in the dtype they were computed in (exact as Python floats).
    last, averaged = (
      np.asarray([row[f"excess_{name}"] for row in results.table], jnp.result_type(float))
      for name in ("last", "averaged")
    )
    window = checkpoints >= config.steps / 10**config.fit_decades
    gamma, m = config.learning_rate, config.batch_size
    a = _plateau_sum(config)
    variance = config.noise_std**2
    plateau_theory = 0.5 * (gamma * variance * a / m) / (1 - gamma * a / m)
    averaged_slope = curves.log_slope(checkpoints[window], averaged[window])
    over_theory = float(averaged[-1] * checkpoints[-1] * 2 * m / (variance * config.dim))
    plateau = float(np.mean(last[window]))
    last_slope = curves.log_slope(checkpoints[window], last[window])
    return {
      "averaged_log_slope": averaged_slope,
      "averaged_log_slope_error": abs(averaged_slope + 1),
      "averaged_excess_over_theory": over_theory,
      "averaged_excess_rel_error": abs(over_theory - 1),
      "last_iterate_plateau": plateau,
      "last_iterate_plateau_theory": float(plateau_theory),
      "last_iterate_plateau_rel_error": abs(plateau / plateau_theory - 1),
      "last_iterate_log_slope": last_slope,
      "last_iterate_abs_log_slope": abs(last_slope),
      "final_excess_last": float(last[-1]),
      "final_excess_averaged": float(averaged[-1]),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Excess risk of the last and the averaged iterate against t, log-log, from history.csv."""
    series = curves.read_curves(out_dir / "history.csv", "excess_risk")
    return [
      report.line_plot(
        {f"{name} iterate": curve for name, curve in series.items()},
        out_dir / "excess_risk.png",
        title="excess risk of constant-step SGD: last vs Polyak-averaged iterate",
        xlabel="step t",
        ylabel="½(θ − θ*)ᵀH(θ − θ*) (mean over runs)",
        logx=True,
        logy=True,
      )
    ]


def _curvatures(config: ml_collections.ConfigDict) -> np.ndarray:
  """The eigenvalues h of H, log-spaced from 1 down to `min_curvature`."""
  return np.logspace(0.0, np.log10(config.min_curvature), config.dim)


def _plateau_sum(config: ml_collections.ConfigDict) -> float:
  """A = Σᵢ hᵢ / (2 − γ(1 + 1/m) hᵢ) of the stationary last-iterate risk (module docstring)."""
  h, gamma, m = _curvatures(config), config.learning_rate, config.batch_size
  denominator = 2 - gamma * (1 + 1 / m) * h
  return float(np.sum(h / denominator)) if np.all(denominator > 0) else np.inf


def _checkpoints(config: ml_collections.ConfigDict) -> np.ndarray:
  """Log-spaced distinct steps 1 … `steps` at which the excess risks are recorded."""
  points = np.geomspace(1, config.steps, config.num_checkpoints).round().astype(int)
  return np.unique(np.append(points, config.steps))
