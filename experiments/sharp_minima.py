"""Keskar et al. (2017): large minibatches reach sharper minima that generalize worse.

Keskar, Mudigere, Nocedal, Smelyanskiy & Tang (2017) trained each network from one starting point
with Adam twice, with a small minibatch and with a large one (10% of the training set), for the
same number of epochs (their released code: one `nb_epoch` for both runs), both to about 100%
training accuracy, repeated from several starting points; at the end they measured the
ε-sharpness (§2.2.2, Metric 2.1) in the full space (Table 3) and in random 100-dimensional
subspaces (Table 4), at ε = 1e-3 and 5e-4, and the testing accuracy (Table 2). §8.1.3 of
Goodfellow et al. (2016) discusses the minibatch size, and the noise of small batches, as a
regularizer.

The protocol here is theirs, on a digits MLP: for each seed the same initialization is trained by
Adam (the same learning rate) with the small and with the large minibatch for the same number of
epochs (steps = epochs · ⌊n/m⌋ for minibatch m: both see `epochs` shuffles of the data, less the
n mod m examples each shuffle drops), one `sweep.run` per minibatch size, vmapped over the seeds.
At the end of each run, in float64 (near a training loss of 1e-6 the loss moves by less than
float32 resolves):

* the ε-sharpness of the full-batch training NLL in the full box (`hessian.sharpness`, projected
  sign-gradient ascent) and in a random subspace of `subspace_dim` standard normal directions
  (`lab.subspace_sharpness`, L-BFGS-B as Keskar et al., from z = 0 and `subspace_starts` − 1
  random corners of the box, the largest value found: a lower bound of the box's maximum, whose
  narrow peaks one start rarely finds; one subspace per seed, shared by both minibatch sizes),
  at each ε of `sharpness_eps`;
* the training NLL and 0-1 error, the held-out 0-1 error, and the fraction by which the training
  NLL fell over the last fifth of the epochs (0 on a plateau).

Equal epochs give the small minibatch ⌊n/m_small⌋ / ⌊n/m_large⌋ times more steps, so it may end
at a much lower training loss, and sharpness falls with the loss. The control
(`equal_loss_control`) trains the small minibatch again from the same seeds to the step at which
its mean training loss falls to the large minibatch's final mean (interpolated in log loss
between its evaluations), and measures it the same way.

Claims (`summary.json`; every mean over seeds has its standard error under `NAME_se`, and every
judged one the error's degrees of freedom, seeds − 1, under `NAME_dof`):
`epochs_small`, `epochs_large`, `train_loss_small`, `train_loss_large`,
`sharpness_ratio_large_over_small` (full box) and `subspace_sharpness_ratio` (the ratio of the
mean sharpnesses, one per ε, its error paired by seed; Keskar et al.: > 1), `test_error_gap`
(large − small, paired by seed; Keskar et al.: > 0), and the same ratios and gap against the
control (`equal_loss_*`), judged too: Keskar et al. credit the sharpness to the minibatch size,
not to the training loss, so it should hold where the losses are equal. Each claim is decided
beyond t_{0.975, dof} standard errors of its threshold, the ratios on the log scale (their error
is the delta method's for the log ratio). Without the control the `equal_loss_*` claims are None
(inconclusive).
"""

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, losses, models, report, results, sweep, validate
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks, grids, trained_mlp, verdicts
from jaxopt_study.lab.curves import history_curves, read_curves
from jaxopt_study.lab.subspace_sharpness import subspace_sharpness
from jaxopt_study.lab.verdicts import mean_and_standard_error

BATCHES = ("small", "large")
CONTROL = "small_equal_loss"  # the small minibatch stopped at the large one's training loss


class SharpMinima(Experiment):
  """Small- and large-batch Adam from the same start for the same epochs; sharpness (full box and
  random subspace) and held-out error, and the small batch again at the large one's loss."""

  NAME = "sharp_minima"
  TITLE = "Sharp minima: small vs large minibatches at equal epochs (Keskar et al. 2017)"
  SECTION = "8.1.3"
  DESCRIPTION = (
    "Keskar et al.'s protocol on a digits MLP: for each seed, one initialization trained by Adam "
    "with a small minibatch and with a large one (about 10% of the training set) for the same "
    "number of epochs; then the ε-sharpness of the training NLL (Keskar et al. 2017, Metric 2.1) "
    "in the full box (projected sign-gradient ascent, a lower bound of the maximum) and in a "
    "random 100-dimensional subspace (L-BFGS-B, as theirs), at ε = 1e-3 and 5e-4, and the "
    "held-out error, each a mean over seeds with its standard error (paired by seed). Both final "
    "training losses are reported: at equal epochs the small minibatch takes several times more "
    "steps, so a control retrains it only until its training loss is the large minibatch's and "
    "compares them there (equal_loss_*). The verdicts judge both comparisons by their standard "
    "errors; the numbers of the full config are in benchmarks/RESULTS.md."
  )
  PUBLISHED = {
    "sharpness_ratio_large_over_small": "> 1 at both ε: large-batch minima sharper in the full "
    "space for all six networks (Keskar et al. 2017, Table 3)",
    "subspace_sharpness_ratio": "> 1 at both ε: sharper in random 100-dimensional subspaces too "
    "(Keskar et al. 2017, Table 4)",
    "test_error_gap": "> 0: lower testing accuracy with the large batch for all six networks, "
    "both near 100% training accuracy (Keskar et al. 2017, Table 2)",
    **{
      f"equal_loss_{claim}": "> 1 at both ε, if the minibatch size and not the training loss makes "
      "the minima sharp, as Keskar et al. (2017, §2.2, both runs near 100% training accuracy) "
      "argue; not in their tables"
      for claim in ("sharpness_ratio", "subspace_sharpness_ratio")
    },
    "equal_loss_test_error_gap": "> 0, if the minibatch size and not the training loss costs the "
    "held-out accuracy (Keskar et al. 2017, §2.2); not in their tables",
  }
  # Each beyond t_{0.975, dof} standard errors of its threshold, dof = seeds − 1; the ratios of
  # mean sharpnesses on the log scale, where their delta-method error was made (`ratio_of_means`).
  CRITERIA = {
    claim: above(claim, threshold, standard_error=f"{claim}_se", ratio=ratio)
    for claim, threshold, ratio in (
      ("sharpness_ratio_large_over_small", 1.0, True),
      ("subspace_sharpness_ratio", 1.0, True),
      ("test_error_gap", 0.0, False),
      ("equal_loss_sharpness_ratio", 1.0, True),
      ("equal_loss_subspace_sharpness_ratio", 1.0, True),
      ("equal_loss_test_error_gap", 0.0, False),
    )
  }
  FIELDS = {
    **trained_mlp.FIELDS,
    "num_seeds": lambda name, value, where: validate.require_int(name, value, where, low=2),
    "epochs": validate.require_positive_int,
    "eval_every_epochs": validate.require_positive_int,
    "small_batch_size": validate.require_positive_int,
    "large_batch_size": validate.require_positive_int,
    "sharpness_eps": validate.each(validate.require_positive),
    "sharpness_steps": validate.require_positive_int,
    "subspace_dim": validate.require_positive_int,
    "subspace_iterations": validate.require_positive_int,
    "subspace_starts": validate.require_positive_int,
    "equal_loss_control": functools.partial(validate.require_choice, choices=[False, True]),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    num_train = digits_tasks.load(config.data).x_train.shape[0]
    for field in ("small_batch_size", "large_batch_size"):  # an epoch of at least one step
      validate.require_int(field, config[field], self.NAME, low=1, high=num_train)
    if not config.small_batch_size < config.large_batch_size:
      raise ValueError(
        f"{self.NAME}: small_batch_size={config.small_batch_size} must be smaller than "
        f"large_batch_size={config.large_batch_size}"
      )
    if config.epochs % config.eval_every_epochs:
      raise ValueError(
        f"{self.NAME}: epochs={config.epochs} must be a multiple of "
        f"eval_every_epochs={config.eval_every_epochs}"
      )
    num_params = trained_mlp.check_training(sweep_config(config, config.small_batch_size))
    if config.subspace_dim > num_params:
      raise ValueError(
        f"{self.NAME}: subspace_dim={config.subspace_dim} exceeds the model's {num_params} "
        "parameters"
      )
    for batch_size in (config.small_batch_size, config.large_batch_size):
      sweep.check_config(sweep_config(config, batch_size))

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """One sweep per minibatch size (resumable in the run folder), the control sweep, then every
    member measured; measured members are kept."""
    data = digits_tasks.load(config.data)
    model = digits_tasks.mlp(config.seed, **config.model)  # its `apply` serves every seed
    nll = Measured(data, model, training_nll(model))
    table, history = [], []
    for batch in BATCHES:
      size = config[f"{batch}_batch_size"]
      records = self._trained(config, nll, members, batch, sweep_config(config, size), progress)
      table += [record["row"] for record in records]
      history += [row for record in records for row in record["history"]]
    if config.equal_loss_control:
      control = sweep_config(
        config, config.small_batch_size, steps=equal_loss_steps(table, history)
      )
      records = self._trained(config, nll, members, CONTROL, control, progress)
      table += [record["row"] for record in records]
    return Results(table, history)

  def _trained(self, config, nll, members, batch, training, progress) -> list[dict]:
    """Trains one sweep of seeds in `members.path / training_<batch>` and measures each member."""
    folder = members.path / f"training_{batch}" if members.path else None
    trained = sweep.run_config(training, folder, progress=progress)
    records = []
    for member in tqdm(trained.table, desc=f"sharpness ({batch})", disable=not progress):
      name = f"{batch}@seed{member['seed']}"

      def measured(member=member, name=name):
        rows = [r for r in trained.history if r["member"] == member["member"]]
        row = measure(config, nll, trained.arrays, member, training, rows)
        return {"row": {"member": name, "batch": batch, **row}, "history": renamed(rows, name)}, {}

      records.append(members.get(name, measured)[0])
    return records

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    table = results.table

    def column(batch: str, name: str) -> np.ndarray:
      rows = sorted((r for r in table if r["batch"] == batch), key=lambda r: r["seed"])
      return np.asarray([r[name] for r in rows], float)

    def ratio(name: str, small: str = "small") -> tuple[float, float]:
      return ratio_of_means(column("large", name), column(small, name))

    def by_eps(prefix: str, small: str = "small") -> tuple[dict, dict, dict]:
      """Per ε: the ratio, its error and the error's degrees of freedom (the seeds paired − 1)."""
      names = {f"{eps:g}": f"{prefix}_eps{eps:g}" for eps in config.sharpness_eps}
      pairs = {k: ratio(name, small) for k, name in names.items()}
      return (
        {k: r for k, (r, _) in pairs.items()},
        {k: se for k, (_, se) in pairs.items()},
        {k: verdicts.dof(column("large", name)) for k, name in names.items()},
      )

    summary = {"num_seeds": config.num_seeds}
    for batch in BATCHES:
      summary[f"epochs_{batch}"] = float(column(batch, "epochs")[0])
    for batch in BATCHES:
      for name in ("train_loss", "train_error", "test_error", "train_loss_drop_last_fifth"):
        source = name if name == "train_loss_drop_last_fifth" else f"final_{name}"
        summary[f"{name}_{batch}"], summary[f"{name}_{batch}_se"] = mean_and_standard_error(
          column(batch, source)
        )
    full, full_se, full_dof = by_eps("sharpness")
    sub, sub_se, sub_dof = by_eps("subspace_sharpness")
    summary |= {
      "sharpness_ratio_large_over_small": full,
      "sharpness_ratio_large_over_small_se": full_se,
      "sharpness_ratio_large_over_small_dof": full_dof,
      "subspace_sharpness_ratio": sub,
      "subspace_sharpness_ratio_se": sub_se,
      "subspace_sharpness_ratio_dof": sub_dof,
    }
    gaps = column("large", "final_test_error") - column("small", "final_test_error")
    summary["test_error_gap"], summary["test_error_gap_se"] = mean_and_standard_error(gaps)
    summary["test_error_gap_dof"] = verdicts.dof(gaps)
    if config.equal_loss_control:
      summary["equal_loss_epochs_small"] = float(column(CONTROL, "epochs")[0])
      summary["equal_loss_train_loss_small"], summary["equal_loss_train_loss_small_se"] = (
        mean_and_standard_error(column(CONTROL, "final_train_loss"))
      )
      for prefix, claim in (
        ("sharpness", "equal_loss_sharpness_ratio"),
        ("subspace_sharpness", "equal_loss_subspace_sharpness_ratio"),
      ):
        summary[claim], summary[f"{claim}_se"], summary[f"{claim}_dof"] = by_eps(prefix, CONTROL)
      gaps = column("large", "final_test_error") - column(CONTROL, "final_test_error")
      gap = mean_and_standard_error(gaps)
      summary["equal_loss_test_error_gap"], summary["equal_loss_test_error_gap_se"] = gap
      summary["equal_loss_test_error_gap_dof"] = verdicts.dof(gaps)
    else:  # not measured: the equal-loss claims cannot be judged
      for claim in self.CRITERIA:
        if claim.startswith("equal_loss_"):
          summary[claim] = summary[f"{claim}_se"] = summary[f"{claim}_dof"] = None
    return summary

  def plot(self, out_dir: Path) -> list[Path]:
    """Training loss and held-out error of every member over the epochs, and the full-box
    sharpness of every measured point against its training loss."""
    table = results.read_csv(out_dir / "results.csv")
    per_epoch = {row["member"]: row["steps_per_epoch"] for row in table}
    figures = []
    for metric, label, logy in (
      ("train_loss", "training NLL (full batch)", True),
      ("test_error", "held-out 0-1 error", False),
    ):
      curves = {
        member: (np.asarray(steps) / per_epoch[member], values)
        for member, (steps, values) in read_curves(out_dir / "history.csv", metric).items()
      }
      figures.append(
        report.line_plot(
          curves,
          out_dir / f"{metric}.png",
          title=f"{metric}: small vs large minibatches",
          xlabel="epoch",
          ylabel=label,
          logy=logy,
        )
      )
    return [*figures, sharpness_plot(table, out_dir / "sharpness_vs_loss.png")]


def sweep_config(
  config: ml_collections.ConfigDict, batch_size: int, *, steps: int | None = None
) -> ml_collections.ConfigDict:
  """Every seed at one minibatch size m as one `jaxopt_study.sweep` config: `config.epochs` of
  ⌊n/m⌋ steps each (`sampling="epoch"` drops the last n mod m examples of each shuffle), or
  `steps` steps, evaluated every `eval_every_epochs` epochs."""
  num_train = digits_tasks.load(config.data).x_train.shape[0]
  per_epoch = num_train // batch_size
  keys = ("seed", "learning_rate", "sampling", "data", "model", "optimizer")
  return ml_collections.ConfigDict(
    {
      **{key: config[key] for key in keys},
      "steps": config.epochs * per_epoch if steps is None else steps,
      "eval_every": config.eval_every_epochs * per_epoch,
      "batch_size": batch_size,
      "sweep": {"seed": list(range(config.seed, config.seed + config.num_seeds))},
    }
  )


def equal_loss_steps(table: list[dict], history: list) -> int:
  """The step at which the small minibatch's mean training loss over seeds falls to the large
  minibatch's final mean, interpolated in log loss between its evaluations
  (`grids.steps_to_reach`; it stopped at the nearest evaluated epoch, up to 20% off that loss);
  its last step if it never gets there."""
  target = float(np.mean([r["final_train_loss"] for r in table if r["batch"] == "large"]))
  small = [r for r in history if r["member"].startswith("small@")]
  curves = history_curves(small, "train_loss")
  steps = [int(s) for s in next(iter(curves.values()))[0]]
  mean_loss = np.mean([values for _, values in curves.values()], axis=0)
  reached = grids.steps_to_reach(steps, list(mean_loss), target, log=True)
  return steps[-1] if reached is None else max(1, round(reached))


class Measured(NamedTuple):
  """What every member is measured on: the data, the model and `training_nll` of it."""

  data: data_lib.Dataset
  model: models.FunctionalModel
  loss_fn: Callable[..., jax.Array]


def training_nll(model: models.FunctionalModel) -> Callable[..., jax.Array]:
  """``loss_fn(params, model_state, x, y)``: the mean training NLL (§8.1.2) in training mode,
  with the model state passed as data, so that one function (and one compilation of each Hessian
  tool) serves every member."""

  def loss_fn(params, model_state, x, y):
    logits, _ = model.apply(params, model_state, x, True)
    return losses.softmax_cross_entropy(logits, y)

  return loss_fn


def measure(config, nll: Measured, arrays, member: dict, training, history: list[dict]) -> dict:
  """A trained member's epochs, final training NLL and errors, the fall of its training NLL over
  the last fifth of the epochs, and its sharpness in the full box and in the random subspace at
  each ε (in float64)."""
  data, loss_fn = nll.data, nll.loss_fn
  params, model_state = results.member_state(
    arrays, member["member"], nll.model.params, nll.model.model_state
  )
  num_train = data.x_train.shape[0]
  per_epoch = num_train // training.batch_size
  steps, losses = history_curves(history, "train_loss")[member["member"]]
  fifth = next(i for i, s in enumerate(steps) if s >= 0.8 * training.steps)
  row = {
    "seed": member["seed"],
    "batch_size": training.batch_size,
    "steps": training.steps,
    "steps_per_epoch": per_epoch,
    "epochs": training.steps * training.batch_size / num_train,  # examples seen / n
    "final_train_loss": member["final_train_loss"],
    "final_train_error": member["final_train_error"],
    "final_test_error": member["final_test_error"],
    "train_loss_drop_last_fifth": 1.0 - losses[-1] / losses[fifth],
  }
  key = jax.random.key(member["seed"])  # one subspace per seed, shared by both minibatch sizes
  # in float64: near a training loss of 1e-6 the loss changes by less than float32 resolves
  with jax.enable_x64(True):
    args = jax.tree.map(in_float64, (params, model_state, data.x_train, data.y_train))
    for eps in config.sharpness_eps:
      row[f"sharpness_eps{eps:g}"] = hessian.sharpness(
        loss_fn, *args, eps=eps, steps=config.sharpness_steps
      )
      row[f"subspace_sharpness_eps{eps:g}"] = subspace_sharpness(
        loss_fn,
        *args,
        eps=eps,
        num_directions=config.subspace_dim,
        key=key,
        max_iterations=config.subspace_iterations,
        num_starts=config.subspace_starts,
      )
  return row


def in_float64(array: Any) -> jax.Array:
  """A floating array as float64 (call under `jax.enable_x64`); integer labels unchanged."""
  floating = jnp.issubdtype(jnp.result_type(array), jnp.floating)
  return jnp.asarray(array, jnp.float64) if floating else jnp.asarray(array)


def renamed(rows: list[dict], name: str) -> list[dict]:
  """History rows of a sweep member under the experiment's member name."""
  return [{**row, "member": name} for row in rows]


def ratio_of_means(large: np.ndarray, small: np.ndarray) -> tuple[float, float]:
  """r = mean(large) / mean(small) and its standard error by the delta method for log r, paired
  by seed (both runs of a seed start from one initialization, so their values covary):
  se(r) = |r| · the standard error of dᵢ = largeᵢ / m_L − smallᵢ / m_S, which is
  |r| √((se_L / m_L)² + (se_S / m_S)² − 2 cov_LS / (k m_L m_S))."""
  m_large, m_small = np.mean(large), np.mean(small)
  r = m_large / m_small
  _, se = mean_and_standard_error(large / m_large - small / m_small)
  return float(r), float(abs(r) * se)


def sharpness_plot(table: list[dict], path: Path) -> Path:
  """Full-box sharpness (first ε) of every measured member against its final training NLL."""
  name = next(k for k in table[0] if k.startswith("sharpness_eps"))
  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
  for batch in (*BATCHES, CONTROL):
    rows = [r for r in table if r["batch"] == batch]
    if rows:
      x = [r["final_train_loss"] for r in rows]
      ax.plot(x, [r[name] for r in rows], "o", label=batch, alpha=0.8)
  ax.set(
    title="sharpness against training loss, one point per run",
    xlabel="final training NLL",
    ylabel=f"full-box sharpness, ε = {name.removeprefix('sharpness_eps')}",
    xscale="log",
    yscale="log",
  )
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  return report.save_figure(fig, path)
