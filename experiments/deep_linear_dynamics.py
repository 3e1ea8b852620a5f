"""Learning dynamics of deep linear networks (Saxe, McClelland & Ganguli 2013; book §8.2.3, §8.4).

Training data: exactly whitened inputs, Σ₁₁ = XᵀX/n = I, and targets y = W x with W = U diag(s) Vᵀ
(`data.whitened_linear_regression`), under the loss ½ mean ‖f(x) − y‖².

(a) Modes. A two-layer `models.DeepLinear` from a small random initialization, trained by
full-batch gradient descent with rate ε (time constant τ = 1/ε steps), learns each mode's strength
u_α(t) = v_αᵀ (W₁ᵀW₂ᵀ) u_α along a sigmoid (Saxe et al. eq. 6), reaching half of s_α at
t_half = τ/(2 s_α) · ln((s_α − u₀)/u₀) (their eq. 7 with u_f = s_α/2): a time ∝ 1/s_α up to the
slowly varying logarithm. We record u_α(t) at every step of the descent (`train.descend`), find
t_half, and fit t_half against 1/s_α. Eq. 7 assumes 0 < u₀ < s_α; a small random initialization
gives strengths of either sign (and unbalanced layers), so the theory's time is taken from |u₀|:
each mode's t_half is approximate (`mode_half_time_max_rel_error`, reported, not judged), and the
claim judged is the slope against 1/s_α, which the logarithm barely moves.

(b) Depth. Saxe et al. (§4, their Fig. 6) compare depths at each depth's best learning rate.
Here the task has the singular values `depth_singular_values` (input and output width d, their
number; n = d whitened examples give the same full-batch loss ½‖M − W‖²_F as any n ≥ d), the
hidden layers are much wider (`width`) than d, and for each
depth a learning-rate sweep (`jaxopt_study.sweep`, one vmapped program of rates × seeds, full
batch, plain SGD) times each run to bring the loss below a fraction of the zero network's loss,
½ mean ‖y‖², for good: the crossing after which it stays below to the end of the run (interpolated
between evaluations in log loss, `grids.steps_to_reach(stay=True)`; a rate at the edge of
stability passes below and climbs back, which is no learning time). The rates are
`rates_per_decade` per decade (≥ 8) of ε·depth over `rate_times_depth` (the best rate of a deep
linear net scales about as 1/depth: the step changes the map through every layer at once), and
the median over ≥ 3 seeds ranks them. Each seed is judged at the rate best on the other seeds
(leave one seed out, `grids.held_out_rows`; `held_out_learning_rates`), so that no seed's time
picked the rate it is judged at (picking and judging on the same seeds favours the rate whose
seeds happened to be fast); a held-out pick at the edge of its grid is flagged: the search did not
bracket it, and the claim is inconclusive. The rate best on all the seeds and its median
(`best_learning_rate_*`, `steps_to_threshold_*`) are shown, not judged.
With orthogonal initialization (dynamical isometry) the learning time at the best rate does not
grow with depth; with a scaled Gaussian initialization it does.

Claims (`summary.json`): `mode_time_vs_inverse_s_slope` (steps per unit 1/s, with its R², the
slope of the theory's t_half and `mode_time_slope_rel_error`, |slope / theory's − 1|; one
initialization, judged on the bare value), and `depth_time_ratio_orthogonal` (below 2) and
`depth_time_ratio_gaussian` (above 1): deepest over shallowest depth, each seed at each depth's
rate best on the other seeds (the one with their fewest median steps), paired by seed (the
sweep's seed draws the initialization at each depth; the data are one draw): the geometric mean
over seeds of the per-seed ratio of steps (`*_by_seed`), with the delta-method standard error of
its log (`verdicts.paired_ratio_by_seed`, `*_se`) and its degrees of freedom (`*_dof`, one less
than the seeds). Each is judged on the log scale, beyond t_{0.975, dof} standard errors of its
threshold, and refused (inconclusive) when `*_at_grid_edge` (a held-out pick of the shallowest or
the deepest depth at its grid's edge; `best_rate_at_grid_edge_*`, the depths with one). The
per-seed steps at their held-out rates are `steps_to_threshold_*_by_seed` (None: never reached).

Censoring. A seed whose run at its held-out rate never reaches the threshold within `depth_steps`
is censored (`*_censored_seeds`, per depth; `*_censored`, the depths among the two compared that
have one), and so is a seed whose other seeds' medians reach it at no rate (no held-out rate):
its time is at least the budget. At the deepest depth it counts as the budget (without a held-out
rate, as its fewest steps over the whole grid, or the budget), a lower bound on its ratio, so the
geometric mean is a lower bound (kept in `*_lower_bound`), and it decides only where the bound
lies above the threshold beyond the same margin: for Gaussian init that is "reproduced" (a lower
bound can only understate a ratio above 1), for orthogonal init "not reproduced"; otherwise the
value is None (undecided). A censored seed at the shallowest depth would make its ratio an upper
bound: the value is None.
"""

import functools
import math
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
from jaxopt_study.lab import grids, verdicts
from jaxopt_study.lab.curves import history_curves, read_curves
from jaxopt_study.results import read_csv

INITS = {"orthogonal": "orthogonal", "gaussian": "lecun_normal"}
# The protocol of Saxe et al.'s depth comparison (§4): rates fine enough to find each depth's
# best, medians over seeds, hidden layers much wider than the input and output.
MIN_RATES_PER_DECADE, MIN_SEEDS, MIN_WIDTH_OVER_DIM = 8, 3, 4
# The criteria's thresholds on deepest/shallowest time: orthogonal "≈ 1" as below 2, Gaussian
# growing as above 1.
THRESHOLDS = {"orthogonal": 2.0, "gaussian": 1.0}
# A lower bound on a ratio (the deepest depth censored) decides only where the bound itself lies
# above its threshold beyond the criteria's margin: the true ratio can then only lie further above.
BOUND_DECIDES = {
  name: above("bound", threshold, standard_error="bound_se", ratio=True)
  for name, threshold in THRESHOLDS.items()
}


class DeepLinearDynamics(Experiment):
  """Mode half-times of a two-layer linear net, and steps to a loss threshold against depth."""

  NAME = "deep_linear_dynamics"
  TITLE = "Saxe et al. (2013): learning dynamics of deep linear networks"
  SECTION = "8.4"
  DESCRIPTION = (
    "Deep linear networks on exactly whitened data whose input-output map has chosen singular "
    "values s. (a) A two-layer net from a small random init learns each mode along a sigmoid; "
    "the step at which a mode reaches half its strength is fitted against 1/s (theory: τ/(2s) "
    "ln((s−u₀)/u₀), τ = 1/learning rate). (b) Nets with hidden layers much wider than their input "
    "and output, at several depths: for each depth a learning-rate search (at least 8 rates per "
    "decade, several seeds) times each seed at the rate with the fewest median full-batch SGD "
    "steps over the other seeds (leave one seed out, so that no seed's time picks its own rate) "
    "to bring the loss below a fraction of the zero network's loss, for orthogonal and for scaled "
    "Gaussian (LeCun normal) initialization. Saxe et al. predict a depth-independent time for "
    "orthogonal init and a growing one for Gaussian init. The deepest over the shallowest depth's "
    "steps is taken per seed (the same initialization seed at both depths) and averaged "
    "geometrically, judged beyond t_{0.975, dof} standard errors of its threshold. A seed that "
    "does not reach the threshold within the step budget counts as the budget (a lower bound, "
    "listed as censored), which decides only where even the bound is clearly above the threshold; "
    "a rate picked at the edge of its grid makes the claim inconclusive."
  )
  PUBLISHED = {
    "mode_time_vs_inverse_s_slope": "t_half ∝ 1/s, slope τ/2·ln(s/u₀) (Saxe et al. 2013, eq. 7)",
    "depth_time_ratio_orthogonal": "≈ 1: depth-independent learning time (Saxe et al. 2013, §4)",
    "depth_time_ratio_gaussian": "> 1, growing with depth (Saxe et al. 2013, Fig. 5)",
  }
  # The fitted slope within 20% of the theory's; "≈ 1" as: less than doubles from the shallowest
  # to the deepest depth, each seed at each depth's rate best on the other seeds.
  CRITERIA = {
    "mode_time_vs_inverse_s_slope": below("mode_time_slope_rel_error", 0.2),
    "depth_time_ratio_orthogonal": below(
      "depth_time_ratio_orthogonal",
      THRESHOLDS["orthogonal"],
      standard_error="depth_time_ratio_orthogonal_se",
      ratio=True,
      unless="depth_time_ratio_orthogonal_at_grid_edge",
    ),
    "depth_time_ratio_gaussian": above(
      "depth_time_ratio_gaussian",
      THRESHOLDS["gaussian"],
      standard_error="depth_time_ratio_gaussian_se",
      ratio=True,
      unless="depth_time_ratio_gaussian_at_grid_edge",
    ),
  }
  FIELDS = {
    **dict.fromkeys(
      ("dim", "width", "num_examples", "mode_steps", "depth_steps", "eval_every"),
      validate.require_positive_int,
    ),
    **dict.fromkeys(
      ("singular_values", "depth_singular_values"),
      functools.partial(validate.require_sequence, each=validate.require_positive, min_length=2),
    ),
    "depths": functools.partial(
      validate.require_sequence, each=validate.require_positive_int, min_length=2
    ),
    "seeds": validate.seeds(min_length=MIN_SEEDS),
    "rate_times_depth": functools.partial(
      validate.require_sequence, each=validate.require_positive, min_length=2
    ),
    "rates_per_decade": functools.partial(validate.require_int, low=MIN_RATES_PER_DECADE),
    **dict.fromkeys(("mode_learning_rate", "mode_init_scale"), validate.require_positive),
    "loss_threshold": functools.partial(validate.require_unit_interval, include_zero=False),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """At most `dim` singular values, enough examples to whiten the inputs, hidden layers much
    wider than part (b)'s input and output, distinct seeds and a rate range [low, high]."""
    depth_dim = len(config.depth_singular_values)
    if config.width < MIN_WIDTH_OVER_DIM * depth_dim:
      raise ValueError(
        f"{self.NAME}: width={config.width} must be >= {MIN_WIDTH_OVER_DIM} × "
        f"len(depth_singular_values)={depth_dim}, the input and output width of part (b) "
        "(hidden layers much wider than the input and output, as in Saxe et al. §4)"
      )
    if len(set(config.seeds)) < MIN_SEEDS:
      raise ValueError(
        f"{self.NAME}: seeds={list(config.seeds)} must hold >= {MIN_SEEDS} distinct seeds"
      )
    low, high, *rest = config.rate_times_depth
    if rest or not low < high:
      raise ValueError(
        f"{self.NAME}: rate_times_depth={list(config.rate_times_depth)} must be [low, high] "
        "with low < high"
      )
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
    """(a) mode strengths of a two-layer net, then (b) a rate × seed sweep per init and depth,
    each a member that a later run in the same folder resumes."""
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
    depth_dim = len(config.depth_singular_values)
    # n = dim whitened examples: the full-batch loss is ½‖M − W‖²_F for any n ≥ dim (Σ₁₁ = I)
    depth_data = data_lib.whitened_linear_regression(
      jax.random.key(config.seed),
      depth_dim,
      depth_dim,
      depth_dim,
      list(config.depth_singular_values),
    )
    for init_name, depth in tqdm(jobs, desc="depths", disable=not progress):
      record, _ = members.get(
        f"{init_name}-depth{depth}",
        functools.partial(depth_search, config, depth_data, init_name, depth),
      )
      table += record["rows"]
      history += record["history"]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Half-times against 1/s (fit, R², the theory's slope), and per initialization each seed's
    steps at each depth's rate best on the other seeds, deepest over shallowest depth, paired by
    seed (geometric mean, its standard error and degrees of freedom; censored seeds as in the
    module's docstring; flagged where a held-out pick sits at the edge of its grid)."""
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
    runs = [r for r in table if r["part"] == "run"]
    _, best, _ = rate_search(runs)  # shown, not judged
    picks, at_edge = held_out_search(runs)
    shallow, deep = min(config.depths), max(config.depths)
    seeds = sorted(set(config.seeds))
    held_out_rates = {}
    for init_name in INITS:
      chosen = {d: best.get((init_name, d)) for d in config.depths}
      held_out = {d: picks.get((init_name, d), {}) for d in config.depths}
      steps = {d: None if r is None else r["steps_to_threshold"] for d, r in chosen.items()}
      edges = sorted(d for d in config.depths if at_edge.get((init_name, d), False))
      by_seed = {
        d: {s: held_out[d][s]["steps_to_threshold"] if s in held_out[d] else None for s in seeds}
        for d in config.depths
      }
      censored = {d: [s for s in seeds if by_seed[d][s] is None] for d in (shallow, deep)}
      # the deepest depth's censored seeds count as their bound, a lower bound on their time; a
      # censored seed of the shallowest depth bounds nothing (None: no ratio)
      deep_bounds = censored_bounds(runs, init_name, deep, held_out[deep], config.depth_steps)
      numerator = {
        s: deep_bounds[s] if by_seed[deep][s] is None else by_seed[deep][s] for s in seeds
      }
      ratio, se, dof = verdicts.paired_ratio_by_seed(numerator, by_seed[shallow])
      bound = ratio if censored[deep] else None
      if bound is not None and not BOUND_DECIDES[init_name](
        {"bound": bound, "bound_se": se, "bound_dof": dof}
      ):
        ratio = None  # a lower bound that is not beyond its margin above the threshold
      key = f"depth_time_ratio_{init_name}"
      summary[key] = ratio
      summary[f"{key}_se"] = se
      summary[f"{key}_dof"] = dof
      summary[f"{key}_by_seed"] = {
        str(s): verdicts.ratio(numerator[s], by_seed[shallow].get(s)) for s in seeds
      }
      summary[f"{key}_lower_bound"] = bound
      summary[f"{key}_censored"] = sorted(d for d, c in censored.items() if c)
      summary[f"{key}_censored_seeds"] = {str(d): c for d, c in censored.items()}
      summary[f"{key}_at_grid_edge"] = bool({shallow, deep} & set(edges))
      summary[f"best_rate_at_grid_edge_{init_name}"] = edges
      summary[f"steps_to_threshold_{init_name}"] = {str(d): v for d, v in steps.items()}
      summary[f"steps_to_threshold_{init_name}_by_seed"] = {
        str(d): {str(s): by_seed[d][s] for s in seeds} for d in config.depths
      }
      held_out_rates[init_name] = {
        str(d): {
          str(s): held_out[d][s]["learning_rate"] if s in held_out[d] else None for s in seeds
        }
        for d in config.depths
      }
      summary[f"best_learning_rate_{init_name}"] = {
        str(d): None if r is None else r["learning_rate"] for d, r in chosen.items()
      }
      summary[f"seeds_reaching_threshold_{init_name}"] = {
        str(d): None if r is None else r["num_finite"] for d, r in chosen.items()
      }
    summary["held_out_learning_rates"] = held_out_rates
    summary["num_seeds"] = len(set(config.seeds))
    summary["rates_per_decade"] = config.rates_per_decade
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """Mode strengths vs steps, half-times vs 1/s, steps to threshold vs depth and vs rate, and
    the loss curves at the best rates."""
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
    medians, best, _ = rate_search(table)
    series = {}
    for (init_name, depth), row in sorted(best.items()):
      xs, ys = series.setdefault(f"{init_name} init", ([], []))
      xs.append(depth)
      ys.append(row["steps_to_threshold"])
    searched = grids.curves_over_column(
      medians, lambda row: f"{row['init']} depth {row['depth']:g}", "steps_to_threshold"
    )
    figures.append(
      report.line_plot(
        series,
        out_dir / "steps_vs_depth.png",
        title="median SGD steps to the loss threshold at each depth's best rate",
        xlabel="depth (weight matrices)",
        ylabel="steps",
        logx=True,
        logy=True,
      )
    )
    figures.append(
      report.line_plot(
        searched,
        out_dir / "steps_vs_learning_rate.png",
        title="median steps to the loss threshold over the rate grid (missing: not reached)",
        xlabel="learning rate",
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


def learning_rates(config: ml_collections.ConfigDict, depth: int) -> list[float]:
  """The rates searched at `depth`: ε·depth log-spaced over `rate_times_depth`, at least
  `rates_per_decade` per decade, both ends included."""
  low, high = config.rate_times_depth
  count = math.ceil(config.rates_per_decade * math.log10(high / low) - 1e-9) + 1
  return [float(r) for r in np.geomspace(low / depth, high / depth, count)]


def depth_search(
  config: ml_collections.ConfigDict, data: data_lib.Dataset, init_name: str, depth: int
) -> tuple[dict, dict]:
  """(b): one depth's rate × seed sweep (full-batch SGD, one `sweep.run` program): each run's
  steps to the loss threshold (None: not reached), and the loss curves at the best rate, as a
  `Members` record."""
  problem = problem_lib.builtin(
    "deep_linear", data, loss="mse", init=INITS[init_name], width=config.width, depth=depth
  )
  result = sweep.run(
    problem,
    optim.sgd,
    {"learning_rate": learning_rates(config, depth), "seed": list(config.seeds)},
    steps=config.depth_steps,
    eval_every=config.eval_every,
    batch_size=data.x_train.shape[0],
    seed=config.seed,
  )
  # The zero network's loss ½ mean ‖W x‖² is ½ Σ s² on whitened inputs (Σ₁₁ = I).
  threshold = config.loss_threshold * 0.5 * float(np.sum(np.square(config.depth_singular_values)))
  curves = history_curves(result.history, "train_loss")
  rows = [
    {
      "member": f"{init_name} depth {depth} lr {row['learning_rate']:.4g} seed {row['seed']}",
      "part": "run",
      "init": init_name,
      "depth": depth,
      "learning_rate": row["learning_rate"],
      "seed": row["seed"],
      "steps_to_threshold": grids.steps_to_reach(
        *curves[row["member"]], threshold, log=True, stay=True
      ),
      "final_train_loss": row["final_train_loss"],
      "diverged": bool(row["diverged"]),
      "loss_threshold": threshold,
    }
    for row in result.table
  ]
  best = rate_search(rows)[1].get((init_name, depth))
  history = grids.history_at_rate(
    result.table, best, curves, f"{init_name} depth {depth}", "train_loss_at_best_rate"
  )
  return {"rows": rows, "history": history}, {}


def censored_bounds(
  runs: list[dict], init_name: str, depth: int, picked: dict, budget: int
) -> dict[int, float]:
  """Per seed, a lower bound on its steps at its held-out rate where its run there is censored:
  the step budget for a seed of `picked` (`held_out_search`'s rows of the depth, by seed); for a
  seed without a held-out rate (no rate's median over the other seeds reaches the threshold), its
  fewest steps over the whole grid (the budget where no rate reaches it), a bound on its time at
  any rate of the grid."""
  fewest: dict[int, float] = {}
  for r in runs:
    if (r["init"], r["depth"]) != (init_name, depth):
      continue
    seed, steps = int(r["seed"]), r["steps_to_threshold"]
    counted = steps if seed not in picked and validate.is_finite_number(steps) else budget
    fewest[seed] = min(fewest.get(seed, float(budget)), float(counted))
  return fewest


def rate_search(table: list[dict]) -> tuple[list[dict], dict, dict]:
  """`grids.best_by_median` of the steps to the loss threshold per (init, depth), over the runs'
  rows: the medians over seeds, each best rate (absent where no rate's median reaches the
  threshold) and whether it is at its grid's edge."""
  runs = [r for r in table if r["part"] == "run"]
  return grids.best_by_median(runs, ("init", "depth"), "steps_to_threshold")


def held_out_search(runs: list[dict]) -> tuple[dict, dict]:
  """`grids.held_out_rows` of the steps to the loss threshold per (init, depth): each seed's run at
  the rate with the fewest median steps over the other seeds (a seed whose other seeds' medians
  reach the threshold at no rate has none) and whether any of those picks is at its grid's edge."""
  return grids.held_out_rows(runs, ("init", "depth"), "steps_to_threshold")
