"""§8.2.4 "Cliffs and exploding gradients" and gradient clipping (Pascanu, Mikolov & Bengio 2013).

The single-unit recurrent network of Pascanu et al. (2013, §3.4, Fig. 6): `models.RNN` with one
sigmoid unit, zero inputs, h_t = σ(w h_{t−1} + b), h_0 = 0, iterated `sequence_length` times, read
out as h_T (output weight 1 and bias 0, kept fixed), with the loss ½(h_T − y)². For w large enough
the map h ↦ σ(wh + b) has two stable fixed points, and where one of them appears or disappears
(a saddle-node bifurcation, Doya 1993) h_T jumps between them as b changes: the loss surface over
(w, b) has a wall, a cliff, where the gradient is orders of magnitude larger than elsewhere.

* The surface: loss and ‖∂L/∂(w, b)‖ on a (w, b) grid, and on a fine slice across the wall at
  w = `slice_w` (the wall is narrower than the grid's spacing); `grad_norm_range_orders` is
  log10(largest / median) of the gradient norm, the median over the grid.
* Training: from every (`start_w`, `start_b`) pair, a small grid below the cliff, SGD
  (`optim.sgd`, Algorithm 8.1, on the one sequence: `train.descend`) with the same learning
  rate three ways: unclipped, chained after `optax.clip_by_global_norm` (clipping the norm,
  Pascanu et al. 2013, Alg. 1; §10.11.1 of the book) and after `optax.clip` (clipping each
  component, Mikolov 2012). Only w and b are trained (`optax.multi_transform`, the readout
  frozen with `optax.set_to_zero`).
  `diverged_without_clipping` is the share of starts whose unclipped run is thrown off: it ends
  on a plateau no lower than half its starting loss, and `diverged_without_minus_with_clipping`
  (per clipping kind) that share less the share of clipped runs thrown off;
  `converged_with_clipping` (per clipping kind) is the share that ends below `loss_tolerance`;
  `max_step_without_clipping` is the longest single step ‖Δ(w, b)‖ over the unclipped runs.

Nothing here is drawn at random: the surface is a function of (w, b) on a fixed grid, every
training run starts from a fixed point of the config's grid of starts and takes full-gradient
steps on the one all-zero sequence, and `Unit.at` sets every parameter (the seed only builds the
network's parameter tree). So each claim is judged on its value, without an error bar: a range
of gradient norms on a fixed surface, and shares of a fixed grid of starts.
"""

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax

from jaxopt_study import losses, models, optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import curves
from jaxopt_study.results import history_rows, read_csv

CLIPPINGS = ("none", "norm", "value")
AT_LEAST_TWO = functools.partial(validate.require_int, low=2)


class CliffsAndClipping(Experiment):
  """The loss surface of one recurrent unit over (w, b), and SGD on it, clipped and not."""

  NAME = "cliffs_and_clipping"
  TITLE = "Chapter 8.2.4: a cliff in a recurrent unit's loss, and gradient clipping"
  SECTION = "8.2.4"
  DESCRIPTION = (
    "A single sigmoid recurrent unit h_t = σ(w h_{t−1} + b) iterated T times (Pascanu et al. 2013, "
    "Fig. 6), loss ½(h_T − y)². Its loss surface over (w, b) has a wall where a fixed point of the "
    "recurrence appears or vanishes; there the gradient is orders of magnitude larger than on the "
    "rest of the surface. From a grid of starting points, SGD without clipping is thrown off the "
    "wall onto a flat, saturated plateau far away; with the gradient clipped by its norm or by "
    "value, the same learning rate walks down to the target."
  )
  PUBLISHED = {
    "grad_norm_range_orders": "gradients explode at the cliff, orders of magnitude above the rest "
    "(Pascanu et al. 2013, Fig. 6; Goodfellow et al. 2016, Fig. 8.3)",
    "diverged_without_clipping": "an unclipped step at the cliff catapults the parameters away "
    "(Pascanu et al. 2013; §8.2.4)",
    "converged_with_clipping": "clipping the gradient norm keeps the step small and training "
    "converges (Pascanu et al. 2013, Alg. 1; §10.11.1)",
  }
  # "Orders of magnitude": at least two. Thrown off: more starts without clipping than with it,
  # at the same rate. Converges: most starts end below the tolerance, for either clipping.
  # Deterministic, judged on the value: a fixed surface, and shares of a fixed grid of starts
  # descended by full-gradient steps (no seed, no data draw, no minibatch order).
  CRITERIA = {
    "grad_norm_range_orders": above("grad_norm_range_orders", 2.0),
    "diverged_without_clipping": above("diverged_without_minus_with_clipping", 0.0),
    "converged_with_clipping": above("converged_with_clipping", 0.5),
  }
  FIELDS = {
    "sequence_length": AT_LEAST_TWO,
    "steps": AT_LEAST_TWO,
    "grid_size": AT_LEAST_TWO,
    "slice_points": AT_LEAST_TWO,
    "w_range": functools.partial(validate.require_sequence, min_length=2),
    "b_range": functools.partial(validate.require_sequence, min_length=2),
    "start_w": validate.require_sequence,
    "start_b": validate.require_sequence,
    "target": functools.partial(validate.require_unit_interval, include_zero=False),  # a sigmoid's
    "learning_rate": validate.require_non_negative,
    "clip_norm": validate.require_positive,
    "clip_value": validate.require_positive,
    "loss_tolerance": validate.require_positive,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    for field in ("w_range", "b_range"):
      if len(config[field]) != 2 or not config[field][0] < config[field][1]:
        raise ValueError(f"{self.NAME}: {field}={config[field]!r} must be [low, high], low < high")

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """The surface on a grid and SGD from every start, three ways; small programs, no resuming."""
    unit = Unit(config)
    w_grid = np.linspace(*config.w_range, config.grid_size)
    b_grid = np.linspace(*config.b_range, config.grid_size)
    ww, bb = (grid.ravel() for grid in np.meshgrid(w_grid, b_grid, indexing="ij"))
    loss_grid, grad_grid = (np.asarray(v) for v in unit.surface(jnp.asarray(ww), jnp.asarray(bb)))
    # The wall is narrower than the grid's spacing: a fine slice across it at w = slice_w.
    slice_b = np.linspace(*config.b_range, config.slice_points)
    slice_grad = unit.surface(jnp.full(slice_b.shape, config.slice_w), jnp.asarray(slice_b))[1]
    surface = {"w": ww, "b": bb, "loss": loss_grid, "grad_norm": grad_grid}
    # the surface, one "step" per grid point, so that plot() can redraw it
    history = history_rows("surface", {"step": np.arange(ww.size)} | surface)
    starts = [(w, b) for w in config.start_w for b in config.start_b]
    table = []
    for clipping in CLIPPINGS:
      trace = unit.descents(clipping, jnp.asarray(starts))
      values, grad_norms, ws, bs = (np.asarray(v) for v in trace)
      steps = np.asarray(jnp.hypot(jnp.diff(trace[2], axis=1), jnp.diff(trace[3], axis=1)))
      for i, (w0, b0) in enumerate(starts):
        member = f"{clipping}@w{w0:g},b{b0:g}"
        table.append(
          {
            "member": member,
            "clipping": clipping,
            "start_w": w0,
            "start_b": b0,
            "initial_loss": float(values[i, 0]),
            "final_loss": float(values[i, -1]),
            "final_w": float(ws[i, -1]),
            "final_b": float(bs[i, -1]),
            "max_grad_norm": float(grad_norms[i].max()),
            "max_step": float(steps[i].max()),
            "converged": bool(values[i, -1] < config.loss_tolerance),
            # Thrown off: it ended on a plateau no lower than half the loss it started from.
            "diverged": bool(values[i, -1] >= 0.5 * values[i, 0]),
          }
        )
        path = {"loss": values[i], "grad_norm": grad_norms[i], "w": ws[i], "b": bs[i]}
        history += history_rows(member, {"step": np.arange(values.shape[1])} | path)
    arrays = {"surface/grad_norm": grad_grid, "slice/grad_norm": np.asarray(slice_grad)}
    return Results(table, history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    table, grad_grid = results.table, results.arrays["surface/grad_norm"]
    by_kind = {kind: [r for r in table if r["clipping"] == kind] for kind in CLIPPINGS}
    largest = max(grad_grid.max(), results.arrays["slice/grad_norm"].max())
    diverged = {
      kind: float(np.mean([r["diverged"] for r in rows])) for kind, rows in by_kind.items()
    }
    return {
      "grad_norm_range_orders": float(np.log10(largest / np.median(grad_grid))),
      "grad_norm_max_on_surface": float(largest),
      "grad_norm_median_on_surface": float(np.median(grad_grid)),
      "diverged_without_clipping": diverged["none"],
      "diverged_without_minus_with_clipping": {
        kind: diverged["none"] - diverged[kind] for kind in ("norm", "value")
      },
      "converged_with_clipping": {
        kind: float(np.mean([r["converged"] for r in by_kind[kind]])) for kind in ("norm", "value")
      },
      "max_step_without_clipping": float(max(r["max_step"] for r in by_kind["none"])),
      "max_step_with_clipping": {
        kind: float(max(r["max_step"] for r in by_kind[kind])) for kind in ("norm", "value")
      },
      "max_grad_norm_on_paths": float(max(r["max_grad_norm"] for r in table)),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The surface with the SGD paths drawn on it, and the loss curves, from the saved CSVs."""
    history = out_dir / "history.csv"
    table = read_csv(out_dir / "results.csv")
    surface = {
      name: np.asarray(curves.read_curves(history, name)["surface"][1])
      for name in ("w", "b", "loss", "grad_norm")
    }
    size = int(round(np.sqrt(surface["w"].size)))
    grid = {name: values.reshape(size, size) for name, values in surface.items()}
    colors = {"none": "tab:red", "norm": "white", "value": "tab:cyan"}
    fig, ax = plt.subplots(figsize=(6.8, 5.0), dpi=110)
    with np.errstate(divide="ignore"):
      image = ax.pcolormesh(
        grid["w"], grid["b"], np.log10(grid["grad_norm"]), cmap="magma", shading="auto"
      )
    ax.contour(grid["w"], grid["b"], grid["loss"], levels=8, colors="0.7", linewidths=0.6)
    w_paths, b_paths = curves.read_curves(history, "w"), curves.read_curves(history, "b")
    low, high = grid["w"].min(), grid["w"].max()
    for row in table:
      member = row["member"]
      ax.plot(
        np.clip(w_paths[member][1], low, high),
        np.clip(b_paths[member][1], grid["b"].min(), grid["b"].max()),
        color=colors[row["clipping"]],
        lw=0.8,
        alpha=0.8,
      )
    for kind, color in colors.items():
      ax.plot([], [], color=color, label=f"SGD, clipping: {kind}")
    fig.colorbar(image, ax=ax, label="log10 ‖∇L‖")
    ax.set(
      title="loss surface of one recurrent unit: the cliff and SGD paths (clipped to view)",
      xlabel="recurrent weight w",
      ylabel="bias b",
    )
    ax.legend(fontsize=7, facecolor="0.85")
    fig.tight_layout()
    path = report.save_figure(fig, out_dir / "surface.png")
    losses_by_kind = curves.read_curves(history, "loss")
    # One curve per clipping kind, all from the start whose unclipped run ended highest.
    worst = max((r for r in table if r["clipping"] == "none"), key=lambda r: r["final_loss"])
    series = {
      f"clipping: {kind}": losses_by_kind[f"{kind}@w{worst['start_w']:g},b{worst['start_b']:g}"]
      for kind in CLIPPINGS
    }
    loss_plot = report.line_plot(
      series,
      out_dir / "loss.png",
      title=f"loss from (w, b) = ({worst['start_w']:g}, {worst['start_b']:g})",
      xlabel="step",
      ylabel="½(h_T − y)²",
      logy=True,
    )
    return [path, loss_plot]


class Unit:
  """Pascanu et al.'s (2013, Fig. 6) network: `models.RNN` with one sigmoid unit, zero inputs and
  the readout 1·h_T + 0, as a function of its recurrent weight w and bias b (every parameter set
  by `at`: the seed's draw is not used)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.model = models.functional(
      models.build_model("rnn", 1, 1, seed=config.seed, hidden=1, activation="sigmoid")
    )
    self.inputs = jnp.zeros((1, config.sequence_length, 1))
    self.targets = jnp.full((1, 1), config.target)
    self.surface = jax.jit(jax.vmap(self.loss_and_grad_norm))

  def at(self, w: jax.Array, b: jax.Array) -> Any:
    """The network's parameters with recurrent weight w, bias b and the fixed readout 1·h + 0."""
    params = jax.tree.map(jnp.zeros_like, self.model.params)
    params["recurrent"]["kernel"] = jnp.full((1, 1), w)
    params["input"]["bias"] = jnp.full((1,), b)
    params["output"]["kernel"] = jnp.ones((1, 1))
    params["output"]["bias"] = jnp.zeros((1,))
    return params

  def loss(self, params: Any) -> jax.Array:
    """½(h_T − y)²."""
    outputs, _ = self.model.apply(params, self.model.model_state, self.inputs, True)
    return losses.mean_squared_error(outputs, self.targets)

  def loss_and_grad_norm(self, w: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The loss at (w, b) and ‖∂L/∂(w, b)‖, the gradient of the two trained parameters."""
    value, (grad_w, grad_b) = jax.value_and_grad(
      lambda w, b: self.loss(self.at(w, b)), argnums=(0, 1)
    )(w, b)
    return value, jnp.hypot(grad_w, grad_b)

  def descents(self, clipping: str, starts: jax.Array) -> tuple[jax.Array, ...]:
    """SGD (Algorithm 8.1) on w and b from every (w, b) of `starts`, after the clipping:
    loss, ‖∂L/∂(w, b)‖, w and b at the steps 0 … `steps`, each (starts, steps + 1)."""
    config = self.config
    clipper = {
      "none": optax.identity(),
      "norm": optax.clip_by_global_norm(config.clip_norm),
      "value": optax.clip(config.clip_value),
    }[clipping]
    tx = optax.multi_transform(
      {
        "trained": optax.chain(clipper, optim.sgd(config.learning_rate)),
        "frozen": optax.set_to_zero(),
      },
      _labels,
    )

    def record(params, _):
      w, b = params["recurrent"]["kernel"][0, 0], params["input"]["bias"][0]
      return *self.loss_and_grad_norm(w, b), w, b

    def one_start(start):
      return train.descend(
        self.loss, self.at(*start), tx, steps=config.steps, record=record
      ).records

    return jax.jit(jax.vmap(one_start))(starts)


def _labels(params):
  """'trained' for the recurrent weight and the bias of the unit, 'frozen' for everything else."""

  def label(path, _):
    name = jax.tree_util.keystr(path)
    return "trained" if ("recurrent" in name or ("input" in name and "bias" in name)) else "frozen"

  return jax.tree_util.tree_map_with_path(label, params)
