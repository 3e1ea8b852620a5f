"""Hessian outliers against the number of classes (Sagun et al. 2017; Papyan 2019).

Sagun, Evci, Güney, Dauphin & Bottou (2017) found the Hessian spectrum of a trained classifier to
split into a bulk concentrated near zero and a few outliers, as many as the classes; Papyan (2019)
traces the outliers to the class means of the logits' gradients (C, or C − 1 once their global
mean is removed). Their protocol varies the number of classes: here scikit-learn's digits are
restricted to the classes 0, …, C − 1 for each C of `classes`, and for each C and seed an MLP
with C outputs is trained by minibatch SGD (Algorithm 8.1) for `steps` steps, meant to reach
zero training 0-1 error (`final_train_error_by_classes` says whether it did; the seeds of one C
in one vmapped program). A seed draws the initialization and the minibatch order; the `num_seeds`
seeds seed, seed + 1, … are independent draws, and every claim is judged over them. The exact
spectrum of its training objective, the mean NLL over its whole training set (§8.1.2), is
computed from the dense Hessian at the end, and at initialization for the first seed of the
largest C (with `init_spectrum`).

* Outliers are counted by a rule fixed before any spectrum was looked at (`hessian.outliers`):
  the eigenvalues above the largest ratio λ_k / λ_{k+1} among the `outlier_search` + 1 largest.
  `outliers_by_classes` (mean over seeds per C) and the slope of the count against C,
  `outlier_slope_vs_classes`: each seed's least-squares slope over the class counts
  (`outlier_slope_by_seed`), averaged over the seeds, with its standard error and degrees of
  freedom (`_dof`, seeds − 1). Not one fit over every (C, seed) point: a seed draws the same
  hidden layer and minibatch order at every C, so its points are not independent draws, and a
  pooled fit's error would count them as such (the slope itself is the same: every seed sees the
  same C). Sagun's claim is a slope of 1.
* Sagun's count at the largest C: `n_outliers`, the mean over its seeds of their counts
  (`n_outliers_by_seed`), with its standard error `n_outliers_se` and `n_outliers_dof` (seeds
  − 1); the claim is a count within one of C (C or C − 1), judged on `outlier_count_error`
  = |n_outliers − C|, whose error is n_outliers' (the interval n_outliers ± the margin must lie
  inside C ± 1.5 to reproduce, outside it to fail; counts are integers, so with three seeds one
  count off by one gives an error of 1/3, whose margin, 1.43, leaves no room inside ± 1.5, and a
  count every seed agrees on has no spread, which decides only from six seeds on: three seeds
  can refute the claim, not reproduce it). Only the largest C is judged: the claim is
  about a C-class net, and pooling |count − C| over C would mix errors of different sizes per C
  (the slope is the claim over every C).
* The cross-check (Papyan 2019): the eigenvalues of the C × C Gram matrix of the class means of
  the logit gradients (`outliers.class_mean_gram`), a part of the Gauss-Newton matrix, against the
  C − 1 largest Hessian eigenvalues: Σ_{k<C} λ_k(Gram) / Σ_{k<C} λ_k(H), 1 if the class means
  make the outliers; `gram_outlier_ratio` at the largest C (the mean over its seeds of a share
  between 0 and about 1, `gram_outlier_ratio_by_seed`, with `_se` and `_dof`; the claim is about
  a C-class net, and C = 2 compares one eigenvalue), `gram_outlier_ratio_by_classes` per C.
* The bulk near zero: the share of eigenvalues with |λ| ≤ `near_zero_relative` · λ_max, after
  training (`bulk_fraction_near_zero`, the mean over members) and at initialization
  (`bulk_fraction_near_zero_init`, the first seed of the largest C; None without
  `init_spectrum`). Its error is over seeds: each seed's mean over the class counts
  (`bulk_fraction_near_zero_by_seed`, whose mean is the mean over members) is one draw, so that
  the share's systematic change with C is not read as noise (`_se`, `_dof` = seeds − 1).

Each judged claim with an error decides only beyond t_{0.975, dof} standard errors of its
threshold (inconclusive within them, and with one seed, where there is no error).

The keys of the largest C keep their names: `n_outliers` (mean over seeds), `n_classes`,
`outlier_gap_ratio` (median over seeds), `top_eigenvalues` (first seed). Each member's spectrum,
in decreasing order, is in `history.csv` (metric `eigenvalue`, λ_k at step k; `eigenvalue_init`
at initialization, `gram_eigenvalue` for the Gram matrix).
"""

import functools
import json
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, optim, report, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.hessian import outliers
from jaxopt_study.lab import digits_tasks, trained_mlp, verdicts
from jaxopt_study.lab.curves import history_curves, read_curves
from jaxopt_study.results import history_rows, read_csv


class HessianOutliers(Experiment):
  """Per number of classes C and seed: a network trained towards zero training error, its exact
  spectrum, its outliers by the eigengap rule, and the Gram matrix of its class means."""

  NAME = "hessian_outliers"
  TITLE = "Hessian outliers: a bulk near zero and one outlier per class"
  SECTION = "8.2"
  DESCRIPTION = (
    "MLPs trained by SGD towards zero training error on scikit-learn's digits restricted to C "
    "classes, for several C and several seeds (initialization and minibatch order); the exact "
    "Hessian spectrum of the full training NLL at the end (and at initialization for the "
    "largest C). Outliers: the eigenvalues above the largest ratio between consecutive "
    "eigenvalues among the largest `outlier_search` + 1, a rule fixed in advance; their count "
    "is fitted against C (Sagun et al. 2017: a slope of 1). Cross-check (Papyan 2019): the "
    "eigenvalues of the C × C Gram matrix of the class means of the logit gradients against the "
    "largest C − 1 Hessian eigenvalues. Each claim is judged on its mean over seeds (the slope "
    "fitted per seed) beyond t_{0.975, dof} standard errors of its threshold."
  )
  PUBLISHED = {
    "outlier_slope_vs_classes": "1: one outlier per class (Sagun et al. 2017, §3; Papyan 2019)",
    "n_outliers": "≈ C at C = 10 (Sagun et al. 2017; C or C − 1, Papyan 2019)",
    "gram_outlier_ratio": "≈ 1: the class means of the logit gradients make the outliers "
    "(Papyan 2019)",
    "bulk_fraction_near_zero": "most eigenvalues in a bulk at zero (Sagun et al. 2017)",
  }
  # slope 1 within ±0.5; "≈ C": within one of C (C or C − 1); the class means carry more than
  # half of the C − 1 largest eigenvalues; "most" eigenvalues: more than half. Each beyond
  # t_{0.975, dof} standard errors over seeds.
  CRITERIA = {
    "outlier_slope_vs_classes": below(
      "outlier_slope_error", 0.5, standard_error="outlier_slope_vs_classes_se"
    ),
    "n_outliers": below("outlier_count_error", 1.5, standard_error="n_outliers_se"),
    "gram_outlier_ratio": above("gram_outlier_ratio", 0.5, standard_error="gram_outlier_ratio_se"),
    "bulk_fraction_near_zero": above(
      "bulk_fraction_near_zero", 0.5, standard_error="bulk_fraction_near_zero_se"
    ),
  }
  FIELDS = {
    **trained_mlp.FIELDS,
    "num_seeds": validate.require_positive_int,
    "init_spectrum": validate.require_bool,
    "outlier_search": validate.require_positive_int,
    "near_zero_relative": functools.partial(validate.require_unit_interval, include_zero=False),
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    classes = list(config.classes)
    if len(classes) < 2 or any(int(c) != c or not 2 <= c <= 10 for c in classes):
      raise ValueError(
        f"{self.NAME}: classes={classes}: need at least two class counts in 2 … 10 to fit a slope"
      )
    if len(set(classes)) != len(classes):
      raise ValueError(f"{self.NAME}: classes={classes}: each count once")
    num_params = trained_mlp.check_training(config)  # the 10-class net, the largest
    smallest = num_params - (10 - min(classes)) * (config.model.width + 1)
    if config.outlier_search >= smallest:
      raise ValueError(
        f"{self.NAME}: outlier_search={config.outlier_search} must be < N={smallest} parameters"
      )

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Per C: trains every seed in one vmapped program, then the spectra and Gram matrices."""
    digits = digits_tasks.load(config.data)
    table, history = [], []
    for num_classes in tqdm(config.classes, desc="classes", disable=not progress):
      record, _ = members.get(
        f"classes{num_classes}",
        lambda c=num_classes: (one_class_count(config, digits, c), {}),
      )
      table.extend(record["rows"])
      history.extend(record["history"])
    return Results(table, history)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    table = results.table
    slopes = {  # one slope per seed, over its class counts
      str(seed): float(
        np.polyfit(
          [r["classes"] for r in table if r["seed"] == seed],
          [r["n_outliers"] for r in table if r["seed"] == seed],
          1,
        )[0]
      )
      for seed in sorted({r["seed"] for r in table})
    }
    slope, slope_se = verdicts.mean_and_standard_error(list(slopes.values()))
    largest = max(config.classes)
    top = [r for r in table if r["classes"] == largest]
    n_outliers, n_outliers_se = verdicts.mean_and_standard_error([r["n_outliers"] for r in top])
    gram, gram_se = verdicts.mean_and_standard_error([r["gram_outlier_ratio"] for r in top])
    bulk_by_seed = {  # each seed's mean over the class counts: one draw per seed
      str(seed): float(np.mean([r["bulk_fraction_near_zero"] for r in table if r["seed"] == seed]))
      for seed in sorted({r["seed"] for r in table})
    }
    _, bulk_se = verdicts.mean_and_standard_error(list(bulk_by_seed.values()))
    spectra = history_curves(results.history, "eigenvalue")
    return {
      "classes": list(config.classes),
      "outliers_by_classes": by_classes(table, "n_outliers", np.mean),
      "outlier_slope_vs_classes": slope,
      "outlier_slope_vs_classes_se": slope_se,
      "outlier_slope_vs_classes_dof": verdicts.dof(slopes),
      "outlier_slope_by_seed": slopes,
      "outlier_slope_error": abs(slope - 1.0),
      "gram_outlier_ratio": gram,
      "gram_outlier_ratio_se": gram_se,
      "gram_outlier_ratio_dof": verdicts.dof(top),
      "gram_outlier_ratio_by_seed": {r["member"]: r["gram_outlier_ratio"] for r in top},
      "gram_outlier_ratio_by_classes": by_classes(table, "gram_outlier_ratio", np.mean),
      "final_train_error_by_classes": by_classes(table, "final_train_error", np.max),
      "n_outliers": n_outliers,
      "n_outliers_se": n_outliers_se,
      "n_outliers_dof": verdicts.dof(top),
      "outlier_count_error": abs(n_outliers - largest),
      "n_outliers_by_seed": {r["member"]: r["n_outliers"] for r in top},
      "n_classes": largest,
      # the mean over members, which is the mean of the per-seed means (every seed has every C)
      "bulk_fraction_near_zero": float(np.mean([r["bulk_fraction_near_zero"] for r in table])),
      "bulk_fraction_near_zero_se": bulk_se,
      "bulk_fraction_near_zero_dof": verdicts.dof(bulk_by_seed),
      "bulk_fraction_near_zero_by_seed": bulk_by_seed,
      "bulk_fraction_near_zero_init": top[0]["bulk_fraction_near_zero_init"],
      "near_zero_relative": config.near_zero_relative,
      "outlier_gap_ratio": float(np.median([r["outlier_gap_ratio"] for r in top])),
      "top_eigenvalues": spectra[top[0]["member"]][1][: 2 * largest + 1],
      "num_params": top[0]["num_params"],
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """The largest eigenvalues per C with the counts, the Gram's beside them, and a histogram."""
    table = read_csv(out_dir / "results.csv")
    spectra = read_curves(out_dir / "history.csv", "eigenvalue")
    grams = read_curves(out_dir / "history.csv", "gram_eigenvalue")
    top = json.loads((out_dir / "config.json").read_text())["outlier_search"] + 1
    first = {r["classes"]: r["member"] for r in reversed(table)}  # the first seed of each C
    series = {}
    for classes, member in first.items():
      row = next(r for r in table if r["member"] == member)
      series[f"C = {classes:g}: H ({int(row['n_outliers'])} outliers)"] = tuple(
        part[:top] for part in spectra[member]
      )
      series[f"C = {classes:g}: class-mean Gram"] = grams[member]
    largest = first[max(first)]
    return [
      report.line_plot(
        series,
        out_dir / "top_eigenvalues.png",
        title="largest Hessian eigenvalues and the class-mean Gram's, decreasing",
        xlabel="rank k",
        ylabel="λ_k",
        logy=True,
      ),
      report.line_plot(
        {
          "mean outlier count over seeds": (
            sorted(first),
            [
              float(np.mean([r["n_outliers"] for r in table if r["classes"] == c]))
              for c in sorted(first)
            ],
          ),
          "one per class": (sorted(first), sorted(first)),
        },
        out_dir / "outliers_vs_classes.png",
        title="outliers by the eigengap rule against the number of classes",
        xlabel="classes C",
        ylabel="outliers",
      ),
      report.histogram_plot(
        spectra[largest][1],
        out_dir / "spectrum_histogram.png",
        title=f"Hessian eigenvalues of {largest}",
        xlabel="eigenvalue",
      ),
    ]


def restrict_classes(digits: data_lib.Dataset, num_classes: int) -> data_lib.Dataset:
  """The examples of the classes 0, …, num_classes − 1, in training and held-out sets."""
  keep_train = np.asarray(digits.y_train) < num_classes
  keep_test = np.asarray(digits.y_test) < num_classes
  return data_lib.Dataset(
    digits.x_train[keep_train],
    digits.y_train[keep_train],
    digits.x_test[keep_test],
    digits.y_test[keep_test],
  )


def one_class_count(config: ml_collections.ConfigDict, digits, num_classes: int) -> dict:
  """Every seed of one C: trained in one vmapped program; spectra, counts and Gram matrices."""
  data = restrict_classes(digits, num_classes)
  options = {k: v for k, v in config.model.to_dict().items() if k not in ("name", "init_scale")}
  problem = problem_lib.builtin(config.model.name, data, **options)
  pure = problem_lib.pure(problem)
  seeds = [config.seed + s for s in range(config.num_seeds)]
  initial = [pure.initial(s, config.model.init_scale) for s in seeds]
  hyper = {k: v for k, v in config.optimizer.to_dict().items() if k != "name"}
  train_fn = train.make_train_fn(
    problem,
    optim.OPTIMIZERS[config.optimizer.name](learning_rate=config.learning_rate, **hyper),
    steps=config.steps,
    batch_size=config.batch_size,
    eval_every=config.eval_every,
    sampling=config.sampling,
  )
  state, curves = jax.jit(jax.vmap(train_fn, in_axes=(0, 0, None, 0)))(
    digits_tasks.stack([p for p, _ in initial]),
    digits_tasks.stack([s for _, s in initial]),
    problem_lib.as_data(problem),
    jax.vmap(jax.random.key)(np.asarray(seeds, np.uint32)),
  )
  steps = train.eval_steps(config.steps, config.eval_every)
  x, y = data.x_train, data.y_train
  rows, history = [], []
  for s, seed in enumerate(seeds):
    name = f"C{num_classes}_seed{seed}"
    params, model_state = jax.tree.map(lambda a, s=s: a[s], (state.params, state.model_state))
    loss_fn = problem.params_loss(model_state)
    values = decreasing(hessian.spectrum(loss_fn, params, x, y).eigenvalues)
    found = hessian.count_outliers(values, config.outlier_search)
    # the model state goes in with the inputs, not closed over: every seed then traces the same
    # function and reuses one compiled program (a closed-over state compiled one per seed)
    gram = outliers.class_mean_gram(
      lambda p, inputs: problem.module(p, inputs[1])(inputs[0]), params, (x, model_state), y
    )
    top = num_classes - 1
    member_curves = {k: np.asarray(v[s]) for k, v in curves.items()} | {"step": steps}
    row = {
      "member": name,
      "classes": num_classes,
      "seed": seed,
      "num_params": values.size,
      "final_train_loss": float(member_curves["train_loss"][-1]),
      "final_train_error": float(member_curves["train_error"][-1]),
      "final_test_error": float(member_curves["test_error"][-1]),
      "final_grad_norm": float(member_curves["grad_norm"][-1]),
      "lambda_max": float(values[0]),
      "lambda_min": float(values[-1]),
      "n_outliers": found.count,
      "outlier_gap_ratio": found.gap_ratio,
      "bulk_edge": found.bulk_edge,
      "bulk_fraction_near_zero": hessian.fraction_near_zero(values, config.near_zero_relative),
      "gram_outlier_ratio": float(gram.eigenvalues[:top].sum() / values[:top].sum()),
      "bulk_fraction_near_zero_init": None,
    }
    history += history_rows(name, member_curves)
    history += trained_mlp.eigenvalue_rows(name, values, "eigenvalue")
    history += trained_mlp.eigenvalue_rows(name, gram.eigenvalues, "gram_eigenvalue")
    if config.init_spectrum and s == 0 and num_classes == max(config.classes):  # at init, once
      init = decreasing(hessian.spectrum(problem.params_loss(), initial[0][0], x, y).eigenvalues)
      row["bulk_fraction_near_zero_init"] = hessian.fraction_near_zero(
        init, config.near_zero_relative
      )
      history += trained_mlp.eigenvalue_rows(name, init, "eigenvalue_init")
    rows.append(row)
  return {"rows": rows, "history": history}


def decreasing(eigenvalues) -> np.ndarray:
  return np.asarray(eigenvalues, float)[::-1]


def by_classes(table: list[dict], column: str, reduce) -> dict[str, float]:
  """{C: reduce(column over the seeds of C)}, C as a string key (JSON)."""
  classes = sorted({r["classes"] for r in table})
  return {str(c): float(reduce([r[column] for r in table if r["classes"] == c])) for c in classes}
