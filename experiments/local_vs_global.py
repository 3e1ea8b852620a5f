"""§8.2.7 "Poor correspondence between local and global structure": detours and flat regions.

Goodfellow et al. (2016), §8.2.7 and Fig. 8.4: local downhill moves follow the local slope, which
need not point at the solution. Started on the wrong side of a mountain, descent must go around it
(a long detour); started on a flat region, it barely moves. Two 2-D surfaces of
`jaxopt_study.lab.landscape.SURFACES` show both:

* `mountain`: a bowl whose minimizer lies behind a Gaussian mountain; the straight line from the
  start to the minimizer climbs over the mountain (`straight_line_rise`), descent goes around it.
* `plateau`: 1 − exp(−‖θ‖²/2) started at ‖θ‖ ≈ 5, where the gradient is ≈ 2e-5.

Each optimizer of the config (`jaxopt_study.optim`: SGD, momentum, Adam, RMSProp; Algorithms 8.1,
8.2, 8.7, 8.5) runs `steps` full-gradient steps from the surface's start (`train.descend`); its
trajectory is drawn on the contour plot.

Claims (`summary.json`): `path_length_over_distance[surface][optimizer]` (Σ‖θ_{t+1} − θ_t‖ over
‖θ_T − θ_0‖; 1 is a straight path, > 1 a detour), `stalled_on_plateau[optimizer]` (moved less than
`stall_fraction` of the way to the minimizer), `reached_minimizer[surface][optimizer]` (ended
within `reach_fraction` of the initial distance from the minimizer), `detour_to_minimizer` (the
mountain's path ratio where the minimizer was reached), `straight_line_rise` and `final_loss`.

Nothing is drawn at random: each surface is a fixed function with a fixed start, and every
optimizer takes full-gradient steps from it. So the claims are judged on their values, without an
error bar: `detour_to_minimizer` > 1.1 for every optimizer (inconclusive for one that did not
reach the minimizer) and SGD's `stalled_on_plateau`.
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
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import landscape
from jaxopt_study.results import history_rows, read_csv

FRACTION = functools.partial(validate.require_unit_interval, include_zero=False)


class LocalVsGlobal(Experiment):
  """Every optimizer of the config from the start of every surface, full-gradient steps."""

  NAME = "local_vs_global"
  TITLE = "Chapter 8.2.7: local descent takes detours and stalls on flat regions"
  SECTION = "8.2.7"
  DESCRIPTION = (
    "Trajectories of SGD, momentum, Adam and RMSProp (full gradients, constant rates) on two 2-D "
    "surfaces. 'mountain': the minimizer lies behind a mountain; the straight line to it climbs, "
    "every optimizer goes around (path length over the start-to-end distance > 1, the detour of "
    "§8.2.7 and Fig. 8.4). 'plateau': started where the gradient is ≈ 2e-5, SGD and momentum "
    "stall while Adam, which divides by a running gradient scale, walks off the plateau at ≈ ε "
    "per step; RMSProp as in Algorithm 8.5 adds δ = 1e-6 under the root, which exceeds "
    "r ≈ g² ≈ 4e-10 there, so it creeps and may still be stalled after a short run. Path length "
    "counts every step, so jitter around the minimizer at a constant rate (RMSProp's) inflates "
    "its ratio."
  )
  PUBLISHED = {
    "path_length_over_distance": "> 1: local descent goes around the mountain (Goodfellow et al. "
    "2016, §8.2.7, Fig. 8.4)",
    "stalled_on_plateau": "gradient descent stalls where the surface is flat (§8.2.7, §8.2.3)",
  }
  # Going around: every optimizer reaches the minimizer by a path at least 10% longer than the
  # straight line (which climbs the mountain). Stalling: plain gradient descent (SGD).
  # Deterministic, judged on the value: fixed surfaces and starts, full-gradient steps, no seed.
  CRITERIA = {
    "path_length_over_distance": above("detour_to_minimizer", 1.1),
    "stalled_on_plateau": above("stalled_on_plateau.sgd", 0.5),
  }
  FIELDS = {
    "steps": validate.require_positive_int,
    "surfaces": validate.each(validate.require_choice, choices=landscape.SURFACES),
    "stall_fraction": FRACTION,
    "reach_fraction": FRACTION,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """Known optimizers that build, and the surfaces and the optimizer the claims judge."""
    if not {"mountain", "plateau"} <= set(config.surfaces) or "sgd" not in config.optimizers:
      raise ValueError(
        f"{self.NAME}: surfaces={list(config.surfaces)!r} must hold 'mountain' and 'plateau', "
        f"and optimizers={list(config.optimizers)!r} 'sgd': the claims judge them"
      )
    for name in config.optimizers:
      validate.require_choice("optimizers", name, self.NAME, optim.OPTIMIZERS)
      optimizer(config, name)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Descends every surface with every optimizer (seconds in all: nothing is resumed)."""
    table, history = [], []
    for surface_name in config.surfaces:
      surface = landscape.SURFACES[surface_name]
      start, minimizer = np.asarray(surface.start), np.asarray(surface.minimizer)
      for name in config.optimizers:
        thetas, values = trajectory(
          surface.fn, jnp.asarray(start, jnp.float32), optimizer(config, name), config.steps
        )
        member = f"{surface_name}/{name}"
        moved = float(np.linalg.norm(thetas[-1] - thetas[0]))
        length = landscape.path_length(thetas)
        to_minimizer = float(np.linalg.norm(thetas[-1] - minimizer))
        initial_distance = float(np.linalg.norm(start - minimizer))
        table.append(
          {
            "member": member,
            "surface": surface_name,
            "optimizer": name,
            "learning_rate": float(config.optimizers[name].learning_rate),
            "path_length": length,
            "distance_moved": moved,
            "path_length_over_distance": length / moved if moved > 0 else float("inf"),
            "final_loss": float(values[-1]),
            "final_distance_to_minimizer": to_minimizer,
            "reached_minimizer": to_minimizer < config.reach_fraction * initial_distance,
            "stalled": moved < config.stall_fraction * initial_distance,
          }
        )
        path = {"x": thetas[:, 0], "y": thetas[:, 1], "loss": values}
        history += history_rows(member, {"step": np.arange(values.size)} | path)
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    by_surface: dict[str, dict] = {}
    for row in results.table:
      by_surface.setdefault(row["surface"], {})[row["optimizer"]] = row

    def per(field: str) -> dict:
      return {s: {o: row[field] for o, row in rows.items()} for s, rows in by_surface.items()}

    summary = {
      "path_length_over_distance": per("path_length_over_distance"),
      "reached_minimizer": per("reached_minimizer"),
      "final_loss": per("final_loss"),
      "straight_line_rise": {name: straight_line_rise(name) for name in by_surface},
      # the mountain's path ratio of the optimizers that reached its minimizer (None: did not)
      "detour_to_minimizer": {
        o: row["path_length_over_distance"] if row["reached_minimizer"] else None
        for o, row in by_surface.get("mountain", {}).items()
      },
      "steps": config.steps,
    }
    if "plateau" in by_surface:
      summary["stalled_on_plateau"] = {o: r["stalled"] for o, r in by_surface["plateau"].items()}
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """Per surface: its contours with every optimizer's trajectory, and the loss per step."""
    curves: dict[str, dict[str, list]] = {}
    for row in read_csv(out_dir / "history.csv"):
      curves.setdefault(row["member"], {}).setdefault(row["metric"], []).append(row["value"])
    surfaces = list(dict.fromkeys(member.split("/")[0] for member in curves))
    figures = []
    for name in surfaces:
      members = {m.split("/")[1]: c for m, c in curves.items() if m.split("/")[0] == name}
      figures.append(contour(name, members, out_dir / f"trajectories_{name}.png"))
      figures.append(
        report.line_plot(
          {o: (range(len(c["loss"])), c["loss"]) for o, c in members.items()},
          out_dir / f"loss_{name}.png",
          title=f"{name}: loss per step",
          xlabel="step",
          ylabel="f(θ_t)",
          logy=True,
        )
      )
    return figures


def optimizer(config: ml_collections.ConfigDict, name: str) -> optax.GradientTransformation:
  """`optim.OPTIMIZERS[name]` with the config's hyperparameters; a bad one is refused by name."""
  try:
    return optim.OPTIMIZERS[name](**config.optimizers[name].to_dict())
  except (TypeError, ValueError) as error:
    raise ValueError(f"{LocalVsGlobal.NAME}: optimizers.{name}: {error}") from error


def trajectory(
  fn, start: jax.Array, tx: optax.GradientTransformation, steps: int
) -> tuple[np.ndarray, np.ndarray]:
  """θ_0 … θ_T of `steps` full-gradient updates of `tx` on `fn` (T+1, 2), and f(θ_t)."""

  @jax.jit
  def descend(theta):
    return train.descend(fn, theta, tx, steps=steps, record=lambda point, value: (point, value))

  thetas, values = descend(start).records
  return np.asarray(thetas), np.asarray(values)


def straight_line_rise(name: str) -> float:
  """max f on the segment from the surface's start to its minimizer, minus f(start): > 0 when
  the direct route climbs first."""
  surface = landscape.SURFACES[name]
  line = landscape.loss_along_line(
    surface.fn,
    jnp.asarray(surface.start),
    jnp.asarray(surface.minimizer),
    np.linspace(0.0, 1.0, 201),
  )
  return float(line.max() - line[0])


def contour(name: str, members: dict[str, dict[str, list]], path: Path) -> Path:
  """The surface's filled contours with every optimizer's path, its start and its minimizer."""
  surface = landscape.SURFACES[name]
  (x_min, x_max), (y_min, y_max) = surface.bounds
  xs, ys = np.meshgrid(np.linspace(x_min, x_max, 200), np.linspace(y_min, y_max, 200))
  grid = np.stack([xs.ravel(), ys.ravel()], axis=-1)
  values = np.asarray(jax.vmap(surface.fn)(jnp.asarray(grid))).reshape(xs.shape)
  fig, ax = plt.subplots(figsize=(6.4, 5.4), dpi=110)
  ax.contourf(xs, ys, values, levels=30, cmap="Greys")
  ax.contour(xs, ys, values, levels=15, colors="k", linewidths=0.4, alpha=0.5)
  for label, curve in members.items():
    ax.plot(curve["x"], curve["y"], lw=1.4, label=label)
  ax.plot(*surface.start, "o", color="tab:green", label="start")
  ax.plot(*surface.minimizer, "*", color="tab:red", ms=12, label="global minimizer")
  ax.set(title=f"{name}: trajectories (§8.2.7)", xlabel="θ₁", ylabel="θ₂")
  ax.set_xlim(x_min, x_max)
  ax.set_ylim(y_min, y_max)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return report.save_figure(fig, path)
