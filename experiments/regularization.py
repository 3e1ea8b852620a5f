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
0-1 error on the training subset and on the held-out set, their gap, the training NLL (without
penalty, eval mode; `eval_train_nll`) and the sharpness, the top eigenvalue of the Hessian of that
NLL by Lanczos (`hessian.spectrum`). Claims (`summary.json`, means over seeds with standard errors
`_se`): `test_error_by_method`, `train_error_by_method`, `train_test_gap_by_method`,
`sharpness_by_method`, and the paired changes against `none` of each method run:
`test_error_change_vs_none`, `train_test_gap_change_vs_none`, `log_sharpness_ratio_vs_none`
(mean over seeds of log(λ_method / λ_none)), each with its degrees of freedom `_dof` (seeds − 1)
and judged beyond t_{0.975, dof} standard errors of 0; a claim about a method not run is
inconclusive.

Sharpness changes with the training loss (it rises early in training and falls as the
cross-entropy saturates), so end points at different training losses compare loss levels as much
as flatness. The equal-loss control (with `dropout` among the methods) compares dropout's end
point with `none`'s own run (same seed, initial parameters and minibatches) at the first step s*
where `none`'s training NLL is at or below the dropout member's final eval-mode training NLL.
That target is dropout's eval-mode NLL (`eval_train_nll`), the loss whose Hessian is measured:
the history's `train_loss` is in train mode, dropout's noise on, while `none`'s, every
regularizer neutral, is its eval-mode NLL. s* is found in two stages: the first evaluation step
at or below the target (`matched_step` on the history, `eval_every` apart), then, `none` trained
again alone from the seed's initial parameters with the same minibatch key (`prefix_program`: the
minibatch of step t depends only on the key and t, so this is its run's prefix; as the plain net,
`plain_problem`, which its neutral regularizers leave unchanged and which compiles faster) and
evaluated at each of the `eval_every` steps up to that evaluation, the first of them
at or below the target (no interpolation: a step's loss is at or below the target, within one
Adam step of it). `none` trained to s* is measured as the end points are (row
`none_at_dropout_loss`). Claims: `matched_step_none` (s* per seed; NaN when `none` never gets
down to dropout's loss), `none_sharpness_at_dropout_loss` and
`dropout_log_sharpness_ratio_at_equal_loss` (mean over seeds of log(λ_dropout, end / λ_none, s*);
NaN, so inconclusive, when a seed has no s*).
"""

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, optim, regularization, report, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Criterion, Experiment, Members, Results, below
from jaxopt_study.lab import digits_tasks, grids, verdicts
from jaxopt_study.lab.curves import mean_by_prefix, read_curves
from jaxopt_study.lab.verdicts import mean_and_standard_error

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
CONTROL = "none_at_dropout_loss"  # `none` trained to the first step at dropout's final NLL
EQUAL_LOSS_CLAIMS = ("none_sharpness_at_dropout_loss", "dropout_log_sharpness_ratio_at_equal_loss")
# the control row's measured fields: NaN where `none` never gets down to dropout's loss
CONTROL_FIELDS = (
  "steps",
  "eval_step",
  "history_train_loss",
  "window_train_loss",
  "final_train_loss",
  "final_train_error",
  "final_test_error",
  "train_test_gap",
  "eval_train_nll",
  "sharpness",
)


def _if_run(method: str, criterion: Criterion) -> Criterion:
  """`criterion`, undecided where `method` was not run (not in the config's `methods`): the
  paired changes hold only the methods run."""

  def judge(summary: Mapping[str, Any]) -> bool | None:
    return criterion(summary) if method in summary["test_error_change_vs_none"] else None

  return judge


def _test_error_claim(method: str) -> Criterion:
  return _if_run(
    method,
    below(
      f"test_error_change_vs_none.{method}",
      0.0,
      standard_error=f"test_error_change_vs_none_se.{method}",
    ),
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
    "training NLL in eval mode) of the end point, each a mean over seeds with its standard error. "
    "Since the sharpness changes with the training loss, an equal-loss control compares "
    "dropout's end point with the plain net's own run (the same seed, parameters and "
    "minibatches) stopped at the first step where its training NLL is at or below dropout's "
    "final one (in eval mode, the loss whose Hessian is measured)."
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
    "dropout_log_sharpness_ratio_at_equal_loss": "< 0: the same claim at equal training loss, "
    "dropout's end point against the plain net's run where its training NLL first reaches "
    "dropout's (Zhang & Xu 2022, §5; Wei, Kakade & Ma 2020)",
  }
  # Each claim beyond t_{0.975, dof} standard errors of the seed-paired differences, dof = seeds
  # − 1 (inconclusive within them).
  CRITERIA = {
    "train_test_gap_change_vs_none": below(
      "train_test_gap_change_vs_none", 0.0, standard_error="train_test_gap_change_vs_none_se"
    ),
    **{
      f"{m}_test_error_change": _test_error_claim(m)
      for m in ("l2", "dropout", "dropconnect", "augment", "stochastic_depth")
    },
    "dropout_log_sharpness_ratio": _if_run(
      "dropout",
      below(
        "log_sharpness_ratio_vs_none.dropout",
        0.0,
        standard_error="log_sharpness_ratio_vs_none_se.dropout",
      ),
    ),
    "dropout_log_sharpness_ratio_at_equal_loss": below(
      "dropout_log_sharpness_ratio_at_equal_loss",
      0.0,
      standard_error="dropout_log_sharpness_ratio_at_equal_loss_se",
    ),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    "seeds": validate.seeds(),
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
    prefix = prefix_program(plain_problem(config), config.learning_rate, config.batch_size)
    table, history = [], []
    for seed in config.seeds:
      record, _ = members.get(
        f"seed{seed}", functools.partial(_one_seed, config, problem, program, prefix, seed)
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
      pairs = {m: mean_and_standard_error([r[field] for r in by_method[m]]) for m in config.methods}
      summary[name] = {m: mean for m, (mean, _) in pairs.items()}
      summary[f"{name}_se"] = {m: se for m, (_, se) in pairs.items()}
    baseline = by_method["none"]
    others = [m for m in METHODS if m != "none" and m in by_method]  # the methods run
    changes = {
      "test_error_change_vs_none": lambda r, b: r["final_test_error"] - b["final_test_error"],
      "train_test_gap_change_vs_none": lambda r, b: r["train_test_gap"] - b["train_test_gap"],
      "log_sharpness_ratio_vs_none": lambda r, b: float(np.log(r["sharpness"] / b["sharpness"])),
    }
    for name, change in changes.items():
      paired = {
        m: [change(r, b) for r, b in zip(by_method[m], baseline, strict=True)] for m in others
      }
      pairs = {m: mean_and_standard_error(values) for m, values in paired.items()}
      summary[name] = {m: mean for m, (mean, _) in pairs.items()}
      summary[f"{name}_se"] = {m: se for m, (_, se) in pairs.items()}
      summary[f"{name}_dof"] = {m: verdicts.dof(values) for m, values in paired.items()}
    return summary | equal_loss_summary(results.table)

  def plot(self, out_dir: Path) -> list[Path]:
    """Held-out and training error against steps (mean over seeds, one line per method), and
    the final held-out error, train-test gap and sharpness per method with standard errors."""
    figures = []
    for metric, label in (
      ("test_error", "held-out 0-1 error"),
      ("train_error", "training 0-1 error"),
    ):
      figures.append(
        report.line_plot(
          mean_by_prefix(read_curves(out_dir / "history.csv", metric)),
          out_dir / f"{metric}.png",
          title=f"{label} during training (mean over seeds)",
          xlabel="step",
          ylabel=label,
        )
      )
    return [*figures, _bars(out_dir)]


def _seed(row: dict) -> int:
  return row["seed"]


def equal_loss_summary(table: list[dict]) -> dict:
  """The equal-loss control's claims from the table's `dropout` and `none_at_dropout_loss` rows,
  paired by seed: per seed, s* (`matched_step_none`), dropout's final eval-mode training NLL and
  `none`'s `train_loss` at s*; the mean ± se over seeds of λ_none at s* and of
  log(λ_dropout / λ_none at s*). A seed without s* (NaN) makes the means NaN: inconclusive. None
  without a dropout member."""
  dropout = sorted((r for r in table if r["method"] == "dropout"), key=_seed)
  control = sorted((r for r in table if r["method"] == CONTROL), key=_seed)
  if [r["seed"] for r in control] != [r["seed"] for r in dropout]:
    raise ValueError(
      f"{CONTROL}: seeds {[r['seed'] for r in control]}, expected one per dropout seed "
      f"{[r['seed'] for r in dropout]} (a run folder from before the control: use a new --out)"
    )
  per_seed = {
    "matched_step_none": {str(c["seed"]): c["steps"] for c in control},
    "dropout_train_nll_eval": {str(d["seed"]): d["eval_train_nll"] for d in dropout},
    "none_train_loss_at_matched_step": {str(c["seed"]): c["final_train_loss"] for c in control},
  }
  if not dropout:  # nothing to compare: inconclusive
    return per_seed | {
      f"{claim}{key}": None for claim in EQUAL_LOSS_CLAIMS for key in ("", "_se", "_dof")
    }
  ratios = [
    float(np.log(d["sharpness"] / c["sharpness"])) for d, c in zip(dropout, control, strict=True)
  ]
  sharpness = mean_and_standard_error([c["sharpness"] for c in control])
  ratio = mean_and_standard_error(ratios)
  return per_seed | {
    "none_sharpness_at_dropout_loss": sharpness[0],
    "none_sharpness_at_dropout_loss_se": sharpness[1],
    "none_sharpness_at_dropout_loss_dof": verdicts.dof(control),
    "dropout_log_sharpness_ratio_at_equal_loss": ratio[0],
    "dropout_log_sharpness_ratio_at_equal_loss_se": ratio[1],
    "dropout_log_sharpness_ratio_at_equal_loss_dof": verdicts.dof(ratios),
  }


def matched_step(steps: np.ndarray, losses: np.ndarray, target: float) -> int | None:
  """The first evaluation step at which `losses` (evaluated at `steps`) is at or below `target`;
  None when it never is or a non-finite value comes first. `grids.steps_to_reach` interpolates
  the crossing into (previous step, step]; the evaluation step at or after it is that step."""
  crossing = grids.steps_to_reach(steps, losses, target)
  if crossing is None:
    return None
  return int(steps[np.searchsorted(steps, crossing)])


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
  return _problem(_problem_key(config, tuple(config.methods)))


def plain_problem(config: ml_collections.ConfigDict) -> problem_lib.Problem:
  """The same digits subset and model without any regularizer: the `none` member's net, whose
  neutral modules and zero penalties compute the identity and add nothing. The regularizers hold
  no parameters, so the parameters of `regularized_problem` are this problem's; its training
  program is a fraction of the regularized one to compile."""
  return _problem(_problem_key(config, ()))


def _problem_key(config: ml_collections.ConfigDict, methods: tuple[str, ...]) -> tuple:
  return (
    tuple(sorted(config.data.to_dict().items())),
    config.num_train,
    tuple(sorted(config.model.to_dict().items())),
    methods,
    config.augment_max_shift,
    float(config.augment_max_rotation),
  )


def member_state(config: ml_collections.ConfigDict, model_state, method: str):
  """A model state with `method`'s strength from the config and every other regularizer of
  the config's methods neutral."""
  present = {m: NEUTRAL[m] for m in config.methods if m != "none"}
  if method != "none":
    present[method] = config.strengths[method]
  return regularization.set_strengths(model_state, **present)


@functools.cache
def prefix_program(problem, learning_rate, batch_size):
  """``(params, model_state, data, key, block_lengths) -> (TrainState, metrics)``: `train.train`'s
  run from these arrays with this minibatch key (the same loop, `train.make_train_loop`), cut
  into blocks of `block_lengths[j]` steps (0 allowed), with an evaluation after each
  (`metrics[name][j]`). The lengths are traced, so a run of any length and any cuts of the same
  count is one compiled program: [t₀, 1, ..., 1] evaluates steps t₀, t₀ + 1, ...;
  [t, 0, ..., 0] stops at step t."""
  loop = train.make_train_loop(problem, optim.adam(learning_rate), batch_size=batch_size)

  def run(params, model_state, data, key, block_lengths):
    return loop.run(loop.init(params, model_state), data, key, None, block_lengths)

  return jax.jit(run)


@functools.cache
def _program(problem, learning_rate, steps, batch_size, eval_every):
  """The training program of one seed's members: `train.make_train_fn` vmapped over parameters
  and model states, the data and the minibatch key shared."""
  train_fn = train.make_train_fn(
    problem, optim.adam(learning_rate), steps=steps, batch_size=batch_size, eval_every=eval_every
  )
  return jax.jit(jax.vmap(train_fn, in_axes=(0, 0, None, None)))


@functools.cache
def eval_nll(problem: problem_lib.Problem):
  """``loss_fn(params, model_state, x, y)``: the NLL of the net in eval mode, without penalty,
  with the model state passed as data so that one Lanczos program serves every member (one
  function per problem, so also every seed)."""
  pure = problem_lib.pure(problem)

  def loss_fn(params, model_state, x, y):
    return losses.softmax_cross_entropy(pure.module(params, model_state)(x), y)

  return loss_fn


def _one_seed(config, problem, program, prefix, seed: int):
  """Every method from the same initial parameters and minibatch key, then the equal-loss control
  of `none` against `dropout`; the rows and history."""
  pure = problem_lib.pure(problem)
  params, model_state = pure.initial(seed)
  methods = list(config.methods)
  states = [member_state(config, model_state, m) for m in methods]
  stacked = digits_tasks.stack([params] * len(methods)), digits_tasks.stack(states)
  final, history = program(*stacked, problem_lib.as_data(problem), jax.random.key(seed))
  steps = train.eval_steps(config.steps, config.eval_every)
  measure = functools.partial(_top_of_spectrum, config, problem)
  rows, rows_history = [], []
  for i, method in enumerate(methods):
    member = f"{method}/seed{seed}"
    top = measure(*jax.tree.map(lambda a, i=i: a[i], (final.params, final.model_state)))
    metrics = {k: np.asarray(v[i]) for k, v in history.items()}
    rows.append(
      {
        "member": member,
        "method": method,
        "seed": seed,
        "strength": None if method == "none" else config.strengths[method],
        **_final(metrics),
        "eval_train_nll": float(top.loss),
        "sharpness": float(top.eigenvalues[-1]),
      }
    )
    rows_history += [
      {"member": member, "step": int(step), "metric": name, "value": float(values[j])}
      for name, values in metrics.items()
      for j, step in enumerate(steps)
    ]
  if "dropout" in methods:
    none_losses = np.asarray(history["train_loss"][methods.index("none")])
    target = rows[methods.index("dropout")]["eval_train_nll"]
    start = params, problem_lib.pure(plain_problem(config)).initial(seed)[1]
    none_state = states[methods.index("none")]
    rows.append(
      _control_row(config, prefix, measure, seed, start, none_state, (steps, none_losses), target)
    )
  return {"rows": rows, "history": rows_history}, {}


def _final(metrics: dict) -> dict:
  """A member's last evaluation: training loss (train mode), training and held-out error, gap."""
  return {
    "final_train_loss": float(metrics["train_loss"][-1]),
    "final_train_error": float(metrics["train_error"][-1]),
    "final_test_error": float(metrics["test_error"][-1]),
    "train_test_gap": float(metrics["test_error"][-1] - metrics["train_error"][-1]),
  }


def _top_of_spectrum(config, problem, params, model_state) -> hessian.Spectrum:
  """The top Hessian eigenvalue (and the loss) of the eval-mode training NLL at these arrays."""
  x, y = problem.train_data
  return hessian.spectrum(
    eval_nll(problem),
    params,
    model_state,
    x,
    y,
    method="lanczos",
    k=1,
    num_steps=config.lanczos_steps,
  )


def _control_row(config, prefix, measure, seed, start, none_state, history, target) -> dict:
  """`none` trained again from `start` (the seed's parameters, `plain_problem`'s state) to s*,
  measured as the end points are (at `none_state`, its state in the regularized problem).
  s*: after the first evaluation step at or below `target` in the vmapped run's
  `history` = (steps, train_loss) (`matched_step`), the run again, evaluated at every step of
  the `eval_every` steps up to it (`prefix_program`), and s* the first of those at or below
  `target`; `window_train_loss` is that run's loss at the evaluation step, beside the vmapped
  run's (`history_train_loss`). NaN where `none` never gets down to `target`."""
  row = {
    "member": f"{CONTROL}/seed{seed}",
    "method": CONTROL,
    "seed": seed,
    "strength": None,
    "target_train_nll": target,
  }
  steps, none_losses = history
  eval_step = matched_step(steps, none_losses, target)
  if eval_step is None:  # never got down to dropout's loss: nothing to measure, no value made up
    return row | dict.fromkeys(CONTROL_FIELDS, float("nan"))
  window = config.eval_every
  first = max(eval_step - window, 0)
  data, key = problem_lib.as_data(plain_problem(config)), jax.random.key(seed)
  _, metrics = prefix(*start, data, key, np.r_[first, np.ones(window, int)].astype(np.int32))
  window_losses = np.asarray(metrics["train_loss"])
  step = matched_step(first + np.arange(window + 1), window_losses, target)
  if step is None:  # its loss at `eval_step` is within float32 rounding above `target`
    step = eval_step
  state, metrics = prefix(*start, data, key, np.r_[step, np.zeros(window, int)].astype(np.int32))
  top = measure(state.params, none_state)
  return row | {
    "steps": step,
    "eval_step": eval_step,
    "history_train_loss": float(none_losses[list(steps).index(eval_step)]),
    "window_train_loss": float(window_losses[eval_step - first]),
    **_final({k: np.asarray(v)[:1] for k, v in metrics.items()}),  # the evaluation at s*
    "eval_train_nll": float(top.loss),
    "sharpness": float(top.eigenvalues[-1]),
  }


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
