"""Learning dynamics of deep linear networks (Saxe, McClelland & Ganguli 2013; book §8.2.3, §8.4).

Training data: exactly whitened inputs, Σ₁₁ = XᵀX/n = I, and targets y = W x with W = U diag(s) Vᵀ
(`data.whitened_linear_regression`), under the loss ½ mean ‖f(x) − y‖².

(a) Modes. A two-layer `models.DeepLinear` from a small random initialization, trained by
full-batch gradient descent with rate ε (time constant τ = 1/ε steps), learns each mode's strength
u_α(t) = v_αᵀ (W₁ᵀW₂ᵀ) u_α along a sigmoid (Saxe et al. eq. 6), reaching half of s_α at
t_half = τ/(2 s_α) · ln((s_α − u₀)/u₀) (their eq. 7 with u_f = s_α/2): a time ∝ 1/s_α up to the
slowly varying logarithm. We record u_α(t) through the training loop's steps, find t_half, and fit
t_half against 1/s_α.

(b) Depth. For each depth, a learning-rate sweep (`jaxopt_study.sweep`, full batch, plain SGD)
gives the fewest steps to bring the loss below a fraction of the zero network's loss,
½ mean ‖y‖². Saxe et al. (§3-4) show that with orthogonal initialization (dynamical isometry) the
learning time at the best rate does not grow with depth, while a scaled Gaussian initialization's
does.

Claims (`summary.json`): `mode_time_vs_inverse_s_slope` (steps per unit 1/s, with its R² and the
slope of the theory's t_half), `depth_time_ratio_orthogonal` and `depth_time_ratio_gaussian`
(steps at the deepest over the shallowest depth; a depth that never reaches the threshold counts
as the step budget, flagged in `*_censored`).
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, report, sweep, train
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import ExperimentResults, RunDir, read_csv

TITLE = "Saxe et al. (2013): learning dynamics of deep linear networks"
SECTION = "8.4"
DESCRIPTION = (
  "Deep linear networks on exactly whitened data whose input-output map has chosen singular "
  "values s. (a) A two-layer net from a small random init learns each mode along a sigmoid; the "
  "step at which a mode reaches half its strength is fitted against 1/s (theory: τ/(2s) "
  "ln((s−u₀)/u₀), τ = 1/learning rate). (b) For each depth, a learning-rate sweep finds the "
  "fewest full-batch SGD steps to bring the loss below a fraction of the zero network's loss, "
  "for orthogonal and for scaled Gaussian (LeCun normal) initialization: Saxe et al. predict a "
  "depth-independent time for orthogonal init and a growing one for Gaussian init. At this "
  "scale (dim 8, one seed, quick config) the direction reproduces but orthogonal init is not "
  "flat: 30, 790 and 100 steps at depths 2, 8 and 32, while Gaussian init needs 30 steps at "
  "depth 2 and does not reach the threshold in 1000 steps at depths 8 and 32. From a small "
  "random (not decoupled) init the mode half-times follow 1/s with R² ≈ 0.9 and a slope within "
  "a factor 2 of the theory's. The full config (dim 16, depths 2-32, 3000 steps) gives "
  "orthogonal 40, 100, 150, 1700, 460 steps at depths 2, 4, 8, 16, 32 (ratio 11.5, not flat), "
  "Gaussian 40 and 280 at depths 2 and 4 and no threshold within 3000 steps beyond (ratio ≥ 75); "
  "mode half-times against 1/s: R² 0.95, slope 453 vs the theory's 496."
)
PUBLISHED = {
  "mode_time_vs_inverse_s_slope": "t_half ∝ 1/s, slope τ/2·ln(s/u₀) (Saxe et al. 2013, eq. 7)",
  "depth_time_ratio_orthogonal": "≈ 1: depth-independent learning time (Saxe et al. 2013, §4)",
  "depth_time_ratio_gaussian": "> 1, growing with depth (Saxe et al. 2013, Fig. 5)",
}
INITS = {"orthogonal": "orthogonal", "gaussian": "lecun_normal"}


def check(config: ml_collections.ConfigDict) -> None:
  """Refuses a config that cannot run, naming the field, before anything is compiled."""
  for field in ("dim", "num_examples", "mode_steps", "depth_steps", "eval_every"):
    if not isinstance(config[field], int) or config[field] < 1:
      raise ValueError(f"{field}={config[field]!r}: must be an integer ≥ 1")
  s = list(config.singular_values)
  if len(s) < 2 or len(s) > config.dim or any(v <= 0 for v in s):
    raise ValueError(f"singular_values={s}: need 2 to dim={config.dim} positive values")
  if config.num_examples < config.dim:
    raise ValueError(f"num_examples={config.num_examples}: must be ≥ dim={config.dim}")
  depths = list(config.depths)
  if len(depths) < 2 or any(not isinstance(d, int) or d < 1 for d in depths):
    raise ValueError(f"depths={depths}: need ≥ 2 integer depths ≥ 1")
  rates = list(config.learning_rates)
  if not rates or any(r <= 0 for r in rates):
    raise ValueError(f"learning_rates={rates}: must be a non-empty list of positive rates")
  if not 0 < config.mode_learning_rate or not 0 < config.mode_init_scale:
    raise ValueError("mode_learning_rate and mode_init_scale must be positive")
  if not 0.0 < config.loss_threshold < 1.0:
    raise ValueError(f"loss_threshold={config.loss_threshold!r}: must lie in (0, 1)")


def _dataset(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  return data_lib.whitened_linear_regression(
    jax.random.key(config.seed),
    config.num_examples,
    config.dim,
    config.dim,
    list(config.singular_values),
  )


def mode_strengths(config: ml_collections.ConfigDict, data: data_lib.Dataset) -> tuple:
  """(a): u_α(t) for t = 0 .. mode_steps of a two-layer net, the target's s_α, and u_α(0).

  The modes come from the SVD of Σ₃₁ = YᵀX/n = W (exact on whitened data); u_α(t) is
  v_αᵀ M(t) u_α with M(t) = f(I), the network's map applied to the identity (kernels are
  (fan_in, fan_out), so f(x) = x M and M → Wᵀ).
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
  loop = train.make_train_loop(
    model, optim.sgd(config.mode_learning_rate), batch_size=n, loss="mse"
  )
  eye = jnp.eye(config.dim, dtype=data.x_train.dtype)

  def strengths(state: train.TrainState) -> jax.Array:
    product = model.apply(state.params, state.model_state, eye, False)[0]
    return jnp.einsum("ia,ij,ja->a", right, product, left)

  def step(state, _):
    state = loop.step(state, data, jax.random.key(config.seed), None)
    return state, strengths(state)

  @jax.jit
  def trajectory(params, model_state):
    state = loop.init(params, model_state)
    _, path = jax.lax.scan(step, state, None, length=config.mode_steps)
    return jnp.concatenate([strengths(state)[None], path])

  path = np.asarray(trajectory(model.params, model.model_state), np.float64)
  return path, s[:k], path[0]


def half_time(path: np.ndarray, target: float) -> float:
  """The first step at which a mode's strength reaches target/2, linearly interpolated."""
  above = np.nonzero(path >= target / 2)[0]
  if above.size == 0 or above[0] == 0:
    return float("nan")
  t = above[0]
  return float(t - 1 + (target / 2 - path[t - 1]) / (path[t] - path[t - 1]))


def steps_to_threshold(config: ml_collections.ConfigDict, init_name: str, depth: int) -> dict:
  """(b): one depth's learning-rate sweep; the fewest steps to the loss threshold, and its rate."""
  sweep_config = ml_collections.ConfigDict(
    {
      "seed": config.seed,
      "steps": config.depth_steps,
      "eval_every": config.eval_every,
      "batch_size": config.num_examples,
      "learning_rate": config.learning_rates[0],
      "loss": "mse",
      "data": {
        "name": "whitened_linear_regression",
        "num_examples": config.num_examples,
        "in_dim": config.dim,
        "out_dim": config.dim,
        "singular_values": list(config.singular_values),
      },
      "model": {
        "name": "deep_linear",
        "width": config.dim,
        "depth": depth,
        "init": INITS[init_name],
        "init_scale": 1.0,
      },
      "optimizer": {"name": "sgd"},
      "sweep": {"learning_rate": list(config.learning_rates)},
    }
  )
  result = sweep.run_config(sweep_config)
  # The zero network's loss ½ mean ‖W x‖² is ½ Σ s² on whitened inputs (Σ₁₁ = I).
  threshold = config.loss_threshold * 0.5 * float(np.sum(np.square(config.singular_values)))
  rates = {row["member"]: row["learning_rate"] for row in result.table}
  curves: dict[str, list[tuple[int, float]]] = {}
  for row in result.history:
    if row["metric"] == "train_loss":
      curves.setdefault(row["member"], []).append((row["step"], row["value"]))
  # No member reaching the threshold: report the one with the lowest final loss, steps None.
  lowest = min(curves, key=lambda m: np.nan_to_num(curves[m][-1][1], nan=np.inf))
  best = {"steps": None, "learning_rate": rates[lowest], "curve": curves[lowest]}
  for member, points in curves.items():
    reached = [step for step, value in points if value <= threshold]
    if reached and (best["steps"] is None or reached[0] < best["steps"]):
      best = {"steps": reached[0], "learning_rate": rates[member], "curve": points}
  return best | {"threshold": threshold}


def run(
  config: ml_collections.ConfigDict, run_dir: RunDir | None = None, progress: bool = True
) -> ExperimentResults:
  """(a) mode strengths of a two-layer net, then (b) a learning-rate sweep per init and depth."""
  check(config)
  del run_dir  # a few sweeps of seconds each: nothing worth resuming
  data = _dataset(config)
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
    best = steps_to_threshold(config, init_name, depth)
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
      for step, value in best["curve"]
    ]
  return ExperimentResults(table, history, _summarize(table, config))


def _summarize(table: list[dict], config: ml_collections.ConfigDict) -> dict:
  modes = [r for r in table if r["part"] == "modes"]
  inverse = np.asarray([1.0 / r["singular_value"] for r in modes])
  times = np.asarray([r["half_time"] for r in modes])
  theory = np.asarray([r["half_time_theory"] for r in modes])
  slope, intercept = np.polyfit(inverse, times, 1)
  r_squared = 1.0 - np.sum((times - (slope * inverse + intercept)) ** 2) / np.sum(
    (times - times.mean()) ** 2
  )
  summary = {
    "mode_time_vs_inverse_s_slope": float(slope),
    "mode_time_vs_inverse_s_r_squared": float(r_squared),
    "mode_time_vs_inverse_s_slope_theory": float(np.polyfit(inverse, theory, 1)[0]),
    "mode_half_time_max_rel_error": float(np.max(np.abs(times - theory) / theory)),
  }
  shallow, deep = min(config.depths), max(config.depths)
  for init_name in INITS:
    rows = {r["depth"]: r for r in table if r["part"] == "depth" and r["init"] == init_name}
    steps = {d: r["steps_to_threshold"] for d, r in rows.items()}
    censored = [d for d, v in steps.items() if v is None]
    budget = {d: config.depth_steps if v is None else v for d, v in steps.items()}
    summary[f"depth_time_ratio_{init_name}"] = budget[deep] / budget[shallow]
    summary[f"depth_time_ratio_{init_name}_censored"] = sorted(censored)
    summary[f"steps_to_threshold_{init_name}"] = {str(d): v for d, v in sorted(steps.items())}
    summary[f"best_learning_rate_{init_name}"] = {
      str(d): r["best_learning_rate"] for d, r in sorted(rows.items())
    }
  return summary


def plot(out_dir: Path) -> list[Path]:
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
