"""§8.2.1 ill-conditioning during training: gradient descent at the edge of stability.

§8.2.1 of Goodfellow et al. (2016) reads ill-conditioning off gᵀHg growing during training. Cohen,
Kaur, Li, Kolter & Talwalkar (2021, ICLR), "Gradient descent on neural networks typically occurs
at the edge of stability", track the top Hessian eigenvalue λ_max (the sharpness) along
full-batch gradient descent at step η: it rises (progressive sharpening) until it
reaches 2/η, the largest curvature a quadratic can have for a step η to be stable, and then
hovers at or just above 2/η while the training loss keeps falling over long timescales, though
not monotonically (their Fig. 1). Cohen et al. (2022), "Adaptive gradient methods at the
edge of stability", find the same for Adam with the preconditioned sharpness λ_max(P⁻¹H), which
hovers at (2 + 2β₁)/((1 − β₁)η), the stability threshold of momentum β₁ on a quadratic.

Here a digits MLP (the config's `model`; PyTorch's default `nn.Linear` variance 1/(3 fan_in), as
in Cohen et al., by `lecun_normal` times 1/√3) is trained on the first `data.num_examples`
training digits by full-batch gradient descent (`optim.sgd`, batch size = the number of
examples) at each η of `gd.<loss>`, once with the squared error on one-hot targets and once with
the cross-entropy, and by full-batch Adam (`optim.adam`) at each η of `adam.learning_rates`. Each
(method, loss) is one vmapped `sweep.run` over η with the in-loop curvature monitor
(`hessian.tracking`: Lanczos warm-started from the last top eigenvector, `curvature_every`
steps apart, on every training example), with Adam's P from `optim.adam_preconditioner`.

Claims (`summary.json`), per member (`gd_mse@η`, `gd_cross_entropy@η`, `adam@η`, as in
`results.csv`), with the threshold T = 2/η (gradient descent) or (2 + 2β₁)/((1 − β₁)η) (Adam):

* `steps_to_threshold`: the first measured step with λ ≥ 0.9 T (None: not within the steps; 0:
  from the start), with `reached_threshold_during_training` (reached, and after step 0);
* `lambda_max_over_threshold`: the median of λ/T over the measurements from that step on
  (Cohen et al.: ≈ 1), with `lambda_max_distance_from_threshold`, |λ/T − 1|;
* `progressive_sharpening`: λ at the measurement just before that step over λ at step 0
  (Cohen et al.: > 1, λ rises before it reaches T; None with no measurement in between). λ at
  that step itself over λ at step 0 would exceed 1 by construction, as λ(0) < 0.9 T ≤ λ there;
* `adam_preconditioned_over_threshold`: as `lambda_max_over_threshold`, for λ_max(P⁻¹H) of Adam,
  with `adam_preconditioned_distance_from_threshold`;
* `loss_decreased`: the last training loss is below the one at the threshold step (the loss
  keeps falling at the edge of stability), with `loss_increases_after_threshold`, the number of
  evaluations whose loss rose over the previous one (non-monotone: > 0).

`CRITERIA` judge them into `verdicts`, every member at once: T reached during training; λ/T
within 10% of 1 (for Adam too); sharpening > 1; the loss lower at the end and rising at least
once on the way (gradient descent and Adam). A member that never reaches T leaves every claim but
`steps_to_threshold` undecided, and so does one already at 0.9 T or above at step 0: the claims
are of a sharpness that rises to T and then hovers there, so λ must start below T, as at the η
Cohen et al. choose (2/η inside the range a small step's sharpness rises through).
"""

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, optim, report, sweep, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, above, all_of, below
from jaxopt_study.lab import digits_tasks
from jaxopt_study.lab.curves import history_curves
from jaxopt_study.results import read_csv

GD_LOSSES = ("mse", "cross_entropy")
REACHED = 0.9  # λ has reached the threshold T once λ ≥ 0.9 T (the criterion)
HOVERS = 0.1  # λ/T within 10% of 1: "hovers at 2/η"


class EdgeOfStability(Experiment):
  """Full-batch GD (squared error, cross-entropy) and Adam over η; λ_max against 2/η."""

  NAME = "edge_of_stability"
  TITLE = "Edge of stability: λ_max rises to 2/η and hovers there (Cohen et al. 2021, 2022)"
  SECTION = "8.2.1"
  DESCRIPTION = (
    "Full-batch gradient descent at several step sizes η on a tanh MLP and a subset of the "
    "digits, with the squared error on one-hot targets and with the cross-entropy, and full-batch "
    "Adam at several η; the top Hessian eigenvalue λ_max (for Adam, of the preconditioned P⁻¹H) "
    "is measured inside the compiled training loop every few steps, for every η of a sweep at "
    "once. Cohen et al. (2021) find λ_max rising during training (progressive sharpening) until "
    "it reaches 2/η, then hovering at or just above 2/η while the loss keeps falling, not "
    "monotonically; Cohen et al. (2022) find Adam's preconditioned sharpness hovering at "
    "(2 + 2β₁)/((1 − β₁)η). The figures draw the loss and the sharpness against the steps with "
    "the thresholds dashed, one colour per η (their Fig. 1)."
  )
  PUBLISHED = {
    "lambda_max_over_threshold": "≈ 1: λ_max hovers at or just above 2/η (Cohen et al. 2021, "
    "Fig. 1)",
    "steps_to_threshold": "finite: λ_max reaches 2/η during training (Cohen et al. 2021)",
    "progressive_sharpening": "> 1: λ_max rises on its way to 2/η (Cohen et al. 2021)",
    "adam_preconditioned_over_threshold": "≈ 1: λ_max(P⁻¹H) hovers at (2 + 2β₁)/((1 − β₁)η) "
    "(Cohen et al. 2022, Fig. 1)",
    "loss_decreased": "true: the loss keeps falling over long timescales, non-monotonically "
    "(Cohen et al. 2021, Fig. 1)",
  }
  CRITERIA = {
    "lambda_max_over_threshold": below("lambda_max_distance_from_threshold", HOVERS),
    "steps_to_threshold": above("reached_threshold_during_training", 0.5),
    "progressive_sharpening": above("progressive_sharpening", 1.0),
    "adam_preconditioned_over_threshold": below(
      "adam_preconditioned_distance_from_threshold", HOVERS
    ),
    "loss_decreased": all_of(
      above("loss_decreased", 0.5), above("loss_increases_after_threshold", 0.0)
    ),
  }
  FIELDS = {
    "seed": functools.partial(validate.require_int, low=0),
    "data.name": digits_tasks.DIGITS,
    "data.num_examples": validate.require_positive_int,
    "model.name": functools.partial(validate.require_choice, choices=["mlp"]),
    "steps": validate.require_positive_int,
    "eval_every": validate.require_positive_int,
    "curvature_every": validate.require_positive_int,
    "curvature.lanczos_steps": validate.require_positive_int,
    "curvature.probes": validate.require_positive_int,
    **{f"gd.{loss}": validate.each(validate.require_positive) for loss in GD_LOSSES},
    "adam.loss": functools.partial(validate.require_choice, choices=list(GD_LOSSES)),
    "adam.learning_rates": validate.each(validate.require_positive),
    "adam.b1": validate.require_unit_interval,
    "adam.b2": validate.require_unit_interval,
    "adam.eps": validate.require_positive,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    num_train = digits_tasks.load(config.data).x_train.shape[0]
    validate.require_int(
      "data.num_examples", config.data.num_examples, self.NAME, low=1, high=num_train
    )
    for name, (problem, optimizer, axes, options) in sweeps(config).items():
      try:
        sweep.check(problem, optimizer, axes, **options)
      except ValueError as error:
        raise ValueError(f"{self.NAME}: {name}: {error}") from None

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """One sweep over η per (method, loss), each kept in the run folder once finished."""
    table, history, arrays = [], [], {}
    for name, arguments in tqdm(sweeps(config).items(), desc="sweeps", disable=not progress):
      record, final = members.get(name, functools.partial(run_sweep, config, name, *arguments))
      table.extend(record["table"])
      history.extend(record["history"])
      arrays.update(final)
    return Results(table, history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict[str, Any]:
    gd = [r for r in results.table if r["method"] != "adam"]
    adam = [r for r in results.table if r["method"] == "adam"]

    def by_member(rows: list[dict], value: Callable[[dict], Any]) -> dict[str, Any]:
      return {r["member"]: value(r) for r in rows}

    def field(name: str) -> Callable[[dict], Any]:
      return lambda row: row[name]

    def distance(row: dict) -> float | None:  # "hovers at T", two-sided: |λ/T − 1|
      ratio = row["sharpness_over_threshold"]
      return None if ratio is None else abs(ratio - 1)

    def reached(row: dict) -> bool:  # from below, during training: not at step 0
      return row["steps_to_threshold"] is not None and row["steps_to_threshold"] > 0

    return {
      "lambda_max_over_threshold": by_member(gd, field("sharpness_over_threshold")),
      "lambda_max_distance_from_threshold": by_member(gd, distance),
      "steps_to_threshold": by_member(gd, field("steps_to_threshold")),
      "reached_threshold_during_training": by_member(gd, reached),
      "progressive_sharpening": by_member(gd, field("progressive_sharpening")),
      "adam_preconditioned_over_threshold": by_member(adam, field("sharpness_over_threshold")),
      "adam_preconditioned_distance_from_threshold": by_member(adam, distance),
      "adam_steps_to_threshold": by_member(adam, field("steps_to_threshold")),
      "loss_decreased": by_member(results.table, field("loss_decreased")),
      "loss_increases_after_threshold": by_member(
        results.table, field("loss_increases_after_threshold")
      ),
      "threshold": by_member(results.table, field("threshold")),
      "num_examples": config.data.num_examples,
      "diverged": sorted(row["member"] for row in results.table if row["diverged"]),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Per (method, loss), as Cohen et al. (2021) Fig. 1: the training loss and the sharpness
    against the steps, the thresholds dashed, one colour per η."""
    table = read_csv(out_dir / "results.csv")
    rows = read_csv(out_dir / "history.csv")
    loss_curves = history_curves(rows, "train_loss")
    figures = []
    for method in dict.fromkeys(r["method"] for r in table):
      chosen = [r for r in table if r["method"] == method]
      sharpness = history_curves(rows, chosen[0]["sharpness_metric"])
      figures.append(edge_figure(method, chosen, loss_curves, sharpness, out_dir))
    return figures


def one_hot_digits(config: ml_collections.ConfigDict, loss: str) -> data_lib.Dataset:
  """The first `data.num_examples` training digits (and every held-out one); labels one-hot for
  the squared error, integer for the cross-entropy."""
  digits = digits_tasks.load(config.data)
  count = config.data.num_examples

  def targets(labels: jax.Array) -> jax.Array:
    return jax.nn.one_hot(labels, digits_tasks.NUM_CLASSES) if loss == "mse" else labels

  return data_lib.Dataset(
    digits.x_train[:count],
    targets(digits.y_train[:count]),
    digits.x_test,
    targets(digits.y_test),
  )


def digits_problem(config: ml_collections.ConfigDict, loss: str) -> problem_lib.Problem:
  """The config's MLP on `one_hot_digits` with the loss `loss` (its init scale is a sweep
  argument)."""
  options = {k: v for k, v in config.model.to_dict().items() if k not in ("name", "init_scale")}
  return problem_lib.builtin(config.model.name, one_hot_digits(config, loss), loss=loss, **options)


def sweeps(config: ml_collections.ConfigDict) -> dict[str, tuple]:
  """Each sweep of the experiment, by name: (problem, optimizer factory, axes, run options)."""
  options = {
    "steps": config.steps,
    "eval_every": config.eval_every,
    "batch_size": config.data.num_examples,  # full batch
    "init_scale": config.model.init_scale,
    "seed": config.seed,
    "curvature_every": config.curvature_every,
  }
  monitor = hessian.CurvatureOptions(
    lanczos_steps=config.curvature.lanczos_steps, probes=config.curvature.probes, seed=config.seed
  )
  found = {
    f"gd_{loss}": (
      digits_problem(config, loss),
      optim.sgd,
      {"learning_rate": list(config.gd[loss])},
      options | {"curvature": monitor},
    )
    for loss in GD_LOSSES
  }
  adam = config.adam
  found["adam"] = (
    digits_problem(config, adam.loss),
    functools.partial(optim.adam, b1=adam.b1, b2=adam.b2, eps=adam.eps),
    {"learning_rate": list(adam.learning_rates)},
    options
    | {
      "curvature": monitor._replace(
        preconditioner=optim.adam_preconditioner(adam.b1, adam.b2, adam.eps)
      )
    },
  )
  return found


def threshold(config: ml_collections.ConfigDict, method: str, learning_rate: float) -> float:
  """The stability threshold: 2/η for gradient descent, (2 + 2β₁)/((1 − β₁)η) for Adam."""
  if method == "adam":
    b1 = config.adam.b1
    return (2 + 2 * b1) / ((1 - b1) * learning_rate)
  return 2 / learning_rate


def run_sweep(
  config: ml_collections.ConfigDict, name: str, problem, optimizer, axes, options
) -> tuple[dict, dict]:
  """One sweep over η; each member's row of claims, and its history and final parameters under
  its own name."""
  result = sweep.run(problem, optimizer, axes, **options)
  metric = "preconditioned_lambda_max" if name == "adam" else "lambda_max"
  loss = config.adam.loss if name == "adam" else name.removeprefix("gd_")
  sharpness = history_curves(result.history, metric)
  losses = history_curves(result.history, "train_loss")
  table, history, arrays = [], [], {}
  for row in result.table:
    member = f"{name}@{row['learning_rate']:g}"
    limit = threshold(config, name, row["learning_rate"])
    table.append(
      {
        "member": member,
        "method": name,
        "loss": loss,
        "learning_rate": row["learning_rate"],
        "threshold": limit,
        "sharpness_metric": metric,
        "diverged": row["diverged"],
        "final_train_loss": row["final_train_loss"],
        **edge_measures(sharpness[row["member"]], losses[row["member"]], limit),
      }
    )
    history.extend({**r, "member": member} for r in result.history if r["member"] == row["member"])
    prefix = row["member"] + "/"
    arrays |= {
      member + "/" + key.removeprefix(prefix): value
      for key, value in result.arrays.items()
      if key.startswith(prefix)
    }
  return {"table": table, "history": history}, arrays


def edge_measures(
  sharpness: tuple[list, list], losses: tuple[list, list], limit: float
) -> dict[str, Any]:
  """From one member's measured sharpness (NaN where not measured) and training loss: the first
  step with sharpness ≥ 0.9 T, the median of sharpness/T from there on, the sharpness at the
  measurement before it over the first measured one (the rise below T, which reaching T does
  not force), and whether the loss fell from there (and how often it rose)."""
  steps, values = np.asarray(sharpness[0]), np.asarray(sharpness[1], float)
  measured = np.isfinite(values)
  steps, values = steps[measured], values[measured]
  above = np.nonzero(values >= REACHED * limit)[0]
  loss_steps, loss_values = np.asarray(losses[0]), np.asarray(losses[1], float)
  none = {
    "steps_to_threshold": None,
    "sharpness_over_threshold": None,
    "progressive_sharpening": None,
    "loss_decreased": None,
    "loss_increases_after_threshold": None,
  }
  largest = {"max_sharpness_over_threshold": float(values.max() / limit)}
  if above.size == 0:
    return none | largest
  first = above[0]
  if first == 0:  # at the threshold from the start: λ did not rise to it, nothing to judge
    return none | largest | {"steps_to_threshold": int(steps[0])}
  at_step = int(steps[first])
  after = loss_values[loss_steps >= at_step]
  return {
    "steps_to_threshold": at_step,
    "sharpness_over_threshold": float(np.median(values[first:] / limit)),
    "progressive_sharpening": float(values[first - 1] / values[0]) if first > 1 else None,
    "loss_decreased": bool(after[-1] < after[0]),
    "loss_increases_after_threshold": int(np.sum(np.diff(after) > 0)),
    "max_sharpness_over_threshold": float(values.max() / limit),
  }


def edge_figure(
  method: str, rows: list[dict], loss_curves, sharpness_curves, out_dir: Path
) -> Path:
  """The training loss (log scale) and the sharpness against the steps, one colour per η, each
  threshold dashed in its η's colour."""
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(rows)))
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
  for row, color in zip(rows, colors, strict=True):
    label = f"η = {row['learning_rate']:.3g}"
    steps, values = loss_curves[row["member"]]
    left.plot(steps, values, color=color, lw=1, label=label)
    steps, values = np.asarray(sharpness_curves[row["member"]], float)
    kept = np.isfinite(values)
    right.plot(steps[kept], values[kept], color=color, lw=1, label=label)
    right.axhline(row["threshold"], color=color, ls="--", lw=0.8)
  is_adam = method == "adam"
  name = "λ_max(P⁻¹H)" if is_adam else "λ_max(H)"
  dashed = "(2 + 2β₁)/((1 − β₁)η)" if is_adam else "2/η"
  left.set(title=f"{method}: training loss ({rows[0]['loss']})", xlabel="step", yscale="log")
  right.set(title=f"{method}: {name}, dashed {dashed}", xlabel="step")
  for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  return report.save_figure(fig, out_dir / f"edge_of_stability_{method}.png")
