"""Learning dynamics of deep linear networks (Saxe, McClelland & Ganguli 2013; book §8.2.3, §8.4).

Training data: exactly whitened inputs, Σ₁₁ = XᵀX/n = I, and targets y = W x with W = U diag(s) Vᵀ
(`data.whitened_linear_regression`), under the loss ½ mean ‖f(x) − y‖².

(a) Modes. A two-layer `models.DeepLinear` from a small random initialization, trained by
full-batch gradient descent with rate ε (time constant τ = 1/ε steps), learns each mode's strength
u_α(t) = v_αᵀ (W₁ᵀW₂ᵀ) u_α along a sigmoid (Saxe et al. eq. 6), reaching half of s_α at
t_half = τ/(2 s_α) · ln((s_α − u₀)/u₀) (their eq. 7 with u_f = s_α/2): a time ∝ 1/s_α up to the
slowly varying logarithm. We record u_α(t) at every step of the descent (`train.descend`), find
t_half, and fit t_half against 1/s_α.

(b) Depth. For each depth, a learning-rate sweep (`jaxopt_study.sweep`, full batch, plain SGD)
gives the fewest steps to bring the loss below a fraction of the zero network's loss,
½ mean ‖y‖². Saxe et al. (§3-4) show that with orthogonal initialization (dynamical isometry) the
learning time at the best rate does not grow with depth, while a scaled Gaussian initialization's
does.

Claims (`summary.json`): `mode_time_vs_inverse_s_slope` (steps per unit 1/s, with its R², the
slope of the theory's t_half and `mode_time_slope_rel_error`, |slope / theory's − 1|),
`depth_time_ratio_orthogonal` and `depth_time_ratio_gaussian` (steps at the deepest over the
shallowest depth; a deeper depth that never reaches the threshold counts as the step budget,
flagged in `*_censored`; None when the shallowest does not reach it).
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim, report, sweep, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab.curves import history_curves, read_curves
from jaxopt_study.results import read_csv

INITS = {"orthogonal": "orthogonal", "gaussian": "lecun_normal"}


class DeepLinearDynamics(Experiment):
  """Mode half-times of a two-layer linear net, and steps to a loss threshold against depth."""

  NAME = "deep_linear_dynamics"
  TITLE = "Saxe et al. (2013): learning dynamics of deep linear networks"
  SECTION = "8.4"
  DESCRIPTION = (
    "Deep linear networks on exactly whitened data whose input-output map has chosen singular "
    "values s. (a) A two-layer net from a small random init learns each mode along a sigmoid; "
    "the step at which a mode reaches half its strength is fitted against 1/s (theory: τ/(2s) "
    "ln((s−u₀)/u₀), τ = 1/learning rate). (b) For each depth, a learning-rate sweep finds the "
    "fewest full-batch SGD steps to bring the loss below a fraction of the zero network's loss, "
    "for orthogonal and for scaled Gaussian (LeCun normal) initialization: Saxe et al. predict a "
    "depth-independent time for orthogonal init and a growing one for Gaussian init. A depth that "
    "does not reach the threshold within the step budget counts as the budget (a lower bound, "
    "listed as censored)."
  )
  PUBLISHED = {
    "mode_time_vs_inverse_s_slope": "t_half ∝ 1/s, slope τ/2·ln(s/u₀) (Saxe et al. 2013, eq. 7)",
    "depth_time_ratio_orthogonal": "≈ 1: depth-independent learning time (Saxe et al. 2013, §4)",
    "depth_time_ratio_gaussian": "> 1, growing with depth (Saxe et al. 2013, Fig. 5)",
  }
  # The fitted slope within 20% of the theory's; "≈ 1" as: less than doubles from the shallowest
  # to the deepest depth.
  CRITERIA = {
    "mode_time_vs_inverse_s_slope": below("mode_time_slope_rel_error", 0.2),
    "depth_time_ratio_orthogonal": below("depth_time_ratio_orthogonal", 2.0),
    "depth_time_ratio_gaussian": above("depth_time_ratio_gaussian", 1.0),
  }
  FIELDS = {
    **dict.fromkeys(
      ("dim", "num_examples", "mode_steps", "depth_steps", "eval_every"),
      validate.require_positive_int,
    ),
    "singular_values": functools.partial(
      validate.require_sequence, each=validate.require_positive, min_length=2
    ),
    "depths": functools.partial(
      validate.require_sequence, each=validate.require_positive_int, min_length=2
    ),
    "learning_rates": validate.each(validate.require_positive),
    **dict.fromkeys(("mode_learning_rate", "mode_init_scale"), validate.require_positive),
    "loss_threshold": functools.partial(validate.require_unit_interval, include_zero=False),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """At most `dim` singular values, and enough examples to whiten the inputs."""
    if len(config.singular_values) > config.dim:
      raise ValueError(
        f"{self.NAME}: singular_values={list(config.singular_values)} must have at most "
        f"dim={config.dim} values"
      )
    if config.num_examples < config.dim:
      raise ValueError(
        f"{self.NAME}: num_examples={config.num_examples} must be >= dim={config.dim}"
      )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """(a) mode strengths of a two-layer net, then (b) a learning-rate sweep per init and depth;
    a few sweeps of seconds each, nothing worth resuming."""
    data = data_lib.whitened_linear_regression(
      jax.random.key(config.seed),
      config.num_examples,
      config.dim,
      config.dim,
      list(config.singular_values),
    )
    path, s, u0 = mode_strengths(config, data)
    tau = 1.0 / config.mode_learning_rate
    table, history = [], []
    for alpha in range(len(s)):
      member = f"mode s={s[alpha]:.3g}"
      theory = tau / (2 * s[alpha]) * np.log((s[alpha] - abs(u0[alpha])) / abs(u0[alpha]))
      table.append(
        {
          "member": member,
          "part": "modes",
          "singular_value": float(s[alpha]),
          "initial_strength": float(u0[alpha]),
          "half_time": half_time(path[:, alpha], s[alpha]),
          "half_time_theory": float(theory),
        }
      )
      history += [
        {"member": member, "step": t, "metric": "mode_strength", "value": float(v)}
        for t, v in enumerate(path[:, alpha])
      ]
    jobs = [(name, depth) for name in INITS for depth in config.depths]
    for init_name, depth in tqdm(jobs, desc="depths", disable=not progress):
      best = steps_to_threshold(config, data, init_name, depth)
      member = f"{init_name} depth {depth}"
      table.append(
        {
          "member": member,
          "part": "depth",
          "init": init_name,
          "depth": depth,
          "steps_to_threshold": best["steps"],
          "best_learning_rate": best["learning_rate"],
          "loss_threshold": best["threshold"],
        }
      )
      history += [
        {"member": member, "step": step, "metric": "train_loss_at_best_rate", "value": value}
        for step, value in zip(*best["curve"], strict=True)
      ]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Half-times against 1/s (fit, R², the theory's slope), and steps at the deepest over the
    shallowest depth per initialization."""
    table = results.table
    modes = [r for r in table if r["part"] == "modes"]
    inverse = np.asarray([1.0 / r["singular_value"] for r in modes])
    times = np.asarray([r["half_time"] for r in modes])
    theory = np.asarray([r["half_time_theory"] for r in modes])
    slope, intercept = np.polyfit(inverse, times, 1)
    r_squared = 1.0 - np.sum((times - (slope * inverse + intercept)) ** 2) / np.sum(
      (times - times.mean()) ** 2
    )
    slope_theory = float(np.polyfit(inverse, theory, 1)[0])
    summary = {
      "mode_time_vs_inverse_s_slope": float(slope),
      "mode_time_vs_inverse_s_r_squared": float(r_squared),
      "mode_time_vs_inverse_s_slope_theory": slope_theory,
      "mode_time_slope_rel_error": float(abs(slope / slope_theory - 1)),
      "mode_half_time_max_rel_error": float(np.max(np.abs(times - theory) / theory)),
    }
    shallow, deep = min(config.depths), max(config.depths)
    for init_name in INITS:
      rows = {r["depth"]: r for r in table if r["part"] == "depth" and r["init"] == init_name}
      steps = {d: r["steps_to_threshold"] for d, r in rows.items()}
      censored = [d for d, v in steps.items() if v is None]
      budget = {d: config.depth_steps if v is None else v for d, v in steps.items()}
      # the shallowest depth censored: the ratio bounds nothing
      summary[f"depth_time_ratio_{init_name}"] = (
        None if steps[shallow] is None else budget[deep] / budget[shallow]
      )
      summary[f"depth_time_ratio_{init_name}_censored"] = sorted(censored)
      summary[f"steps_to_threshold_{init_name}"] = {str(d): v for d, v in sorted(steps.items())}
      summary[f"best_learning_rate_{init_name}"] = {
        str(d): r["best_learning_rate"] for d, r in sorted(rows.items())
      }
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """Mode strengths vs steps, half-times vs 1/s, and steps to threshold vs depth."""
    table = read_csv(out_dir / "results.csv")
    history = out_dir / "history.csv"
    modes = read_curves(history, "mode_strength")
    figures = [
      report.line_plot(
        modes,
        out_dir / "mode_strengths.png",
        title="mode strengths u_α(t) of a two-layer linear net (sigmoids)",
        xlabel="step",
        ylabel="u_α",
      )
    ]
    rows = [r for r in table if r["part"] == "modes"]
    inverse = [1.0 / r["singular_value"] for r in rows]
    figures.append(
      report.line_plot(
        {
          "measured": (inverse, [r["half_time"] for r in rows]),
          "theory τ/(2s) ln((s−u₀)/u₀)": (inverse, [r["half_time_theory"] for r in rows]),
        },
        out_dir / "half_time_vs_inverse_s.png",
        title="step to half strength vs 1/s",
        xlabel="1 / s",
        ylabel="t_half (steps)",
      )
    )
    depth_rows = [r for r in table if r["part"] == "depth"]
    series = {}
    for r in depth_rows:
      xs, ys = series.setdefault(f"{r['init']} init", ([], []))
      xs.append(r["depth"])
      ys.append(r["steps_to_threshold"] if isinstance(r["steps_to_threshold"], float) else np.nan)
    figures.append(
      report.line_plot(
        series,
        out_dir / "steps_vs_depth.png",
        title="fewest SGD steps to the loss threshold (best rate per depth)",
        xlabel="depth (weight matrices)",
        ylabel="steps",
        logx=True,
        logy=True,
      )
    )
    figures.append(
      report.line_plot(
        read_curves(history, "train_loss_at_best_rate"),
        out_dir / "loss_at_best_rate.png",
        title="training loss at each depth's best rate",
        xlabel="step",
        ylabel="½ mean ‖f(x) − y‖²",
        logy=True,
      )
    )
    return figures


def mode_strengths(config: ml_collections.ConfigDict, data: data_lib.Dataset) -> tuple:
  """(a): u_α(t) for t = 0 .. mode_steps of a two-layer net, the target's s_α, and u_α(0).

  The modes come from the SVD of Σ₃₁ = YᵀX/n = W (exact on whitened data); u_α(t) is
  v_αᵀ M(t) u_α with M(t) = f(I), the network's map applied to the identity (kernels are
  (fan_in, fan_out), so f(x) = x M and M → Wᵀ). The net descends the full-batch loss
  ½ mean ‖f(x) − y‖² (`train.descend`, plain gradient descent with rate ε).
  """
  n = data.x_train.shape[0]
  u, s, vt = np.linalg.svd(np.asarray(data.y_train.T @ data.x_train) / n)
  k = len(config.singular_values)
  left, right = jnp.asarray(u[:, :k]), jnp.asarray(vt[:k].T)
  model = models.functional(
    models.build_model(
      "deep_linear",
      config.dim,
      config.dim,
      seed=config.seed,
      width=config.dim,
      depth=2,
      init="glorot_normal",
      init_scale=config.mode_init_scale,
    )
  )
  eye = jnp.eye(config.dim, dtype=data.x_train.dtype)

  def loss(params) -> jax.Array:
    outputs = model.apply(params, model.model_state, data.x_train, True)[0]
    return losses.mean_squared_error(outputs, data.y_train)

  def strengths(params, _) -> jax.Array:
    product = model.apply(params, model.model_state, eye, False)[0]
    return jnp.einsum("ia,ij,ja->a", right, product, left)

  @jax.jit
  def trajectory(params):
    optimizer = optim.sgd(config.mode_learning_rate)
    return train.descend(loss, params, optimizer, steps=config.mode_steps, record=strengths)

  path = np.asarray(trajectory(model.params).records, np.float64)
  return path, s[:k], path[0]


def half_time(path: np.ndarray, target: float) -> float:
  """The first step at which a mode's strength reaches target/2, linearly interpolated."""
  above = np.nonzero(path >= target / 2)[0]
  if above.size == 0 or above[0] == 0:
    return float("nan")
  t = above[0]
  return float(t - 1 + (target / 2 - path[t - 1]) / (path[t] - path[t - 1]))


def steps_to_threshold(
  config: ml_collections.ConfigDict, data: data_lib.Dataset, init_name: str, depth: int
) -> dict:
  """(b): one depth's learning-rate sweep (full-batch SGD, `sweep.run`); the fewest steps to the
  loss threshold, its rate and its loss curve (steps, values)."""
  problem = problem_lib.builtin(
    "deep_linear", data, loss="mse", init=INITS[init_name], width=config.dim, depth=depth
  )
  result = sweep.run(
    problem,
    optim.sgd,
    {"learning_rate": list(config.learning_rates)},
    steps=config.depth_steps,
    eval_every=config.eval_every,
    batch_size=config.num_examples,
    seed=config.seed,
  )
  # The zero network's loss ½ mean ‖W x‖² is ½ Σ s² on whitened inputs (Σ₁₁ = I).
  threshold = config.loss_threshold * 0.5 * float(np.sum(np.square(config.singular_values)))
  rates = {row["member"]: row["learning_rate"] for row in result.table}
  curves = history_curves(result.history, "train_loss")
  # No member reaching the threshold: report the one with the lowest final loss, steps None.
  lowest = min(curves, key=lambda m: np.nan_to_num(curves[m][1][-1], nan=np.inf))
  best = {"steps": None, "learning_rate": rates[lowest], "curve": curves[lowest]}
  for member, (steps, values) in curves.items():
    reached = [step for step, value in zip(steps, values, strict=True) if value <= threshold]
    if reached and (best["steps"] is None or reached[0] < best["steps"]):
      best = {"steps": reached[0], "learning_rate": rates[member], "curve": (steps, values)}
  return best | {"threshold": threshold}
