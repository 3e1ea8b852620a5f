"""§8.1.2 "Surrogate loss functions and early stopping": the NLL keeps falling after 0-1 error is 0.

`num_seeds` MLPs (one initialization and minibatch order per seed) are trained by SGD
(Algorithm 8.1) in one vmapped program, well past the point where their training 0-1 error reaches
zero. The data (`data.teacher_classification`) are labelled by a random teacher network, so the
held-out set can be as large as the effect needs: its first `num_validation` examples are the
validation split, the rest (`data.num_test` − `num_validation`, ≥ 20,000 in the full config) the
test split, on which a change of 0.1% is about 20 examples of one seed's net. The training loop
(`train.make_train_fn`) logs the surrogate, the training NLL, with the training and test 0-1
errors. The book: "the test set 0-1 loss often continues to decrease for
a long time after the training set 0-1 loss has reached zero, because one can improve the
robustness of the classifier by further pushing the classes apart from each other". Per seed:

* the step t₀ of the first evaluation with zero training error and `steps_after_zero_train_error`,
  the steps trained after it; `train_nll_drop_after_zero_train_error`, the factor by which the
  training NLL falls from t₀ to the end (the geometric mean over the seeds that reach zero
  training error, with the delta-method standard error of its log, `verdicts.paired_ratio`, and
  `_dof`; > 1 judged on the log scale beyond t_{0.975, dof} standard errors);
* `heldout_gain_after_zero_train_error`: the test 0-1 error at t₀ minus the one at the end, a
  paired difference on the same test examples for each seed (mean over the seeds that reach zero
  training error, with its standard error over them and its degrees of freedom `_dof`, those
  seeds − 1; > 0 means it kept improving, judged beyond t_{0.975, dof} standard errors of 0);
* early stopping (§7.8, used in §8.1.2) as `train.py` does it, in a second vmapped program with
  `patience` whose held-out set is the validation split: the loop keeps the parameters of the
  evaluation with the lowest validation 0-1 error and freezes them after `patience` evaluations
  without an improvement. `early_stopping_step` is that evaluation's step,
  `early_stopping_validation_error` its validation error and `early_stopping_test_error` the
  test-split error of its parameters (means over seeds).

The seeds' minibatch orders come from `jax.random.split(key(seed), num_seeds)`, not from each
seed's own key as in `sweep.run`, so the runs stay the vmapped `train.make_train_fn`.
"""

import functools
from pathlib import Path

import jax
import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim, train, validate
from jaxopt_study.config import load_data
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import curves, digits_tasks, verdicts
from jaxopt_study.results import history_rows, read_csv


class SurrogateEarlyStopping(Experiment):
  """MLPs trained long past zero training 0-1 error, with and without early stopping."""

  NAME = "surrogate_early_stopping"
  TITLE = "Chapter 8.1.2: the surrogate loss keeps falling after the training 0-1 error is zero"
  SECTION = "8.1.2"
  DESCRIPTION = (
    "MLPs trained by SGD long past zero training 0-1 error on the labels of a random teacher "
    "network, one per seed. The training NLL (the surrogate) keeps falling after the 0-1 error "
    "has reached 0; the book says the test 0-1 error often keeps improving too: the summary "
    "gives its change on a large test split, paired per seed, with a standard error over seeds. "
    "Early stopping (train.py, with patience) picks its point on a separate validation split; "
    "its test-split error is shown for comparison."
  )
  PUBLISHED = {
    "train_nll_drop_after_zero_train_error": "> 1: the NLL keeps falling (§8.1.2)",
    "heldout_gain_after_zero_train_error": "> 0: the test 0-1 loss often continues to decrease "
    "(§8.1.2)",
  }
  CRITERIA = {
    "train_nll_drop_after_zero_train_error": above(
      "train_nll_drop_after_zero_train_error",
      1.0,
      standard_error="train_nll_drop_after_zero_train_error_se",
      ratio=True,
    ),
    "heldout_gain_after_zero_train_error": above(
      "heldout_gain_after_zero_train_error",
      0.0,
      standard_error="heldout_gain_after_zero_train_error_se",
    ),
  }
  FIELDS = {
    "data.name": functools.partial(validate.require_choice, choices=["teacher_classification"]),
    **dict.fromkeys(
      ("steps", "eval_every", "num_seeds", "patience", "num_validation"),
      validate.require_positive_int,
    ),
    "batch_size": functools.partial(validate.require_int, low=1, high=1000),
    "sampling": functools.partial(validate.require_choice, choices=train.SAMPLINGS),
    "learning_rate": validate.require_non_negative,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """The validation split must leave a test split; the model must build."""
    if config.num_validation >= config.data.num_test:
      raise ValueError(
        f"{self.NAME}: num_validation={config.num_validation} must be < data.num_test="
        f"{config.data.num_test}, which holds the validation and the test split"
      )
    build(config, config.seed)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Trains every seed with and without early stopping; two compiled programs, no resuming."""
    validation, test = split_heldout(load_data(config), config.num_validation)
    seeds = [config.seed + s for s in range(config.num_seeds)]
    nets = [build(config, seed) for seed in seeds]
    model, params = nets[0], digits_tasks.stack([net.params for net in nets])
    keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
    runs = {}
    for patience, data in ((None, test), (config.patience, validation)):
      train_fn = train.make_train_fn(
        model,
        optim.sgd(config.learning_rate),
        steps=config.steps,
        batch_size=config.batch_size,
        eval_every=config.eval_every,
        sampling=config.sampling,
        patience=patience,
      )
      runs[patience] = jax.jit(jax.vmap(train_fn, in_axes=(0, None, None, 0)))(
        params, model.model_state, data, keys
      )
    history = {k: np.asarray(v) for k, v in runs[None][1].items()}
    stopped = runs[config.patience][0]
    stopped_test_error = jax.vmap(
      lambda p: losses.zero_one_error(
        model.apply(p, model.model_state, test.x_test, False)[0], test.y_test
      )
    )(stopped.best_params)
    steps = train.eval_steps(config.steps, config.eval_every)
    table, rows = [], []
    for s, seed in enumerate(seeds):
      member_history = {k: v[s] for k, v in history.items()} | {"step": steps}
      rows.extend(history_rows(f"seed{seed}", member_history))
      stopping = (stopped.best_step[s], stopped.best_value[s], stopped_test_error[s])
      table.append(member_row(f"seed{seed}", member_history, *stopping))
    return Results(table, rows)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """Means over seeds; over the seeds that reach zero training 0-1 error, what follows it."""
    table = results.table
    reached = [r for r in table if r["zero_train_error_step"] is not None]
    gains = np.asarray([r["test_error_at_zero"] - r["final_test_error"] for r in reached])

    def mean(rows: list[dict], column: str) -> float:
      return float(np.mean([r[column] for r in rows]))

    summary = {
      "seeds_reaching_zero_train_error": len(reached),
      "num_seeds": len(table),
      "num_train": config.data.num_train,
      "num_validation": config.num_validation,
      "num_test": config.data.num_test - config.num_validation,
      "early_stopping_step": mean(table, "early_stopping_step"),
      "early_stopping_validation_error": mean(table, "early_stopping_validation_error"),
      "early_stopping_test_error": mean(table, "early_stopping_test_error"),
      "final_test_error": mean(table, "final_test_error"),
    }
    if not reached:  # nothing follows a zero training error: the claims cannot be judged
      return summary | dict.fromkeys(
        (
          "train_nll_drop_after_zero_train_error",
          "train_nll_drop_after_zero_train_error_se",
          "train_nll_drop_after_zero_train_error_dof",
          "heldout_gain_after_zero_train_error",
          "heldout_gain_after_zero_train_error_se",
          "heldout_gain_after_zero_train_error_dof",
        )
      )
    drop, drop_se = verdicts.paired_ratio(
      [r["train_nll_at_zero"] for r in reached], [r["final_train_nll"] for r in reached]
    )
    return summary | {
      "zero_train_error_step": mean(reached, "zero_train_error_step"),
      "steps_after_zero_train_error": mean(reached, "steps_after_zero_train_error"),
      "train_nll_drop_after_zero_train_error": drop,
      "train_nll_drop_after_zero_train_error_se": drop_se,
      "train_nll_drop_after_zero_train_error_dof": verdicts.dof(reached),
      "heldout_gain_after_zero_train_error": float(gains.mean()),
      "heldout_gain_after_zero_train_error_se": float(
        gains.std(ddof=1) / np.sqrt(gains.size) if gains.size > 1 else np.nan
      ),
      # over the seeds that reached zero training error, the gains' seeds
      "heldout_gain_after_zero_train_error_dof": verdicts.dof(gains),
      "test_nll_change_after_zero_train_error": float(
        np.mean([r["final_test_nll"] - r["test_nll_at_zero"] for r in reached])
      ),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Training NLL with the 0-1 errors per seed, the zero-training-error points marked."""
    table = {r["member"]: r for r in read_csv(out_dir / "results.csv")}

    def labelled(metric: str) -> digits_tasks.Curves:
      zero = {m: r["zero_train_error_step"] for m, r in table.items()}
      return {
        f"{m} (0-1 error 0 at {zero[m]:g})" if isinstance(zero[m], float) else m: curve
        for m, curve in curves.read_curves(out_dir / "history.csv", metric).items()
      }

    return digits_tasks.metric_figures(
      out_dir,
      (
        ("train_loss", "training NLL (surrogate, full batch)", True),
        ("train_error", "training 0-1 error", False),
        ("test_error", "test-split 0-1 error", False),
        ("test_loss", "test-split NLL", True),
      ),
      labelled,
      file="{metric}.png",
      title="{metric} per seed",
    )


def build(config: ml_collections.ConfigDict, seed: int) -> models.FunctionalModel:
  """The config's model for the data's inputs and classes, drawn from `seed`."""
  options = {k: v for k, v in config.model.to_dict().items() if k != "name"}
  return models.functional(
    models.build_model(
      config.model.name, config.data.in_dim, config.data.num_classes, seed=seed, **options
    )
  )


def split_heldout(
  data: data_lib.Dataset, num_validation: int
) -> tuple[data_lib.Dataset, data_lib.Dataset]:
  """The training set with the first `num_validation` held-out examples (validation split), and
  with the rest (test split)."""
  x, y = data.x_test, data.y_test
  validation = data._replace(x_test=x[:num_validation], y_test=y[:num_validation])
  return validation, data._replace(x_test=x[num_validation:], y_test=y[num_validation:])


def member_row(member: str, history: dict, best_step, best_error, best_test_error) -> dict:
  """One seed's zero-training-error point, what follows it (test split), and its early-stopping
  point (chosen on the validation split; its error there and on the test split)."""
  steps, train_error = history["step"], history["train_error"]
  zero = np.flatnonzero(train_error == 0)
  first = int(zero[0]) if zero.size else None

  def at_zero(metric: str) -> float | None:
    return float(history[metric][first]) if first is not None else None

  return {
    "member": member,
    "zero_train_error_step": int(steps[first]) if first is not None else None,
    "steps_after_zero_train_error": int(steps[-1] - steps[first]) if first is not None else 0,
    "train_nll_at_zero": at_zero("train_loss"),
    "final_train_nll": float(history["train_loss"][-1]),
    "test_error_at_zero": at_zero("test_error"),
    "final_test_error": float(history["test_error"][-1]),
    "test_nll_at_zero": at_zero("test_loss"),
    "final_test_nll": float(history["test_loss"][-1]),
    "early_stopping_step": int(best_step),
    "early_stopping_validation_error": float(best_error),
    "early_stopping_test_error": float(best_test_error),
  }
