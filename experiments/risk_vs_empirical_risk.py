"""§8.1.1 "Empirical risk minimization": the empirical risk's minimizer is not the risk's.

Goodfellow et al. (2016), §8.1.1: we would like to minimize the risk J*(θ) = E_{(x,y)~p_data}
L(f(x; θ), y) (eq. 8.2) but minimize the empirical risk, its average over the m training examples
(eq. 8.3), so the point found is the best for the training sample, not for the distribution.

(a) The picture of Zhang et al. (*Dive into Deep Learning*, §12.1): the risk f(x) = x·cos(πx) and
an empirical risk g(x) = f(x) + a·cos(kπx) on an interval (`jaxopt_study.lab.one_dim`); their
argmins on a fine grid, and the excess risk f(argmin g) − min f paid for minimizing g.

(b) The same on a real model: a one-hidden-layer MLP of digits, trained from the same
initialization on a small training set (the empirical risk) and on the held-out set, which is
many times larger and stands in for p_data (the risk). Both objectives carry the same L2 penalty
(α/2)‖θ‖² (§7.1.1), so each has minimizers and the two differ only in their data; each is
minimized by full-batch Adam (Algorithm 8.7, `train.descend`) to a small gradient (reported).
Along the line θ(t) = (1 − t) θ_E + t θ_R through the two minimizers, the training objective is
lowest near t = 0 and the held-out one near t = 1; the held-out objective at the training argmin
exceeds its minimum on the line. Repeated over seeds (each its own initialization), reported as
mean ± std.

Claims (`summary.json`): `argmin_risk`, `argmin_empirical_risk`, `risk_at_empirical_argmin_excess`
and `argmin_distance_in_grid_steps`, |argmin g − argmin f| over the grid's spacing (a); per seed
(`per_seed`) and as mean ± std, `line_argmin_empirical`, `line_argmin_heldout`,
`heldout_excess_at_empirical_argmin`, and the held-out NLL (no penalty) at both minimizers, with
`line_argmin_distance_in_steps` per seed, |t_E − t_R| over the line's spacing (b).

`CRITERIA` judge them into `verdicts`: the argmins differ by more than one grid step; the excess
risk is > 0; for every seed, the line's two argmins more than one step apart, and the held-out
excess's mean over seeds above 0 beyond its error bar. Part (a) is deterministic (two fixed
functions on a fixed grid), so its claims are judged on their values. Part (b) comes from random
draws (each seed's initialization). The held-out excess at the training argmin is ≥ 0 by
construction (the held-out minimum on the line is at most its value there) and > 0 wherever the
argmins are apart, so a test of it alone could not fail: each seed's distance between the line's
argmins is judged as a per-run event that every seed must show (a seed whose argmins the line
cannot tell apart fails the claim, as in (a)), and the excess itself by its mean over seeds with
`heldout_excess_at_empirical_argmin_se` and `_dof` (`verdicts.mean_and_standard_error`): it holds
only beyond t_{0.975, dof} standard errors of 0.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax

from jaxopt_study import optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, all_of
from jaxopt_study.lab import digits_tasks, landscape, one_dim, verdicts
from jaxopt_study.results import history_rows, read_csv


class RiskVsEmpiricalRisk(Experiment):
  """The argmins of a risk and of an empirical risk, in one dimension and on a digits MLP."""

  NAME = "risk_vs_empirical_risk"
  TITLE = "Chapter 8.1.1: the empirical risk's minimizer is not the risk's"
  SECTION = "8.1.1"
  DESCRIPTION = (
    "(a) The risk f(x) = x·cos(πx) and an empirical risk g(x) = f(x) + 0.2·cos(5πx) on [0.5, 1.5] "
    "(Zhang et al., Dive into Deep Learning §12.1): their minimizers differ, and minimizing g "
    "costs an excess risk f(argmin g) − min f. (b) The same on a real model: a digits MLP "
    "trained to a minimizer of its L2-penalized training objective (a small training set) and, "
    "from the same initialization, of the same objective on the much larger held-out set "
    "(standing in for the risk); along the line through the two minimizers, the held-out "
    "objective at the training argmin exceeds its minimum, for every seed."
  )
  PUBLISHED = {
    "argmin_empirical_risk": "≠ argmin_risk: the empirical risk's minimizer is not the risk's "
    "(Goodfellow et al. 2016, §8.1.1; Zhang et al., Dive into Deep Learning §12.1, Fig. 12.1.1)",
    "risk_at_empirical_argmin_excess": "> 0: the point that minimizes the training objective "
    "is not the best for the risk (§8.1.1)",
    "heldout_excess_at_empirical_argmin": "> 0 for every seed (§8.1.1, on a real model); judged "
    "as: the training objective's argmin on the line is more than one step from the held-out "
    "objective's at every seed (the excess is ≥ 0 by construction, > 0 where they are apart), "
    "and the excess's mean over seeds above 0 beyond its standard error",
  }
  # (a) is deterministic (fixed functions on a fixed grid): judged on its values. (b) is random
  # (the seeds' initializations): every seed must show its argmins apart (a per-run event, as in
  # (a)), and the held-out excess, ≥ 0 by construction, must lie above 0 beyond its error bar.
  CRITERIA = {
    "argmin_empirical_risk": above("argmin_distance_in_grid_steps", 1.0),
    "risk_at_empirical_argmin_excess": above("risk_at_empirical_argmin_excess", 0.0),
    "heldout_excess_at_empirical_argmin": all_of(
      above("line_argmin_distance_in_steps", 1.0),
      above(
        "heldout_excess_at_empirical_argmin.mean",
        0.0,
        standard_error="heldout_excess_at_empirical_argmin_se",
      ),
    ),
  }
  FIELDS = {
    "toy.interval": functools.partial(validate.require_sequence, min_length=2),
    "toy.amplitude": validate.require_non_negative,
    "toy.frequency": validate.require_positive,
    "toy.num_points": functools.partial(validate.require_int, low=3),
    "data.name": digits_tasks.DIGITS,
    "seeds": validate.seeds(),
    "l2_penalty": validate.require_positive,
    "steps": validate.require_positive_int,
    "learning_rate": validate.require_positive,
    "line_range": functools.partial(validate.require_sequence, min_length=2),
    "num_line_points": functools.partial(validate.require_int, low=3),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    low, high, *more = config.toy.interval
    if more:
      raise ValueError(f"{self.NAME}: toy.interval={list(config.toy.interval)!r}: (low, high)")
    if not low < high:
      raise ValueError(f"{self.NAME}: toy.interval={list(config.toy.interval)!r}: needs low < high")
    low, high, *more = config.line_range
    if more or not (low < 0.0 and high > 1.0):
      raise ValueError(
        f"{self.NAME}: line_range={list(config.line_range)!r} must be (low, high) with low < 0 "
        "and high > 1, so that both minimizers lie inside the line's range"
      )
    try:
      digits_tasks.mlp(config.seeds[0], **config.model)
    except (TypeError, ValueError) as error:
      raise ValueError(f"{self.NAME}: model: {error}") from error

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """The 1-D curves, then both minimizers per seed and the objectives along their line."""
    toy = config.toy
    points = one_dim.grid(*toy.interval, toy.num_points)
    risk = one_dim.risk(points)
    empirical = one_dim.empirical_risk(points, toy.amplitude, toy.frequency)
    table = [
      {
        "member": "toy",
        "part": "toy",
        "argmin_risk": one_dim.grid_argmin(risk, points),
        "argmin_empirical_risk": one_dim.grid_argmin(empirical, points),
        "min_risk": float(risk.min()),
        "risk_at_empirical_argmin": float(risk[np.argmin(empirical)]),
      }
    ]
    history = history_rows(
      "toy", {"step": np.arange(points.size), "x": points, "risk": risk, "empirical": empirical}
    )
    model_table, model_history = _model_part(config)
    return Results(table + model_table, history + model_history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    toy = next(row for row in results.table if row["part"] == "toy")
    lines = [row for row in results.table if row["part"] == "model"]
    spacing = (config.toy.interval[1] - config.toy.interval[0]) / (config.toy.num_points - 1)
    excess = toy["risk_at_empirical_argmin"] - toy["min_risk"]
    per_seed = {
      field: {str(row["seed"]): row[field] for row in lines}
      for field in (
        "line_argmin_empirical",
        "line_argmin_heldout",
        "heldout_excess_at_empirical_argmin",
        "heldout_nll_at_empirical_minimizer",
        "heldout_nll_at_heldout_minimizer",
        "grad_norm_empirical",
        "grad_norm_heldout",
      )
    }
    line_step = (config.line_range[1] - config.line_range[0]) / (config.num_line_points - 1)
    excesses = list(per_seed["heldout_excess_at_empirical_argmin"].values())
    return {
      "argmin_risk": toy["argmin_risk"],
      "argmin_empirical_risk": toy["argmin_empirical_risk"],
      "risk_at_empirical_argmin_excess": excess,
      "grid_spacing": spacing,
      "line_argmin_empirical": verdicts.mean_and_std(
        list(per_seed["line_argmin_empirical"].values())
      ),
      "line_argmin_heldout": verdicts.mean_and_std(list(per_seed["line_argmin_heldout"].values())),
      "heldout_excess_at_empirical_argmin": verdicts.mean_and_std(excesses),
      "heldout_excess_at_empirical_argmin_se": verdicts.standard_error(excesses),
      "heldout_excess_at_empirical_argmin_dof": verdicts.dof(excesses),
      "heldout_nll_at_empirical_minimizer": verdicts.mean_and_std(
        list(per_seed["heldout_nll_at_empirical_minimizer"].values())
      ),
      "heldout_nll_at_heldout_minimizer": verdicts.mean_and_std(
        list(per_seed["heldout_nll_at_heldout_minimizer"].values())
      ),
      "per_seed": per_seed,
      "line_spacing": line_step,
      "argmin_distance_in_grid_steps": abs(toy["argmin_empirical_risk"] - toy["argmin_risk"])
      / spacing,
      "line_argmin_distance_in_steps": {
        str(row["seed"]): abs(row["line_argmin_empirical"] - row["line_argmin_heldout"]) / line_step
        for row in lines
      },
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The 1-D risk and empirical risk with their argmins; the objectives along each seed's
    line."""
    curves: dict[str, dict[str, list]] = {}
    for row in read_csv(out_dir / "history.csv"):
      curves.setdefault(row["member"], {}).setdefault(row["metric"], []).append(row["value"])
    toy = curves.pop("toy")
    return [
      _toy_plot(toy, out_dir / "risk_vs_empirical_risk.png"),
      _line_plot(curves, out_dir / "line_through_minimizers.png"),
    ]


def _model_part(config: ml_collections.ConfigDict) -> tuple[list, list]:
  """Per seed: θ_E and θ_R by full-batch Adam from the seed's initialization, the objectives
  along the line through them, and the argmins on the line."""
  data = digits_tasks.load(config.data)
  seeds = list(config.seeds)
  model, initial = digits_tasks.mlps(seeds, **config.model)
  nll = digits_tasks.nll(model)

  def objective(params, x, y):
    """The mean NLL plus (α/2)‖θ‖² over every parameter (as `train.train`'s `l2_penalty`)."""
    return nll(params, x, y) + 0.5 * config.l2_penalty * optax.tree.norm(params, squared=True)

  def minimize(params, x, y):
    tx = optim.adam(config.learning_rate)
    end = train.descend(
      lambda p: objective(p, x, y), params, tx, steps=config.steps, every=config.steps
    ).params
    return end, optax.tree.norm(jax.grad(objective)(end, x, y))

  fit = jax.jit(jax.vmap(minimize, in_axes=(0, None, None)))
  empirical_end, empirical_grad = fit(initial, data.x_train, data.y_train)
  heldout_end, heldout_grad = fit(initial, data.x_test, data.y_test)
  ts = np.linspace(*config.line_range, config.num_line_points)

  @jax.jit
  def along(start, end, x, y):
    """The objective and the NLL at every θ(t) of every seed: two (seeds, len(ts)) arrays."""

    def at(a, b, t):
      point = landscape.interpolate(a, b, t)
      return objective(point, x, y), nll(point, x, y)

    per_seed = jax.vmap(lambda a, b: jax.vmap(lambda t: at(a, b, t))(jnp.asarray(ts, x.dtype)))
    return per_seed(start, end)

  train_objective, train_nll = along(empirical_end, heldout_end, data.x_train, data.y_train)
  heldout_objective, heldout_nll = along(empirical_end, heldout_end, data.x_test, data.y_test)
  zero, one = int(np.argmin(np.abs(ts))), int(np.argmin(np.abs(ts - 1.0)))
  table, history = [], []
  for i, seed in enumerate(seeds):
    train_i, heldout_i = np.asarray(train_objective[i]), np.asarray(heldout_objective[i])
    at_empirical = int(np.argmin(train_i))
    member = f"seed{seed}"
    table.append(
      {
        "member": member,
        "part": "model",
        "seed": seed,
        "line_argmin_empirical": float(ts[at_empirical]),
        "line_argmin_heldout": float(ts[np.argmin(heldout_i)]),
        "heldout_excess_at_empirical_argmin": float(heldout_i[at_empirical] - heldout_i.min()),
        "heldout_nll_at_empirical_minimizer": float(heldout_nll[i, zero]),
        "heldout_nll_at_heldout_minimizer": float(heldout_nll[i, one]),
        "train_nll_at_empirical_minimizer": float(train_nll[i, zero]),
        "grad_norm_empirical": float(empirical_grad[i]),
        "grad_norm_heldout": float(heldout_grad[i]),
        "distance_between_minimizers": landscape.parameter_distance(
          landscape.select(empirical_end, i), landscape.select(heldout_end, i)
        ),
      }
    )
    lines = {
      "t": ts,
      "train_objective": train_i,
      "heldout_objective": heldout_i,
      "train_nll": np.asarray(train_nll[i]),
      "heldout_nll": np.asarray(heldout_nll[i]),
    }
    history += history_rows(member, {"step": np.arange(ts.size)} | lines)
  return table, history


def _toy_plot(toy: dict[str, list], path: Path) -> Path:
  """f and g with their argmins and the excess risk f(argmin g) − min f."""
  x, risk, empirical = (np.asarray(toy[k]) for k in ("x", "risk", "empirical"))
  x_risk, x_empirical = x[np.argmin(risk)], x[np.argmin(empirical)]
  fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
  ax.plot(x, risk, lw=2, label="risk f(x) = x·cos(πx)")
  ax.plot(x, empirical, lw=1.2, ls="--", label="empirical risk g(x)")
  ax.plot([x_risk], [risk.min()], "*", ms=13, color="tab:blue", label="min of the risk")
  ax.plot([x_empirical], [empirical.min()], "v", ms=9, color="tab:orange", label="min of g")
  at = risk[np.argmin(empirical)]
  ax.plot([x_empirical, x_empirical], [risk.min(), at], color="tab:red", lw=2)
  ax.axhline(risk.min(), color="tab:blue", lw=0.6, ls=":")
  ax.annotate(
    "excess risk",
    (x_empirical, (risk.min() + at) / 2),
    xytext=(x_empirical - 0.35, risk.min() - 0.1),
    arrowprops={"arrowstyle": "->", "color": "tab:red"},
    color="tab:red",
  )
  ax.set(title="§8.1.1: minimizing the empirical risk", xlabel="x", ylabel="risk")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)


def _line_plot(curves: dict[str, dict[str, list]], path: Path) -> Path:
  """The training and held-out objectives along θ(t), each minus its minimum on the line, one
  pair of lines per seed, the argmins marked."""
  fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
  for index, c in enumerate(curves.values()):
    t = np.asarray(c["t"])
    for key, style, color in (
      ("train_objective", "-", "tab:orange"),
      ("heldout_objective", "-", "tab:blue"),
    ):
      values = np.asarray(c[key]) - np.min(c[key])
      label = None if index else key.replace("_", " ").replace("train", "training")
      ax.plot(t, values, style, color=color, alpha=0.7, lw=1.2, label=label)
      ax.plot([t[np.argmin(values)]], [0.0], "o", color=color, ms=5)
  ax.axvline(0.0, color="tab:orange", lw=0.6, ls=":")
  ax.axvline(1.0, color="tab:blue", lw=0.6, ls=":")
  ax.set(
    title=f"θ(t) = (1 − t) θ_train + t θ_held-out ({len(curves)} seeds)",
    xlabel="t",
    ylabel="objective − its minimum on the line (NLL + α‖θ‖²/2)",
  )
  ax.set_yscale("symlog", linthresh=1e-2)
  ax.set_ylim(bottom=0.0)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)
