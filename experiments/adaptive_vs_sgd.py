"""Wilson et al. (2017), "The marginal value of adaptive gradient methods", §3.3: SGD vs AdaGrad,
RMSProp and Adam on their linearly separable least-squares construction.

The data of their §3.3: n examples with labels yᵢ = +1 with probability p > 1/2 (here exactly a
share p of the training labels, shuffled, so that Σᵢ yᵢ > 0 as their argument needs) and −1
otherwise; the features are x_{i,1} = yᵢ (the label itself), x_{i,2} = x_{i,3} = 1, and a block of
features of its own for example i: one 1 if yᵢ = +1, five 1s if yᵢ = −1, at positions 4 + 5(i − 1)
onwards. Every held-out example gets a block of its own too, which no training example touches.
A linear model without bias (`models.DeepLinear` with one layer) starts at w = 0 and minimizes
½ mean (xᵢᵀw − yᵢ)² on the training set with full-batch steps (`train.make_train_fn`, batch size
n). Wilson et al. prove that gradient descent reaches the minimum-norm interpolant, which puts
positive weight on feature 1 and so classifies every held-out point correctly, whereas AdaGrad
(and, empirically, RMSProp and Adam) converge to a solution whose held-out predictions are all +1,
an error equal to the share of −1 labels, 1 − p.

The data are drawn `num_seeds` times (seeds `seed`, `seed` + 1, ...: which training labels are
−1, and the held-out labels). Each optimizer runs over a small learning-rate grid on every draw,
vmapped as one program (the rate injected with `optax.inject_hyperparams`, the draws stacked as
arguments). Which solution a method reaches does not depend on its step size (Wilson et al.'s
argument holds for any rate that converges), so the claims are judged at every rate of the grid
that fits the draw's training set (training sign error 0, finite loss), not at one best rate that
a short grid might not bracket, and each claim takes the seed and rate where it is weakest.
Claims: `sgd_test_error`, SGD's largest held-out sign error over seeds and fitted rates;
`adaptive_error_gap_to_minority_share` (per adaptive method), the largest |error − (1 − p)| /
(1 − p) over seeds and fitted rates, with 1 − p the draw's share of −1 held-out labels (the error
of always saying +1). A method that fits at no rate of some draw, or a draw without a −1 held-out
label, gives None (inconclusive). Reported beside them, over seeds (each seed at its weakest
rate): `sgd_test_error_mean` ± `sgd_test_error_se`, `adaptive_test_error` ±
`adaptive_test_error_se` and `minority_share` (means). `fitted_rates` lists the rates fitted at
one seed or more, `unfitted_members` the runs not judged; the figures show each method at the rate
whose median final training loss over seeds is lowest (`best_learning_rate`) on the first seed's
draw, and the median held-out error over seeds against the rate.

How the claims are judged: on their bare values, as the worst case over seeds and fitted rates,
with no error bar, because the values do not vary with the draw. Every draw's training set holds
exactly round(p · num_train) positives, so two draws differ only by a relabelling of the
training examples and of their feature blocks; full-batch gradient descent and the
coordinatewise AdaGrad, RMSProp and Adam are equivariant to such a relabelling, so w_label and
w_always_on (the weights of the shared features) come out the same on every draw up to float
rounding (which a run still oscillating at its last step amplifies), and the weights of the
held-out blocks stay 0. A held-out point's prediction is then sign(w_label · y + w_always_on),
one rule for every draw: it is right on every point (error 0) or says +1 on every point (error
exactly the draw's share of −1 labels, a gap of 0), or else something the claim rejects on every
draw alike. The draw changes only which held-out labels are −1, which the gap divides out. Every
seed must show the property, so one seed or fitted rate that does not fails the claim.
"""

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxopt_study import data as data_lib
from jaxopt_study import models, optim, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, below
from jaxopt_study.lab import grids, rate_plots, verdicts
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import history_rows, read_csv

ADAPTIVE = ("adagrad", "rmsprop", "adam")


class AdaptiveVsSgd(Experiment):
  """SGD and the adaptive methods, at every rate of their grids that fits the training set, on
  Wilson et al.'s separable data."""

  NAME = "adaptive_vs_sgd"
  TITLE = "Wilson et al. (2017): adaptive methods generalize worse than SGD on separable data"
  SECTION = "8.5.4"
  DESCRIPTION = (
    "The linearly separable least-squares problem of Wilson et al. (2017, §3.3): the first "
    "feature is the label, two features are always 1, and every example has its own block of "
    "features. From w = 0, full-batch gradient descent converges to the minimum-norm solution and "
    "classifies new points by the label feature (no held-out error); AdaGrad, RMSProp and Adam "
    "weight the always-on features as much as the label feature and call every new point +1, an "
    "error equal to the share of −1 labels. The data are drawn once per seed; each claim is "
    "judged at every seed and every learning rate of the method's grid that fits the training "
    "set, since the solution reached does not depend on the rate, and takes the weakest; the "
    "figures show each method at the rate with the lowest median final training loss."
  )
  PUBLISHED = {
    "sgd_test_error": "0: gradient descent finds the minimum-norm solution, which generalizes "
    "(Wilson et al. 2017, §3.3)",
    "adaptive_test_error": "≈ 1 − p (the share of −1 labels): AdaGrad, RMSProp and Adam predict "
    "+1 everywhere (Wilson et al. 2017, §3.3)",
  }
  # "0" read as under 1% held-out error; "≈ 1 − p" as within 10% of the share of −1 labels.
  # Both are judged on their bare values, the worst seed and fitted rate: the draws' training sets
  # are one problem up to a relabelling of examples and features, to which every method here is
  # equivariant, so the learned rule, and with it the error of 0 or the gap of 0, is the same on
  # every draw by construction (module docstring); no spread over seeds to put an error bar on.
  CRITERIA = {
    "sgd_test_error": below("sgd_test_error", 0.01),
    "adaptive_test_error": below("adaptive_error_gap_to_minority_share", 0.1),
  }
  FIELDS = dict.fromkeys(
    ("num_train", "num_test", "steps", "eval_every"), functools.partial(validate.require_int, low=2)
  ) | {"num_seeds": functools.partial(validate.require_int, low=1)}

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """p in (1/2, 1), and the grids of SGD and the adaptive methods only, SGD among them."""
    if not 0.5 < config.positive_share < 1:
      raise ValueError(f"{self.NAME}: positive_share={config.positive_share!r} must be in (1/2, 1)")
    grids.check_learning_rate_grids(config.optimizers, self.NAME, ("sgd", *ADAPTIVE))
    if "sgd" not in config.optimizers:
      raise ValueError(f"{self.NAME}: optimizers must include 'sgd', which the claims compare")

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Every optimizer over its learning-rate grid and every seed's data, one vmapped program
    each (seconds: nothing to resume)."""
    seeds = _seeds(config)
    datasets = [_data(config, seed) for seed in seeds]
    dim = datasets[0].x_train.shape[1]
    model = models.functional(
      models.build_model("deep_linear", dim, 1, width=1, depth=1, init_scale=0.0)
    )
    steps = train.eval_steps(config.steps, config.eval_every)
    table, history = [], []
    for name, hyper in config.optimizers.items():
      hyper = hyper.to_dict()
      grid = hyper.pop("learning_rate")
      constructor = optax.inject_hyperparams(optim.OPTIMIZERS[name])
      states, histories = grids.train_vmapped_over_seeds(
        [model] * len(seeds),  # w = 0 on every draw
        lambda lr, constructor=constructor, hyper=hyper: constructor(learning_rate=lr, **hyper),
        [jnp.asarray(grid, jnp.float32)],
        datasets,
        seeds=seeds,
        steps=config.steps,
        batch_size=config.num_train,  # full-batch steps
        eval_every=config.eval_every,
        loss="mse",
      )
      weights = np.asarray(states.params["layers"][0]["kernel"][...])[..., 0]
      for j, (seed, data) in enumerate(zip(seeds, datasets, strict=True)):
        for i, lr in enumerate(grid):
          member = f"{name}@{lr:g}/seed{seed}"
          member_history = {k: np.asarray(v[j, i]) for k, v in histories.items()} | {"step": steps}
          history.extend(history_rows(member, member_history))
          w = weights[j, i]
          table.append(
            {
              "member": member,
              "optimizer": name,
              "learning_rate": float(lr),
              "seed": seed,
              "final_train_loss": float(member_history["train_loss"][-1]),
              "train_error": _sign_error(data.x_train, data.y_train, w),
              "test_error": _sign_error(data.x_test, data.y_test, w),
              "w_label": float(w[0]),
              "w_always_on": float(w[1] + w[2]),
            }
          )
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """The claims at every seed and fitted rate, each where it is weakest, and the means over
    seeds with their standard errors; the share of −1 held-out labels is recomputed from each
    seed's data."""
    seeds = _seeds(config)
    minority = {seed: float(np.mean(np.asarray(_data(config, seed).y_test) < 0)) for seed in seeds}
    fitted: dict[tuple[str, int], list] = {
      (name, seed): [] for name in config.optimizers for seed in seeds
    }
    for row in results.table:
      if _fits(row):
        fitted[row["optimizer"], row["seed"]].append(row)

    def gap(row) -> float | None:
      """|error − (1 − p)| / (1 − p) on the row's draw: 0 when it calls every held-out point +1;
      None with no −1 label held out, where the claim cannot be told."""
      share = minority[row["seed"]]
      return abs(row["test_error"] - share) / share if share > 0 else None

    def weakest(name: str, badness) -> list | None:
      """Per seed, the fitted row where the claim is weakest (largest `badness`); None when a
      seed has no fitted row or a row cannot be judged."""
      rows = []
      for seed in seeds:
        scored = [(badness(r), r) for r in fitted[name, seed]]
        if not scored or any(score is None for score, _ in scored):
          return None
        rows.append(max(scored, key=lambda pair: pair[0]))
      return rows

    sgd = weakest("sgd", lambda r: r["test_error"])
    adaptive = {name: weakest(name, gap) for name in config.optimizers if name != "sgd"}
    sgd_errors = [row["test_error"] for _, row in sgd or []]
    adaptive_errors = {k: [row["test_error"] for _, row in v or []] for k, v in adaptive.items()}
    medians = grids.seed_medians(results.table, ("optimizer", "learning_rate"), "final_train_loss")
    best = grids.best_rows(medians, "optimizer", "final_train_loss")
    return {
      "sgd_test_error": max(sgd_errors) if sgd else None,
      "sgd_test_error_mean": verdicts.mean_and_standard_error(sgd_errors)[0],
      "sgd_test_error_se": verdicts.standard_error(sgd_errors),
      "adaptive_error_gap_to_minority_share": {
        k: max(score for score, _ in v) if v else None for k, v in adaptive.items()
      },
      "adaptive_test_error": {
        k: verdicts.mean_and_standard_error(v)[0] for k, v in adaptive_errors.items()
      },
      "adaptive_test_error_se": {k: verdicts.standard_error(v) for k, v in adaptive_errors.items()},
      "minority_share": float(np.mean(list(minority.values()))),
      "minority_share_by_seed": list(minority.values()),
      "num_seeds": len(seeds),
      "fitted_rates": {
        name: sorted({r["learning_rate"] for seed in seeds for r in fitted[name, seed]})
        for name in config.optimizers
      },
      "unfitted_members": [r["member"] for r in results.table if not _fits(r)],
      "final_train_loss": {k: r["final_train_loss"] for k, r in best.items()},
      "train_error": {
        k: max(
          r["train_error"]
          for r in results.table
          if r["optimizer"] == k and r["learning_rate"] == best[k]["learning_rate"]
        )
        for k in best
      },
      "best_learning_rate": {k: r["learning_rate"] for k, r in best.items()},
      "test_error_every_rate": {r["member"]: r["test_error"] for r in results.table},
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Training loss per optimizer at its best rate on the first seed's draw, and the median
    held-out error over seeds vs learning rate."""
    table = read_csv(out_dir / "results.csv")
    first = int(min(row["seed"] for row in table))
    medians = grids.seed_medians(table, ("optimizer", "learning_rate"), "final_train_loss")
    best = {
      k: r["learning_rate"]
      for k, r in grids.best_rows(medians, "optimizer", "final_train_loss").items()
    }
    loss_plot = rate_plots.best_rate_plot(
      [r for r in table if r["seed"] == first and r["learning_rate"] == best.get(r["optimizer"])],
      read_curves(out_dir / "history.csv", "train_loss"),
      out_dir / "train_loss.png",
      title=f"training loss at each optimizer's best learning rate (seed {first})",
      ylabel="½ mean (xᵀw − y)²",
    )
    error_plot = rate_plots.rate_plot(
      grids.seed_medians(table, ("optimizer", "learning_rate"), "test_error"),
      "test_error",
      out_dir / "test_error.png",
      title="held-out sign error vs learning rate (median over seeds)",
      ylabel="held-out 0-1 error",
    )
    return [loss_plot, error_plot]


def wilson_data(key: jax.Array, num_train: int, num_test: int, positive_share: float):
  """Wilson et al. (2017) §3.3 features and ±1 labels as a `data.Dataset` (labels (n, 1)).

  The training labels hold exactly round(p · num_train) positives in a random order; held-out
  labels are +1 with probability p.
  """
  train_key, test_key = jax.random.split(key)
  positives = round(positive_share * num_train)
  y_train = jnp.where(jax.random.permutation(train_key, num_train) < positives, 1.0, -1.0)
  y_test = jnp.where(jax.random.uniform(test_key, (num_test,)) < positive_share, 1.0, -1.0)
  labels = jnp.concatenate([y_train, y_test])
  num = num_train + num_test
  dim = 3 + 5 * num
  first = 3 + 5 * jnp.arange(num)  # each example's block starts at feature 4 + 5(i − 1)
  width = jnp.where(labels > 0, 1, 5)  # one feature for +1, five for −1
  columns = jnp.arange(dim)
  own = (columns[None, :] >= first[:, None]) & (columns[None, :] < (first + width)[:, None])
  x = own.astype(jnp.float32)
  x = x.at[:, 0].set(labels).at[:, 1].set(1.0).at[:, 2].set(1.0)
  return data_lib.Dataset(x[:num_train], y_train[:, None], x[num_train:], y_test[:, None])


def _seeds(config: ml_collections.ConfigDict) -> list[int]:
  return list(range(config.seed, config.seed + config.num_seeds))


def _data(config: ml_collections.ConfigDict, seed: int) -> data_lib.Dataset:
  return wilson_data(jax.random.key(seed), config.num_train, config.num_test, config.positive_share)


def _fits(row: dict) -> bool:
  """Whether a run fits its training set: sign error 0 and a finite loss."""
  return row["train_error"] == 0.0 and math.isfinite(row["final_train_loss"])


def _sign_error(x: jax.Array, y: jax.Array, w: np.ndarray) -> float:
  """Share of examples whose predicted sign disagrees with the ±1 label (a 0 output counts +1)."""
  prediction = np.where(np.asarray(x) @ w >= 0, 1.0, -1.0)
  return float(np.mean(prediction != np.asarray(y)[:, 0]))
