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
the cross-entropy, and by full-batch Adam (`optim.adam`) at each η of `adam.learning_rates`, each
from every initialization of `seeds` (the only random draw: the batch is full and fixed; `seed`
draws the monitor's Lanczos start vector, the same for every member). Each (method, loss) is one
vmapped `sweep.run` over η × seeds with the in-loop curvature monitor (`hessian.tracking`:
Lanczos warm-started from the last top eigenvector, `curvature_every` steps apart, on every
training example), with Adam's P from `optim.adam_preconditioner`.

Per member ("name@η seed s" in `results.csv`, with its `setting` "name@η" and `seed`), with the
threshold T = 2/η (gradient descent) or (2 + 2β₁)/((1 − β₁)η) (Adam), `edge_measures` reads: the
threshold step, the first measured step with λ ≥ 0.9 T (none: not within the steps, censored;
step 0: at T from the start, so λ did not rise to it); the median of λ/T from there on; λ at
the measurement before that step and at step 0; the training loss at that step and at the end,
and the number of evaluations from there on whose loss rose over the previous one.

Claims (`summary.json`), per setting (`gd_mse@η`, `gd_cross_entropy@η`, `adam@η`), each a
value over the seeds with its standard error `_se`, degrees of freedom `_dof` (seeds − 1) and
per-seed values `_by_seed`:

* `steps_to_threshold`: the mean threshold step (None when a seed is censored), with
  `reached_threshold_during_training`, the fraction of seeds whose λ reached 0.9 T after step 0;
* `lambda_max_over_threshold`: the mean of the median λ/T (Cohen et al.: ≈ 1), with
  `lambda_max_distance_from_threshold`, the mean of |λ/T − 1|;
* `progressive_sharpening`: the geometric mean over seeds of λ before the threshold step over λ
  at step 0, paired seed by seed (Cohen et al.: > 1, λ rises before it reaches T; None where a
  seed has no measurement in between). λ at the threshold step itself over λ at step 0 would
  exceed 1 by construction, as λ(0) < 0.9 T ≤ λ there;
* `adam_preconditioned_over_threshold`: as `lambda_max_over_threshold`, for λ_max(P⁻¹H) of Adam,
  with `adam_preconditioned_distance_from_threshold` (and `adam_steps_to_threshold`);
* `loss_decreased`: the fraction of seeds whose last training loss is below the one at the
  threshold step (the loss keeps falling at the edge of stability), with
  `loss_fall_after_threshold`, the geometric mean over seeds of the loss at that step over the
  last one, `loss_increases_after_threshold`, the mean number of evaluations whose loss rose
  over the previous one by more than `RISE_RTOL` of itself (not float32 rounding on a flat
  stretch), and `loss_rose_after_threshold`, the fraction of seeds whose loss rose at least once
  (non-monotone: judged above one half of the seeds, as a fraction; a count of rises is never
  below 0, so its mean over seeds against 0 says nothing a fraction does not, and identical
  counts would have no spread; a seed censored or at T from step 0 leaves it None).

`CRITERIA` judge them into `verdicts`, every setting of a claim at once (one failing setting
fails it, one undecided setting leaves it undecided), each mean beyond t_{0.975, dof} standard
errors of its threshold to hold and beyond t_{1 − 0.025/k, dof} to fail, k the claim's settings
that can decide (`experiment.margin`; the ratios on the log scale): the distance of λ/T
from 1 below 0.1 (for Adam too); sharpening > 1; the loss fall > 1. The claims
of Cohen et al.'s Fig. 1 judge the squared-error settings (and Adam's, for the loss), and
`cross_entropy_edge_of_stability` judges all of them at once on the cross-entropy settings: a
loss whose sharpness may never reach 2/η at a given scale (the digits are separated early and
the sharpness falls as the margins grow) does not hide what the squared error shows. T reached
during training, and a loss that rose at least once after it, are judged on the fraction of
seeds, above one half, with no error bar: each is a per-run event, not a noisy measurement, so
its natural measure is how many of the initializations show it (a standard error of identical
0/1 outcomes would be 0 and decide nothing below six seeds).

Censored and undecided seeds. A seed whose λ never reaches 0.9 T within the steps is censored:
its threshold step is only bounded (> `steps`), and every claim read from that step on is
unknown for it. A mean over seeds is then None (undecided), not a mean over the seeds that did
reach T, which would keep only the seeds that went one way; so is every claim of a seed at T
from step 0 (λ must start below T, as at the η Cohen et al. choose: 2/η inside the range a
small step's sharpness rises through). `censored_seeds` and `at_threshold_from_start` list them
per setting. For the fraction reaching T a censored seed can only raise it with more steps: a
fraction above one half stands with censored seeds; one at most one half stands only when it
would with every censored seed reaching T, and is None otherwise.
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
from jaxopt_study.lab import digits_tasks, verdicts
from jaxopt_study.lab.curves import history_curves
from jaxopt_study.results import read_csv

GD_LOSSES = ("mse", "cross_entropy")
REACHED = 0.9  # λ has reached the threshold T once λ ≥ 0.9 T (the criterion)
HOVERS = 0.1  # λ/T within 10% of 1: "hovers at 2/η"
# a loss rose when it grew by more than this fraction of itself between two evaluations (not by
# float32 rounding on a flat stretch)
RISE_RTOL = 1e-4
MOST_SEEDS = 0.5  # T reached during training by more than half of a setting's seeds
# The settings each claim judges: Cohen et al. (2021) Fig. 1's squared error, and the
# cross-entropy (their §3 and appendix) as a claim of its own
SQUARED_ERROR, CROSS_ENTROPY, ADAM = "gd_mse@", "gd_cross_entropy@", "adam@"
MIN_SEEDS = 2  # a standard error over seeds needs two


class EdgeOfStability(Experiment):
  """Full-batch GD (squared error, cross-entropy) and Adam over η; λ_max against 2/η."""

  NAME = "edge_of_stability"
  TITLE = "Edge of stability: λ_max rises to 2/η and hovers there (Cohen et al. 2021, 2022)"
  SECTION = "8.2.1"
  DESCRIPTION = (
    "Full-batch gradient descent at several step sizes η on a tanh MLP and a subset of the "
    "digits, with the squared error on one-hot targets and with the cross-entropy, and full-batch "
    "Adam at several η; the top Hessian eigenvalue λ_max (for Adam, of the preconditioned P⁻¹H) "
    "is measured inside the compiled training loop every few steps, for every η and every "
    "initialization of a sweep at once; each claim is a mean over the initializations, judged "
    "beyond t_{0.975, dof} standard errors of its threshold. Cohen et al. (2021) find λ_max "
    "rising during training (progressive sharpening) until it reaches 2/η, then hovering at "
    "or just above 2/η while the loss keeps falling, not monotonically; Cohen et al. (2022) "
    "find Adam's preconditioned sharpness hovering at (2 + 2β₁)/((1 − β₁)η). The figures draw "
    "the loss and the sharpness against the steps with the thresholds dashed, one colour per η, "
    "its seeds alike (their Fig. 1)."
  )
  PUBLISHED = {
    "lambda_max_over_threshold": "≈ 1: λ_max hovers at or just above 2/η (Cohen et al. 2021, "
    "Fig. 1; squared error)",
    "steps_to_threshold": "finite: λ_max reaches 2/η during training (Cohen et al. 2021; "
    "squared error)",
    "progressive_sharpening": "> 1: λ_max rises on its way to 2/η (Cohen et al. 2021; squared "
    "error)",
    "adam_preconditioned_over_threshold": "≈ 1: λ_max(P⁻¹H) hovers at (2 + 2β₁)/((1 − β₁)η) "
    "(Cohen et al. 2022, Fig. 1)",
    "loss_decreased": "true: the loss keeps falling over long timescales, non-monotonically "
    "(Cohen et al. 2021, Fig. 1; squared error and Adam)",
    "cross_entropy_edge_of_stability": "the same with the cross-entropy: λ_max rises to 2/η and "
    "hovers there while the loss falls (Cohen et al. 2021, §3 and appendix; its sharpness falls "
    "late in training, as the loss goes to 0)",
  }
  CRITERIA = {
    "lambda_max_over_threshold": below(
      "lambda_max_distance_from_threshold",
      HOVERS,
      standard_error="lambda_max_distance_from_threshold_se",
      only=SQUARED_ERROR,
    ),
    "steps_to_threshold": above(
      "reached_threshold_during_training", MOST_SEEDS, only=SQUARED_ERROR
    ),
    "progressive_sharpening": above(
      "progressive_sharpening",
      1.0,
      standard_error="progressive_sharpening_se",
      ratio=True,
      only=SQUARED_ERROR,
    ),
    "adam_preconditioned_over_threshold": below(
      "adam_preconditioned_distance_from_threshold",
      HOVERS,
      standard_error="adam_preconditioned_distance_from_threshold_se",
    ),
    "loss_decreased": all_of(
      above(
        "loss_fall_after_threshold",
        1.0,
        standard_error="loss_fall_after_threshold_se",
        ratio=True,
        only=(SQUARED_ERROR, ADAM),
      ),
      above("loss_rose_after_threshold", MOST_SEEDS, only=(SQUARED_ERROR, ADAM)),
    ),
    "cross_entropy_edge_of_stability": all_of(
      above("reached_threshold_during_training", MOST_SEEDS, only=CROSS_ENTROPY),
      below(
        "lambda_max_distance_from_threshold",
        HOVERS,
        standard_error="lambda_max_distance_from_threshold_se",
        only=CROSS_ENTROPY,
      ),
      above(
        "progressive_sharpening",
        1.0,
        standard_error="progressive_sharpening_se",
        ratio=True,
        only=CROSS_ENTROPY,
      ),
      above(
        "loss_fall_after_threshold",
        1.0,
        standard_error="loss_fall_after_threshold_se",
        ratio=True,
        only=CROSS_ENTROPY,
      ),
      above("loss_rose_after_threshold", MOST_SEEDS, only=CROSS_ENTROPY),
    ),
  }
  FIELDS = {
    "seed": functools.partial(validate.require_int, low=0),
    "seeds": validate.seeds(min_length=MIN_SEEDS),
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

    def distance(row: dict) -> float | None:  # "hovers at T", two-sided: |λ/T − 1|
      ratio = row["sharpness_over_threshold"]
      return None if ratio is None else abs(ratio - 1)

    def rose(row: dict) -> bool | None:  # the loss rose at least once after T
      rises = row["loss_increases_after_threshold"]
      return None if rises is None else rises > 0

    def field(name: str) -> Callable[[dict], Any]:
      return lambda row: row[name]

    def mean(name: str, rows: list[dict], value: Callable[[dict], Any] | str) -> dict[str, Any]:
      return mean_over_seeds(name, by_seed(rows, field(value) if isinstance(value, str) else value))

    def ratio(name: str, rows: list[dict], numerator: str, denominator: str) -> dict[str, Any]:
      return paired_ratio_over_seeds(
        name, by_seed(rows, field(numerator)), by_seed(rows, field(denominator))
      )

    everything = results.table
    return {
      **mean("lambda_max_over_threshold", gd, "sharpness_over_threshold"),
      **mean("lambda_max_distance_from_threshold", gd, distance),
      **mean("steps_to_threshold", gd, "steps_to_threshold"),
      **reached_during_training(gd),
      **ratio("progressive_sharpening", gd, "lambda_before_threshold", "lambda_at_start"),
      **mean("adam_preconditioned_over_threshold", adam, "sharpness_over_threshold"),
      **mean("adam_preconditioned_distance_from_threshold", adam, distance),
      **mean("adam_steps_to_threshold", adam, "steps_to_threshold"),
      **mean("loss_decreased", everything, "loss_decreased"),
      **ratio("loss_fall_after_threshold", everything, "loss_at_threshold", "loss_at_end"),
      **mean("loss_increases_after_threshold", everything, "loss_increases_after_threshold"),
      **mean("loss_rose_after_threshold", everything, rose),
      "censored_seeds": seeds_where(results.table, lambda r: r["steps_to_threshold"] is None),
      "at_threshold_from_start": seeds_where(results.table, lambda r: r["steps_to_threshold"] == 0),
      "threshold": {r["setting"]: r["threshold"] for r in results.table},
      "seeds": list(config.seeds),
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


def by_seed(rows: list[dict], value: Callable[[dict], Any]) -> dict[str, dict[int, Any]]:
  """{setting ("name@η"): {seed: value(row)}}, settings and seeds in row order."""
  found: dict[str, dict[int, Any]] = {}
  for row in rows:
    found.setdefault(row["setting"], {})[row["seed"]] = value(row)
  return found


def mean_over_seeds(name: str, values: dict[str, dict[int, Any]]) -> dict[str, Any]:
  """`name`: {setting: the mean over its seeds}, `name_se`: its standard error, `name_dof`: the
  seeds less one, `name_by_seed`: the values; all three None for a setting where a seed's value
  is None (censored or undecided: no mean over the seeds that have one, which would keep only
  the seeds that went one way). A mean of booleans is the fraction of seeds that hold."""
  means, errors, dofs = {}, {}, {}
  for setting, seeds in values.items():
    known = [float(v) for v in seeds.values() if v is not None]
    if len(known) < len(seeds):
      means[setting] = errors[setting] = dofs[setting] = None
      continue
    means[setting], errors[setting] = verdicts.mean_and_standard_error(known)
    dofs[setting] = verdicts.dof(known)
  return {name: means, f"{name}_se": errors, f"{name}_dof": dofs, f"{name}_by_seed": values}


def paired_ratio_over_seeds(
  name: str, numerator: dict[str, dict[int, Any]], denominator: dict[str, dict[int, Any]]
) -> dict[str, Any]:
  """`name`: {setting: the geometric mean over its seeds of numerator/denominator, paired seed
  by seed}, `name_se`: its delta-method standard error (`verdicts.paired_ratio_by_seed`),
  `name_dof`, and `name_by_seed`: the per-seed ratios; None where a seed has no ratio."""
  found: dict[str, Any] = {name: {}, f"{name}_se": {}, f"{name}_dof": {}, f"{name}_by_seed": {}}
  for setting, tops in numerator.items():
    bottoms = denominator[setting]
    ratio, error, dof = verdicts.paired_ratio_by_seed(tops, bottoms)
    found[name][setting], found[f"{name}_se"][setting] = ratio, error
    found[f"{name}_dof"][setting] = dof
    found[f"{name}_by_seed"][setting] = {
      seed: verdicts.ratio(top, bottoms[seed]) for seed, top in tops.items()
    }
  return found


def reached_during_training(rows: list[dict]) -> dict[str, Any]:
  """`reached_threshold_during_training`: {setting: the fraction of its seeds whose λ reached
  0.9 T after step 0}, and `_by_seed`: True, False (at 0.9 T from step 0: it did not rise to T)
  or None (censored: not within the steps). A censored seed might reach T later, so it can only
  raise the fraction: a fraction above `MOST_SEEDS` stands with censored seeds; one at most
  `MOST_SEEDS` stands only when it would still be so with every censored seed reaching T, and
  is None (undecided: more steps could change it) otherwise."""
  outcomes = by_seed(
    rows, lambda r: None if r["steps_to_threshold"] is None else r["steps_to_threshold"] > 0
  )
  fractions = {}
  for setting, seeds in outcomes.items():
    reached = sum(v is True for v in seeds.values()) / len(seeds)
    at_most = sum(v is not False for v in seeds.values()) / len(seeds)
    fractions[setting] = reached if reached > MOST_SEEDS or at_most <= MOST_SEEDS else None
  return {
    "reached_threshold_during_training": fractions,
    "reached_threshold_during_training_by_seed": outcomes,
  }


def seeds_where(rows: list[dict], holds: Callable[[dict], bool]) -> dict[str, list[int]]:
  """{setting: the seeds whose row `holds`}, every setting listed."""
  return {
    setting: [seed for seed, flag in seeds.items() if flag]
    for setting, seeds in by_seed(rows, holds).items()
  }


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
    "curvature_every": config.curvature_every,
  }
  monitor = hessian.CurvatureOptions(  # `seed`: the Lanczos start vector, shared by every member
    lanczos_steps=config.curvature.lanczos_steps, probes=config.curvature.probes, seed=config.seed
  )
  found = {
    f"gd_{loss}": (
      digits_problem(config, loss),
      optim.sgd,
      {"learning_rate": list(config.gd[loss]), "seed": list(config.seeds)},
      options | {"curvature": monitor},
    )
    for loss in GD_LOSSES
  }
  adam = config.adam
  found["adam"] = (
    digits_problem(config, adam.loss),
    functools.partial(optim.adam, b1=adam.b1, b2=adam.b2, eps=adam.eps),
    {"learning_rate": list(adam.learning_rates), "seed": list(config.seeds)},
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
  """One sweep over η × seeds; each member's row of claims (`setting` "name@η", `seed`), and its
  history and final parameters under its own name ("name@η seed s")."""
  result = sweep.run(problem, optimizer, axes, **options)
  metric = "preconditioned_lambda_max" if name == "adam" else "lambda_max"
  loss = config.adam.loss if name == "adam" else name.removeprefix("gd_")
  sharpness = history_curves(result.history, metric)
  losses = history_curves(result.history, "train_loss")
  table, history, arrays = [], [], {}
  for row in result.table:
    setting = f"{name}@{row['learning_rate']:g}"
    member = f"{setting} seed {row['seed']}"
    limit = threshold(config, name, row["learning_rate"])
    table.append(
      {
        "member": member,
        "setting": setting,
        "seed": row["seed"],
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
  not force), and whether the loss fell from there (and how often it rose).

  Also the parts of those ratios, for ratios over seeds paired seed by seed: `lambda_at_start`
  (λ at the first measurement), `lambda_before_threshold` (at the one before the threshold
  step), `loss_at_threshold` (the training loss at the first evaluation from that step on),
  `loss_at_end` (at the last) and `loss_fall_after_threshold` (the first over the last: > 1 when
  the loss fell). A rise counts when the loss grew by more than `RISE_RTOL` of itself."""
  steps, values = np.asarray(sharpness[0]), np.asarray(sharpness[1], float)
  measured = np.isfinite(values)
  steps, values = steps[measured], values[measured]
  above = np.nonzero(values >= REACHED * limit)[0]
  loss_steps, loss_values = np.asarray(losses[0]), np.asarray(losses[1], float)
  none = {
    "steps_to_threshold": None,
    "sharpness_over_threshold": None,
    "progressive_sharpening": None,
    "lambda_before_threshold": None,
    "loss_decreased": None,
    "loss_at_threshold": None,
    "loss_at_end": None,
    "loss_fall_after_threshold": None,
    "loss_increases_after_threshold": None,
  }
  known = {
    "lambda_at_start": float(values[0]),
    "max_sharpness_over_threshold": float(values.max() / limit),
  }
  if above.size == 0:
    return none | known
  first = above[0]
  if first == 0:  # at the threshold from the start: λ did not rise to it, nothing to judge
    return none | known | {"steps_to_threshold": int(steps[0])}
  at_step = int(steps[first])
  after = loss_values[loss_steps >= at_step]
  before = float(values[first - 1]) if first > 1 else None  # nothing between: rise unknown
  return known | {
    "steps_to_threshold": at_step,
    "sharpness_over_threshold": float(np.median(values[first:] / limit)),
    "progressive_sharpening": None if before is None else before / float(values[0]),
    "lambda_before_threshold": before,
    "loss_decreased": bool(after[-1] < after[0]),
    "loss_at_threshold": float(after[0]),
    "loss_at_end": float(after[-1]),
    "loss_fall_after_threshold": float(after[0] / after[-1]),
    "loss_increases_after_threshold": int(np.sum(np.diff(after) > RISE_RTOL * after[:-1])),
  }


def edge_figure(
  method: str, rows: list[dict], loss_curves, sharpness_curves, out_dir: Path
) -> Path:
  """The training loss (log scale) and the sharpness against the steps, one colour per η (its
  seeds in the same colour), each threshold dashed in its η's colour."""
  settings = list(dict.fromkeys(row["setting"] for row in rows))
  colors = dict(zip(settings, plt.cm.viridis(np.linspace(0, 0.9, len(settings))), strict=True))
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
  labelled = set()
  for row in rows:
    color = colors[row["setting"]]
    label = None if row["setting"] in labelled else f"η = {row['learning_rate']:.3g}"
    labelled.add(row["setting"])
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
