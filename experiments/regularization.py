"""Lecture notes, regularization (Goodfellow et al. 2016, ch. 7): seven ways to train one
over-parameterized digits net on a small training subset.

The net is a residual MLP (`models.ResidualMLP`, far more parameters than training examples)
trained by Adam on the first `num_train` training digits and tested on the whole held-out split.
Methods, each with its strength a config field (`strengths.<method>`):

* `none`: the plain net;
* `l2`, `l1`: the penalties (β/2)‖w‖² and α‖w‖₁ on the weights (`regularization.penalize`, §7.1);
* `dropout`: inverted dropout on the inputs of every layer but the first (Srivastava et al. 2014);
* `dropconnect`: DropConnect on the same layers' weights, one mask per example (Wan et al. 2013);
* `augment`: random shifts of ±`augment_max_shift` pixels and rotations of up to
  `augment_max_rotation` degrees of the 8×8 images, with probability `strengths.augment` (§7.4);
* `stochastic_depth`: residual blocks dropped with survival p_l decaying linearly to
  `strengths.stochastic_depth` (Huang et al. 2016).

Every regularizer's strength is an array in the model state (`regularization.Strength`), so one
compiled program trains all methods at once: per seed, the methods are vmapped members of one
`train.make_train_fn` program on the same initial parameters and the same minibatch order, each
with its own strengths (`regularization.set_strengths`; the others neutral: rate 0, survival 1)
and so paired by seed. Each member equals `train.train` of the problem with that model state.

Measured per member, at the end (eval mode: no noise, the expectation of every regularizer): the
0-1 error on the training subset and on the held-out set, their gap, and the sharpness, the top
eigenvalue of the Hessian of the training NLL (without penalty, eval mode) by Lanczos
(`hessian.spectrum`). Claims (`summary.json`, means over seeds with standard errors `_se`):
`test_error_by_method`, `train_error_by_method`, `train_test_gap_by_method`,
`sharpness_by_method`, and the paired changes against `none`: `test_error_change_vs_none`,
`train_test_gap_change_vs_none`, `log_sharpness_ratio_vs_none` (mean over seeds of
log(λ_method / λ_none)).
"""

import functools
import json
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, optim, regularization, report, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, below
from jaxopt_study.lab import digits_tasks
from jaxopt_study.lab.curves import read_curves

METHODS = ("none", "l2", "l1", "dropout", "dropconnect", "augment", "stochastic_depth")
# each method's strength at which it does nothing
NEUTRAL = {
  "l2": 0.0,
  "l1": 0.0,
  "dropout": 0.0,
  "dropconnect": 0.0,
  "augment": 0.0,
  "stochastic_depth": 1.0,
}
PENALTIES = ("l1", "l2")
RATES = ("dropout", "dropconnect")  # drop probabilities in [0, 1)


def _test_error_claim(method: str):
  return below(
    f"test_error_change_vs_none.{method}",
    0.0,
    standard_error=f"test_error_change_vs_none_se.{method}",
  )


class Regularization(Experiment):
  """No regularization vs L2, L1, dropout, DropConnect, augmentation and stochastic depth."""

  NAME = "regularization"
  TITLE = "Lecture notes: regularization of an over-parameterized net on few digits"
  SECTION = "lectures"
  DESCRIPTION = (
    "An over-parameterized residual MLP trained by Adam on a small subset of the digits, with no "
    "regularization, an L2 or an L1 penalty on the weights, dropout, DropConnect, data "
    "augmentation (±1-pixel shifts and small rotations) or stochastic depth. All methods of one "
    "seed start from the same parameters and see the same minibatches (one vmapped program, the "
    "strengths held in the model state), so each is compared with no regularization seed by "
    "seed: held-out error, train-test gap, and the sharpness (top Hessian eigenvalue of the "
    "training NLL in eval mode) of the end point, each a mean over seeds with its standard error."
  )
  PUBLISHED = {
    "train_test_gap_change_vs_none": "< 0 for every method: a regularizer is a change meant to "
    "reduce the generalization error but not the training error (Goodfellow et al. 2016, ch. 7)",
    "l2_test_error_change": "< 0: weight decay improves generalization (Krogh & Hertz 1992)",
    "dropout_test_error_change": "< 0: dropout lowers the test error of fully connected nets "
    "on MNIST, 1.60% → 1.25% for 3×1024 logistic units (Srivastava et al. 2014, Table 2)",
    "dropconnect_test_error_change": "< 0: DropConnect lowers the test error of 2-layer MNIST "
    "nets below no-drop (Wan et al. 2013, §6.1 and Fig. 2a)",
    "augment_test_error_change": "< 0: training on shifted and rotated copies lowers the test "
    "error (Goodfellow et al. 2016, §7.4; Simard et al. 2003, Table 1)",
    "stochastic_depth_test_error_change": "< 0: stochastic depth lowers the test error of deep "
    "residual nets (Huang et al. 2016, Table 1)",
    "dropout_log_sharpness_ratio": "< 0: dropout ends at flatter minima, a smaller top Hessian "
    "eigenvalue (Zhang & Xu 2022, 'Implicit regularization of dropout', §5; Wei, Kakade & Ma "
    "2020: dropout's explicit regularizer penalizes curvature)",
  }
  # Each claim at 2 standard errors of the seed-paired differences (inconclusive within them).
  CRITERIA = {
    "train_test_gap_change_vs_none": below(
      "train_test_gap_change_vs_none", 0.0, standard_error="train_test_gap_change_vs_none_se"
    ),
    **{
      f"{m}_test_error_change": _test_error_claim(m)
      for m in ("l2", "dropout", "dropconnect", "augment", "stochastic_depth")
    },
    "dropout_log_sharpness_ratio": below(
      "log_sharpness_ratio_vs_none.dropout",
      0.0,
      standard_error="log_sharpness_ratio_vs_none_se.dropout",
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    "seeds": validate.each(validate.require_int, low=0),
    "methods": validate.each(validate.require_choice, choices=list(METHODS)),
    "num_train": validate.require_positive_int,
    "model.width": validate.require_positive_int,
    "model.depth": functools.partial(validate.require_int, low=2),  # ≥ 1 residual block
    "steps": validate.require_positive_int,
    "eval_every": validate.require_positive_int,
    "batch_size": validate.require_positive_int,
    "learning_rate": validate.require_positive,
    **{f"strengths.{m}": validate.require_non_negative for m in PENALTIES},
    **{f"strengths.{m}": validate.require_unit_interval for m in RATES},
    "strengths.augment": functools.partial(validate.require_unit_interval, include_one=True),
    "strengths.stochastic_depth": functools.partial(
      validate.require_unit_interval, include_zero=False, include_one=True
    ),
    "augment_max_shift": functools.partial(validate.require_int, low=0),
    "augment_max_rotation": validate.require_non_negative,
    "lanczos_steps": validate.require_positive_int,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    if len(config.seeds) < 2 or len(set(config.seeds)) != len(config.seeds):
      raise ValueError(f"{self.NAME}: seeds={list(config.seeds)!r}: two or more distinct seeds")
    if "none" not in config.methods or len(set(config.methods)) != len(config.methods):
      raise ValueError(
        f"{self.NAME}: methods={list(config.methods)!r} must list each method once, 'none' "
        "(the baseline of every comparison) included"
      )
    available = digits_tasks.load(config.data).x_train.shape[0]
    validate.require_int("num_train", config.num_train, self.NAME, high=available)
    validate.require_int("batch_size", config.batch_size, self.NAME, high=config.num_train)
    try:
      problem = regularized_problem(config)
    except (TypeError, ValueError) as error:
      raise ValueError(f"{self.NAME}: model: {error}") from error
    num_params = sum(a.size for a in jax.tree.leaves(problem_lib.pure(problem).params_shape))
    validate.require_int("lanczos_steps", config.lanczos_steps, self.NAME, high=num_params)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Per seed (a member a later run in the same folder resumes), every method trained in one
    vmapped program, then measured."""
    del progress
    problem = regularized_problem(config)
    program = _program(
      problem, config.learning_rate, config.steps, config.batch_size, config.eval_every
    )
    table, history = [], []
    for seed in config.seeds:
      record, _ = members.get(
        f"seed{seed}", functools.partial(_one_seed, config, problem, program, seed)
      )
      table += record["rows"]
      history += record["history"]
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    by_method = {
      m: sorted((r for r in results.table if r["method"] == m), key=_seed) for m in config.methods
    }
    summary = {"num_train": config.num_train, "num_seeds": len(config.seeds)}
    for name, field in (
      ("test_error_by_method", "final_test_error"),
      ("train_error_by_method", "final_train_error"),
      ("train_test_gap_by_method", "train_test_gap"),
      ("sharpness_by_method", "sharpness"),
    ):
      pairs = {m: _mean_and_se([r[field] for r in by_method[m]]) for m in config.methods}
      summary[name] = {m: mean for m, (mean, _) in pairs.items()}
      summary[f"{name}_se"] = {m: se for m, (_, se) in pairs.items()}
    baseline = by_method["none"]
    others = [m for m in METHODS if m != "none"]
    changes = {
      "test_error_change_vs_none": lambda r, b: r["final_test_error"] - b["final_test_error"],
      "train_test_gap_change_vs_none": lambda r, b: r["train_test_gap"] - b["train_test_gap"],
      "log_sharpness_ratio_vs_none": lambda r, b: float(np.log(r["sharpness"] / b["sharpness"])),
    }
    for name, change in changes.items():
      pairs = {
        m: _mean_and_se([change(r, b) for r, b in zip(by_method[m], baseline, strict=True)])
        if m in by_method
        else (None, None)
        for m in others
      }
      summary[name] = {m: mean for m, (mean, _) in pairs.items()}
      summary[f"{name}_se"] = {m: se for m, (_, se) in pairs.items()}
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """Held-out and training error against steps (mean over seeds, one line per method), and
    the final held-out error, train-test gap and sharpness per method with standard errors."""
    figures = []
    for metric, label in (
      ("test_error", "held-out 0-1 error"),
      ("train_error", "training 0-1 error"),
    ):
      curves = read_curves(out_dir / "history.csv", metric)
      by_method: dict[str, list] = {}
      for member, (steps, values) in curves.items():
        by_method.setdefault(member.split("/")[0], []).append((steps, values))
      mean_curves = {
        method: (runs[0][0], np.mean([values for _, values in runs], axis=0))
        for method, runs in by_method.items()
      }
      figures.append(
        report.line_plot(
          mean_curves,
          out_dir / f"{metric}.png",
          title=f"{label} during training (mean over seeds)",
          xlabel="step",
          ylabel=label,
        )
      )
    return [*figures, _bars(out_dir)]


def _seed(row: dict) -> int:
  return row["seed"]


def _mean_and_se(values: list[float]) -> tuple[float, float]:
  """The mean over seeds and its standard error, std (ddof = 1) / √k."""
  array = np.asarray(values, np.float64)
  return float(array.mean()), float(array.std(ddof=1) / np.sqrt(array.size))


@functools.cache
def _problem(key: tuple) -> problem_lib.Problem:
  data_block, num_train, model_block, methods, shift, rotation = key
  data_config = ml_collections.ConfigDict(dict(data_block))
  digits = digits_tasks.load(data_config)
  subset = data_lib.Dataset(
    digits.x_train[:num_train], digits.y_train[:num_train], digits.x_test, digits.y_test
  )
  options = dict(model_block)
  name = options.pop("name")
  for method in ("dropout", "dropconnect", "stochastic_depth"):
    if method in methods:
      options[method] = NEUTRAL[method]
  if "augment" in methods:
    options["augment"] = {
      "rate": NEUTRAL["augment"],
      "max_shift": shift,
      "max_rotation": rotation,
      "standardization": regularization.digits_standardization(
        data_config.test_fraction, data_config.split_seed
      ),
    }
  problem = problem_lib.builtin(name, subset, **options)
  if any(m in methods for m in PENALTIES):
    problem = regularization.penalize(problem)
  return problem


def regularized_problem(config: ml_collections.ConfigDict) -> problem_lib.Problem:
  """The digits subset and the config's model with every configured regularizer present at its
  neutral strength (and the penalties when L1 or L2 is a method); one `Problem` per config in a
  process, so its programs compile once."""
  return _problem(
    (
      tuple(sorted(config.data.to_dict().items())),
      config.num_train,
      tuple(sorted(config.model.to_dict().items())),
      tuple(config.methods),
      config.augment_max_shift,
      float(config.augment_max_rotation),
    )
  )


def member_state(config: ml_collections.ConfigDict, model_state, method: str):
  """A model state with `method`'s strength from the config and every other regularizer of
  the config's methods neutral."""
  present = {m: NEUTRAL[m] for m in config.methods if m != "none"}
  if method != "none":
    present[method] = config.strengths[method]
  return regularization.set_strengths(model_state, **present)


@functools.cache
def _program(problem, learning_rate, steps, batch_size, eval_every):
  """The training program of one seed's members: `train.make_train_fn` vmapped over parameters
  and model states, the data and the minibatch key shared."""
  train_fn = train.make_train_fn(
    problem, optim.adam(learning_rate), steps=steps, batch_size=batch_size, eval_every=eval_every
  )
  return jax.jit(jax.vmap(train_fn, in_axes=(0, 0, None, None)))


def eval_nll(problem: problem_lib.Problem):
  """``loss_fn(params, model_state, x, y)``: the NLL of the net in eval mode, without penalty,
  with the model state passed as data so that one Lanczos program serves every member."""
  pure = problem_lib.pure(problem)

  def loss_fn(params, model_state, x, y):
    return losses.softmax_cross_entropy(pure.module(params, model_state)(x), y)

  return loss_fn


def _one_seed(config, problem, program, seed: int):
  """Every method from the same initial parameters and minibatch key; the rows and history."""
  pure = problem_lib.pure(problem)
  params, model_state = pure.initial(seed)
  methods = list(config.methods)
  states = [member_state(config, model_state, m) for m in methods]
  stacked = digits_tasks.stack([params] * len(methods)), digits_tasks.stack(states)
  final, history = program(*stacked, problem_lib.as_data(problem), jax.random.key(seed))
  steps = train.eval_steps(config.steps, config.eval_every)
  x, y = problem.train_data
  loss_fn = eval_nll(problem)
  rows, rows_history = [], []
  for i, method in enumerate(methods):
    member = f"{method}/seed{seed}"
    member_params, member_state_ = jax.tree.map(
      lambda a, i=i: a[i], (final.params, final.model_state)
    )
    top = hessian.spectrum(
      loss_fn,
      member_params,
      member_state_,
      x,
      y,
      method="lanczos",
      k=1,
      num_steps=config.lanczos_steps,
    ).eigenvalues[-1]
    metrics = {k: np.asarray(v[i]) for k, v in history.items()}
    rows.append(
      {
        "member": member,
        "method": method,
        "seed": seed,
        "strength": None if method == "none" else config.strengths[method],
        "final_train_loss": float(metrics["train_loss"][-1]),
        "final_train_error": float(metrics["train_error"][-1]),
        "final_test_error": float(metrics["test_error"][-1]),
        "train_test_gap": float(metrics["test_error"][-1] - metrics["train_error"][-1]),
        "sharpness": float(top),
      }
    )
    rows_history += [
      {"member": member, "step": int(step), "metric": name, "value": float(values[j])}
      for name, values in metrics.items()
      for j, step in enumerate(steps)
    ]
  return {"rows": rows, "history": rows_history}, {}


def _bars(out_dir: Path) -> Path:
  """Final held-out error, train-test gap and sharpness per method, mean ± standard error."""
  summary = json.loads((out_dir / "summary.json").read_text())
  methods = list(summary["test_error_by_method"])
  fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), dpi=110)
  for ax, (name, label) in zip(
    axes,
    (
      ("test_error_by_method", "held-out error"),
      ("train_test_gap_by_method", "held-out − training error"),
      ("sharpness_by_method", "λ_max of the training NLL"),
    ),
    strict=True,
  ):
    values = [summary[name][m] for m in methods]
    errors = [summary[f"{name}_se"][m] for m in methods]
    ax.bar(range(len(methods)), values, yerr=errors, capsize=3)
    ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
    ax.set(title=label)
    ax.grid(alpha=0.3, axis="y")
  fig.tight_layout()
  return report.save_figure(fig, out_dir / "by_method.png")
