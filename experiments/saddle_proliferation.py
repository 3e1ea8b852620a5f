"""§8.2.3 saddle points: in high dimension a critical point is far likelier a saddle than a minimum.

Dauphin et al. (2014, §2) argue from random-matrix theory (Bray & Dean 2007) that the Hessian at
a critical point of a high-dimensional random function resembles a GOE matrix, which is positive
definite with probability P_N = exp(−θ N² + O(N)), θ = ln 3 / 4 ≈ 0.2747 (Dean & Majumdar 2006).
This experiment estimates P_N by Monte Carlo (`random_matrix.count_positive_definite`) for small
N, checks each estimate against the exact value (`random_matrix.positive_definite_probability`,
de Bruijn's Pfaffian), and fits the rate θ.

The fit. log P_N is fitted by weighted least squares (weights 1/Var(log P̂) ≈ n P̂ / (1 − P̂)) to
a N² + b N + c, over every N with at least `min_hits` positive-definite draws; `goe_slope` is a.
The linear term is part of the large-deviation expansion, not a free choice: at N ≤ 8 the exact
local slopes Δ log P / Δ N² run from −0.41 (N = 1 → 2) to −0.30 (N = 7 → 8), so a fit of log P
against N² alone mixes the O(N) term into the slope and gives −0.32 on the exact values over
N = 1 ... 7 (reported as `goe_slope_n2_only`), while the quadratic model gives −0.273 on the same
exact values. The model and the fit range were chosen from this expansion and from the exact
values, before any Monte Carlo slope was looked at.

Claims (`summary.json`): `goe_slope` (theory −θ ≈ −0.2747; `goe_slope_rel_error`, |slope / −θ − 1|,
with the standard error of weighted least squares, from the known variances: judged beyond
t_{0.975, ∞} = 1.96 errors of 5%), `goe_slope_exact` (the same fit on the exact
values of the same N, and its `goe_slope_exact_rel_error`), `goe_slope_n2_only`, `goe_max_abs_z`
(the largest |P̂ − P| / standard error over N), and per N the estimate, the exact value and the
number of hits.

Part (b): the critical points of small networks (Dauphin et al. 2014, §4 and Fig. 1; Pennington
& Bahri 2017). For each hidden width, a tanh MLP x → W₂ tanh(W₁x + b₁) + b₂ on digits reduced
to `data.input_dims` whitened principal components (N = (input_dims + 11) · width + 10
parameters), with f(θ) = mean ½‖MLP(x) − onehot(y)‖² + ½ λ‖θ‖² on `data.num_examples` training
examples, all in float64. The squared error rather than the softmax NLL, whose invariance to a
shift of all logits would make every Hessian singular; the weight decay λ because without it
the runs drift towards critical points at infinity (saturated or linearized tanh units), where
‖∇f‖ decays without vanishing (tried at width 4: none of 8 starts converged in 150 steps, with
λ = 0.001 half of them did). Starts: the initialization of every seed and the points of
full-batch gradient descent on f at the steps `descent.start_steps`, so that the starts span the
losses from the initialization down to a minimum. From each, `newton.steps` updates of
`optim.critical_point_newton` (Newton's method for ∇f = 0, Levenberg–Marquardt on ½‖∇f‖² with
the exact Hessian, `hessian.dense.traced_hessian`), which converges quadratically to a critical
point of any index; each end point is classified by `hessian.classify` (exact spectrum, its
default tolerances: ‖g‖ ≤ √ε(1 + |f|) ≈ 2e-8 for a critical point), both in
`landscape.critical_points_from`; copies of one critical point under the network's symmetries
(same loss to 1e-9 and same index, `landscape.repeats_of`) count once.

Claims (`summary.json`): `spearman_index_loss`, Spearman's ρ between index and loss over the
distinct critical points of one width, averaged over the widths weighted by their number of
points (loss scales differ between widths, so the pooled `spearman_index_loss_pooled` mixes the
width in), with `spearman_index_loss_se` and `spearman_index_loss_dof`, its leave-one-seed-out
jackknife error over the descent seeds (`spearman_index_loss_leave_one_seed_out`, the same ρ
without each seed's starts, whose copies of a critical point then count once among the seeds
left); `spearman_index_loss_by_width`; `minima_fraction_by_width`, the fraction of the
distinct critical points that are minima, and `minima_fraction_slope_vs_width`, its least-squares
slope against the width (reported, not judged: the share of minima among the points these starts
reach is not the share among all critical points that Bray & Dean predict to vanish; (a) tests
their prediction); `kinds_by_width`, `converged_fraction_by_width` (the
starts that end at a critical point), `median_grad_norm_not_converged` and
`median_flatness_not_converged` (‖Hg‖ / (‖g‖ max|λ|) where the runs stall: ≈ 0 is a
gradient-flat point, Frye et al. 2021).

How the claims are judged. `goe_slope` by its Monte Carlo standard error (binomial variances,
weighted least squares, margin t_{0.975, ∞}). `goe_slope_exact` on its bare value: the fit of the
exact probabilities, deterministic. `spearman_index_loss` comes from random draws (the seeds'
initializations decide which critical points Newton reaches), and one seed's starts reach too few
distinct points at a width for a ρ of their own, so it is the ρ of the points of every seed,
Dauphin et al.'s pooled picture, with the jackknife over seeds as its error:
√((n − 1)/n · Σₛ (ρ₋ₛ − mean ρ₋)²) with n − 1 degrees of freedom, n the seeds. It is decided
only beyond t_{0.975, n − 1} errors of 0 (`experiment.above`); a seed left out whose remaining
points give no ρ at any width leaves it undecided.
"""

import functools
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import scipy.stats
import sklearn.decomposition
from tqdm.auto import tqdm

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, above, below
from jaxopt_study.lab import digits_tasks, landscape, random_matrix, verdicts
from jaxopt_study.lab.curves import read_curves
from jaxopt_study.results import history_rows, member_arrays, read_csv

NUM_CLASSES = 10  # digits
CRITICAL_KINDS = ("minimum", "saddle", "maximum", "degenerate", "plateau")


class SaddleProliferation(Experiment):
  """(a) the GOE's positive-definite probability by N; (b) critical points of MLPs by width."""

  NAME = "saddle_proliferation"
  TITLE = "Saddle points proliferate: P(GOE positive definite) = exp(−θN²); MLP critical points"
  SECTION = "8.2.3"
  DESCRIPTION = (
    "(a) Monte Carlo probability that an N × N GOE matrix is positive definite (Gaussian "
    "elimination, every pivot > 0), set against its exact value from de Bruijn's Pfaffian, and the "
    "rate θ fitted to log P = −θN² + bN + c (the O(N) term of the large-deviation expansion: at "
    "these N a fit of log P against N² alone is steeper than ln 3/4, shown as "
    "goe_slope_n2_only). (b) Critical points of tanh MLPs on digits (whitened principal "
    "components, squared error + weight decay, float64), found by Newton's method for ∇f = 0 "
    "(Levenberg–Marquardt on ½‖∇f‖² with the exact Hessian) from initializations and from points "
    "along gradient descent, and classified by the exact spectrum; where it converges it does so "
    "quadratically. Dauphin et al. (2014, Fig. 1) find the index rising with the loss. The "
    "fraction of minima among the distinct points found depends on where the starts lie, so it "
    "does not measure the share of minima among all critical points that Bray & Dean (2007) "
    "predict to vanish. Starts that do not converge stall at gradient-flat points, where g lies "
    "in the near-kernel of H (Frye et al. 2021): median_flatness_not_converged."
  )
  PUBLISHED = {
    "goe_slope": "−ln(3)/4 ≈ −0.275 (Bray & Dean 2007; Dean & Majumdar 2006)",
    "goe_slope_exact": "−ln(3)/4 ≈ −0.275 as N → ∞",
    "spearman_index_loss": "> 0: critical points of higher error have a larger index, on a "
    "monotone curve (Dauphin et al. 2014, Fig. 1; Bray & Dean 2007)",
  }
  # "≈ −ln(3)/4" as within 5%, the Monte Carlo standard error deciding: it comes from the known
  # binomial variances of the estimates (weighted least squares), not from a spread over seeds,
  # so its margin is the normal's t_{0.975, ∞} = 1.96 errors. The exact values' slope is
  # deterministic (de Bruijn's Pfaffian, no draw), so it is judged on its value.
  CRITERIA = {
    "goe_slope": below(
      "goe_slope_rel_error", 0.05, standard_error="goe_slope_rel_error_se", dof=math.inf
    ),
    "goe_slope_exact": below("goe_slope_exact_rel_error", 0.05),
    # random (the seeds' starts): the pooled ρ with its jackknife error over the seeds
    "spearman_index_loss": above(
      "spearman_index_loss", 0.0, standard_error="spearman_index_loss_se"
    ),
  }
  FIELDS = {
    # (a) at least 4 distinct N to fit a N² + b N + c; the exact value is known up to N = 10
    "sizes": functools.partial(
      validate.require_sequence,
      each=functools.partial(validate.require_int, low=1, high=10),
      min_length=4,
      distinct=True,
    ),
    "samples": validate.require_positive_int,
    "batch": validate.require_positive_int,
    "min_hits": validate.require_positive_int,
    # (b)
    "widths": functools.partial(
      validate.require_sequence, each=validate.require_positive_int, min_length=2, distinct=True
    ),
    "data.name": digits_tasks.DIGITS,
    "weight_decay": validate.require_non_negative,
    "descent.learning_rate": validate.require_positive,
    "descent.seeds": validate.seeds(),
    "descent.start_steps": validate.each(validate.require_int, low=0),
    "newton.steps": validate.require_positive_int,
    "newton.damping": validate.require_positive,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    if config.samples % min(config.batch, config.samples):
      raise ValueError(
        f"{self.NAME}: samples={config.samples} must be a multiple of batch={config.batch}"
      )
    if np.any(np.diff(list(config.descent.start_steps)) <= 0):
      raise ValueError(
        f"{self.NAME}: descent.start_steps={list(config.descent.start_steps)!r} must increase"
      )
    data = config.data
    try:
      num_train = data_lib.load_digits(data.test_fraction, data.split_seed).x_train.shape[0]
    except ValueError as error:
      raise ValueError(f"{self.NAME}: data.test_fraction: {error}") from None
    validate.require_int("data.num_examples", data.num_examples, self.NAME, low=2, high=num_train)
    validate.require_int(
      "data.input_dims", data.input_dims, self.NAME, low=1, high=min(64, data.num_examples)
    )
    try:
      with jax.enable_x64(True):
        build_mlp(config, config.widths[0], 0)
    except ValueError as error:
      raise ValueError(f"{self.NAME}: model: {error}") from None

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """(a) counts positive-definite GOE matrices for each N; (b) finds and classifies critical
    points of digits MLPs for each width. Finished N and widths are kept in the run folder."""
    table = [
      members.get(f"N{size}", functools.partial(goe_row, config, size))[0]
      for size in tqdm(config.sizes, desc="N", disable=not progress)
    ]
    history = [
      {"member": name, "step": int(row["N"]), "metric": "log_probability", "value": np.log(value)}
      for row in table
      for name, value in (("monte_carlo", row["probability"]), ("exact", row["exact_probability"]))
      if value > 0  # no hit at this N: log 0 is not drawn
    ]
    arrays = {}
    with jax.enable_x64(True):
      features = digits_features(config)
      for width in tqdm(config.widths, desc="width", disable=not progress):
        saved, width_arrays = members.get(
          f"width{width}", functools.partial(critical_points, config, width, features)
        )
        table.extend(saved["rows"])
        history.extend(saved["history"])
        arrays.update(width_arrays)
    return Results(table, history, arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    goe = [row for row in results.table if "N" in row]
    points = [row for row in results.table if "kind" in row]
    return summarize_goe(goe, config.min_hits) | summarize_critical_points(
      points, list(config.widths)
    )

  def plot(self, out_dir: Path) -> list[Path]:
    """(a) log P against N², Monte Carlo and exact, with the asymptotic slope −ln 3 / 4 drawn;
    (b) index against loss of the critical points, and ‖∇f‖ along the Newton runs."""
    series = {
      member: ([n**2 for n in sizes], values)
      for member, (sizes, values) in read_curves(out_dir / "history.csv", "log_probability").items()
    }
    largest = max(max(xs) for xs, _ in series.values())
    series["−(ln 3/4) N²"] = ([0.0, largest], [0.0, -random_matrix.GOE_THETA * largest])
    figures = [
      report.line_plot(
        series,
        out_dir / "goe_log_probability.png",
        title="log P(GOE matrix positive definite)",
        xlabel="N²",
        ylabel="log P",
      )
    ]
    points = [r for r in read_csv(out_dir / "results.csv") if r.get("kind")]  # part (b)
    return figures + [index_against_loss(points, out_dir), newton_convergence(out_dir)]


def goe_row(config: ml_collections.ConfigDict, size: int) -> tuple[dict, dict]:
  """Part (a) at one N: the Monte Carlo estimate of P_N, its exact value and the z-score."""
  key = jax.random.fold_in(jax.random.key(config.seed), size)
  hits = random_matrix.count_positive_definite(key, size, config.samples, config.batch)
  estimate = hits / config.samples
  exact = random_matrix.positive_definite_probability(size)
  row = {
    "member": f"N{size}",
    "N": size,
    "samples": config.samples,
    "hits": hits,
    "probability": estimate,
    "exact_probability": exact,
    "z": (estimate - exact) / np.sqrt(exact * (1 - exact) / config.samples),
  }
  return row, {}


def fit_rate(sizes, log_probability, weights=None, linear_term: bool = True) -> float:
  """The coefficient a of N² in the weighted least-squares fit log P ≈ a N² (+ b N) + c."""
  sizes = np.asarray(sizes, float)
  columns = [sizes**2, sizes, np.ones_like(sizes)] if linear_term else [sizes**2, sizes**0]
  design = np.stack(columns, axis=1)
  root = np.sqrt(np.ones_like(sizes) if weights is None else np.asarray(weights, float))
  solution, *_ = np.linalg.lstsq(design * root[:, None], np.asarray(log_probability) * root)
  return float(solution[0])


def fit_rate_standard_error(sizes, weights) -> float:
  """The standard error of a in `fit_rate` with the linear term, the weights being 1/Var(log P̂):
  √((XᵀWX)⁻¹)₀₀ of weighted least squares."""
  sizes = np.asarray(sizes, float)
  design = np.stack([sizes**2, sizes, np.ones_like(sizes)], axis=1)
  information = design.T @ (np.asarray(weights, float)[:, None] * design)
  return float(np.sqrt(np.linalg.inv(information)[0, 0]))


def summarize_goe(table: list[dict], min_hits: int) -> dict:
  used = [r for r in table if r["hits"] >= min_hits]
  sizes = [r["N"] for r in used]
  estimates = np.asarray([r["probability"] for r in used])
  weights = np.asarray([r["samples"] for r in used]) * estimates / (1 - estimates)
  exact = np.log([r["exact_probability"] for r in used])
  enough = len(used) >= 3
  theta = random_matrix.GOE_THETA
  slope = fit_rate(sizes, np.log(estimates), weights) if enough else None
  slope_exact = fit_rate(sizes, exact) if enough else None
  return {
    "goe_slope": slope,
    "goe_slope_rel_error": None if slope is None else abs(slope / -theta - 1),
    "goe_slope_rel_error_se": fit_rate_standard_error(sizes, weights) / theta if enough else None,
    "goe_slope_exact": slope_exact,
    "goe_slope_exact_rel_error": None if slope_exact is None else abs(slope_exact / -theta - 1),
    "goe_slope_n2_only": fit_rate(sizes, np.log(estimates), weights, False) if enough else None,
    "goe_slope_theory": -random_matrix.GOE_THETA,
    "fit_sizes": sizes,
    "goe_max_abs_z": float(max(abs(r["z"]) for r in table)),
    "probability_by_N": {int(r["N"]): r["probability"] for r in table},
    "exact_probability_by_N": {int(r["N"]): r["exact_probability"] for r in table},
    "hits_by_N": {int(r["N"]): int(r["hits"]) for r in table},
  }


def digits_features(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  """Part (b)'s data, float64: the first `data.num_examples` training digits on their
  `data.input_dims` leading principal components (fitted on those examples, whitened), and the
  test digits on the same components; targets one-hot, for the squared error."""
  digits = data_lib.load_digits(config.data.test_fraction, config.data.split_seed, jnp.float64)
  count = config.data.num_examples
  x_train = np.asarray(digits.x_train[:count])
  pca = sklearn.decomposition.PCA(config.data.input_dims, whiten=True, svd_solver="full")
  pca.fit(x_train)
  return data_lib.Dataset(
    jnp.asarray(pca.transform(x_train)),
    jax.nn.one_hot(digits.y_train[:count], NUM_CLASSES, dtype=jnp.float64),
    jnp.asarray(pca.transform(np.asarray(digits.x_test))),
    jax.nn.one_hot(digits.y_test, NUM_CLASSES, dtype=jnp.float64),
  )


def build_mlp(config: ml_collections.ConfigDict, width: int, seed: int) -> models.FunctionalModel:
  """`config.model` with `width` hidden units, float64 parameters drawn from `seed`."""
  options = {k: v for k, v in config.model.to_dict().items() if k != "name"}
  module = models.build_model(
    config.model.name,
    config.data.input_dims,
    NUM_CLASSES,
    width=width,
    seed=seed,
    param_dtype=jnp.float64,
    **options,
  )
  return models.functional(module)


def critical_point_objective(
  model: models.FunctionalModel, data: data_lib.Dataset, weight_decay: float
) -> Any:
  """f(θ) = mean ½‖MLP(x) − y‖² + ½ weight_decay ‖θ‖² on the training examples, the function
  whose critical points part (b) finds (the penalty, §7.1.1, keeps them at finite θ)."""

  def objective(params: Any) -> jax.Array:
    outputs, _ = model.apply(params, model.model_state, data.x_train, True)
    penalty = sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(params))
    return losses.mean_squared_error(outputs, data.y_train) + 0.5 * weight_decay * penalty

  return objective


def descent_starts(
  config: ml_collections.ConfigDict, width: int, objective: Any
) -> tuple[Any, list[tuple[int, int, float]]]:
  """Points along full-batch gradient descent on f (`optim.sgd`, Algorithm 8.1 with every
  example, `train.descend`) from each seed's initialization, at the steps `descent.start_steps`
  (0: the initialization itself), stacked along a leading axis; with each point's (seed, step,
  f)."""
  seeds, steps = list(config.descent.seeds), list(config.descent.start_steps)
  every = math.gcd(*steps) or 1  # the descent records every this many steps
  tx = optim.sgd(config.descent.learning_rate)

  @jax.jit
  @jax.vmap
  def descend(params):
    return train.descend(
      objective,
      params,
      tx,
      steps=max(steps[-1], 1),
      every=every,
      record=lambda point, value: (point, value),
    )

  start = digits_tasks.stack([build_mlp(config, width, seed).params for seed in seeds])
  points, values = descend(start).records  # (seed, record, ...)
  at = [step // every for step in steps]
  where = [
    (seed, step, float(values[i, k]))
    for step, k in zip(steps, at, strict=True)
    for i, seed in enumerate(seeds)
  ]
  return jax.tree.map(lambda leaf: jnp.concatenate([leaf[:, k] for k in at]), points), where


def critical_points(
  config: ml_collections.ConfigDict, width: int, data: data_lib.Dataset
) -> tuple[dict, dict]:
  """Newton from every start for one width, each end point classified
  (`landscape.critical_points_from`); rows, ‖∇f‖ curves, and the distinct critical points'
  parameters (symmetric copies, `landscape.repeats_of`, count once)."""
  model = build_mlp(config, width, config.descent.seeds[0])
  objective = critical_point_objective(model, data, config.weight_decay)
  starts, where = descent_starts(config, width, objective)
  ends, norms, points = landscape.critical_points_from(
    objective, starts, config.newton.steps, config.newton.damping
  )
  repeats = landscape.repeats_of(points)
  rows, history, arrays = [], [], {}
  for i, ((seed, step, start_loss), point) in enumerate(zip(where, points, strict=True)):
    params = landscape.select(ends, i)
    member = f"width{width}-start{i:03d}"
    squared_norm = sum(float(jnp.sum(jnp.square(leaf))) for leaf in jax.tree.leaves(params))
    distinct = point.kind != "not_critical" and repeats[i] is None
    rows.append(
      {
        "member": member,
        "width": width,
        "num_params": point.n_negative + point.n_zero + point.n_positive,
        "start_seed": seed,
        "start_step": step,
        "start_loss": start_loss,
        "loss": point.loss,
        "squared_error": point.loss - 0.5 * config.weight_decay * squared_norm,
        "kind": point.kind,
        "index": point.index,
        "n_negative": point.n_negative,
        "n_zero": point.n_zero,
        "lambda_min": point.lambda_min,
        "lambda_max": point.lambda_max,
        "grad_norm": point.grad_norm,
        "hessian_grad_norm": point.hessian_grad_norm,
        "distinct": distinct,
        "repeats": "" if repeats[i] is None else f"width{width}-start{repeats[i]:03d}",
      }
    )
    history.extend(
      history_rows(member, {"step": np.arange(norms.shape[1]), "newton_grad_norm": norms[i]})
    )
    if distinct:
      arrays.update(member_arrays(member, params, model.model_state))
  return {"rows": rows, "history": history}, arrays


def _spearman(x: list[float], y: list[float]) -> float | None:
  """Spearman's rank correlation, None with fewer than 3 points or a constant variable."""
  if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
    return None
  return float(scipy.stats.spearmanr(x, y).statistic)


def _slope(x: list[float], y: list[float]) -> float:
  """The least-squares slope of y against x; exactly 0 for a constant y (np.polyfit leaves
  rounding of either sign there, which a verdict against 0 would read as a trend)."""
  if min(y) == max(y):
    return 0.0
  x_centred = np.asarray(x, float) - np.mean(x)
  return float(np.dot(x_centred, y) / np.dot(x_centred, x_centred))


def _at(width: int, among: list[dict]) -> list[dict]:
  return [r for r in among if r["width"] == width]


def _spearman_by_width(distinct: list[dict], widths: list[int]) -> dict[int, float | None]:
  """Spearman's ρ between loss and index over the distinct critical points of each width."""
  return {
    w: _spearman([r["loss"] for r in _at(w, distinct)], [r["index"] for r in _at(w, distinct)])
    for w in widths
  }


def _weighted_spearman(distinct: list[dict], widths: list[int]) -> float | None:
  """The widths' ρ averaged with weights their numbers of distinct points (None where no width
  has a ρ)."""
  by_width = _spearman_by_width(distinct, widths)
  weights = {w: len(_at(w, distinct)) for w in widths if by_width[w] is not None}
  if not weights:
    return None
  return sum(weights[w] * by_width[w] for w in weights) / sum(weights.values())


def _distinct_among(rows: list[dict]) -> list[dict]:
  """The critical points among `rows`, each copy under the network's symmetries once: the first
  row of each point (a row's point is the one it repeats, or itself). On every row this is the
  rows marked distinct; without some seed's rows, a copy that seed held first counts instead."""
  first: dict[str, dict] = {}
  for row in rows:
    if row["kind"] != "not_critical":
      first.setdefault(row["repeats"] or row["member"], row)
  return list(first.values())


def leave_one_seed_out(rows: list[dict], widths: list[int]) -> dict[int, float | None]:
  """{seed: the width-weighted ρ of the critical points reached from every other seed's starts}:
  the jackknife's values."""
  seeds = sorted({int(r["start_seed"]) for r in rows})
  return {
    s: _weighted_spearman(_distinct_among([r for r in rows if int(r["start_seed"]) != s]), widths)
    for s in seeds
  }


def summarize_critical_points(rows: list[dict], widths: list[int]) -> dict:
  distinct = [r for r in rows if r["distinct"]]
  stuck = [r for r in rows if r["kind"] == "not_critical"]

  def minima_fraction(points: list[dict]) -> float | None:
    return sum(r["kind"] == "minimum" for r in points) / len(points) if points else None

  fractions = {w: minima_fraction(_at(w, distinct)) for w in widths}
  found = {w: f for w, f in fractions.items() if f is not None}
  left_out = leave_one_seed_out(rows, widths)
  error = verdicts.jackknife_standard_error(list(left_out.values()))
  return {
    "spearman_index_loss": _weighted_spearman(distinct, widths),
    "spearman_index_loss_se": error,
    "spearman_index_loss_dof": None if error is None else len(left_out) - 1,
    "spearman_index_loss_leave_one_seed_out": left_out,
    "spearman_index_loss_by_width": _spearman_by_width(distinct, widths),
    "spearman_index_loss_pooled": _spearman(
      [r["loss"] for r in distinct], [r["index"] for r in distinct]
    ),
    "minima_fraction_by_width": fractions,
    "minima_fraction_slope_vs_width": _slope(list(found), list(found.values()))
    if len(found) >= 2
    else None,
    "distinct_critical_points_by_width": {w: len(_at(w, distinct)) for w in widths},
    "kinds_by_width": {
      w: {kind: sum(r["kind"] == kind for r in _at(w, distinct)) for kind in CRITICAL_KINDS}
      for w in widths
    },
    "converged_fraction_by_width": {w: 1 - len(_at(w, stuck)) / len(_at(w, rows)) for w in widths},
    "num_params_by_width": {w: _at(w, rows)[0]["num_params"] for w in widths},
    "max_grad_norm_at_critical_points": max((r["grad_norm"] for r in distinct), default=None),
    "median_grad_norm_not_converged": float(np.median([r["grad_norm"] for r in stuck]))
    if stuck
    else None,
    # ‖Hg‖ / (‖g‖ max|λ|): ≈ 0 where g lies in the near-kernel of H (gradient-flat, Frye et al.
    # 2021), 1 where g is a top eigenvector
    "median_flatness_not_converged": float(
      np.median(
        [
          r["hessian_grad_norm"]
          / (r["grad_norm"] * max(abs(r["lambda_min"]), abs(r["lambda_max"])))
          for r in stuck
        ]
      )
    )
    if stuck
    else None,
  }


def index_against_loss(points: list[dict], out_dir: Path) -> Path:
  """Distinct critical points: index against loss, one colour per width (Dauphin et al. 2014,
  Fig. 1), minima filled and other kinds hollow; beside it, the fraction of minima by width."""
  distinct = [r for r in points if r["distinct"]]
  widths = sorted({int(r["width"]) for r in points})
  colors = dict(zip(widths, plt.cm.viridis(np.linspace(0, 0.9, len(widths))), strict=True))
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
  for width in widths:
    for is_minimum in (True, False):
      chosen = [
        r for r in distinct if int(r["width"]) == width and (r["kind"] == "minimum") == is_minimum
      ]
      left.scatter(
        [r["loss"] for r in chosen],
        [r["index"] for r in chosen],
        s=22,
        facecolors=colors[width] if is_minimum else "none",
        edgecolors=colors[width],
        label=f"width {width}" if is_minimum else None,
      )
  left.set(title="critical points (filled: minima)", xlabel="loss f(θ)", ylabel="index")
  left.grid(alpha=0.3)
  left.legend(fontsize=7)
  fractions = [
    np.mean([r["kind"] == "minimum" for r in distinct if int(r["width"]) == w] or [np.nan])
    for w in widths
  ]
  right.plot(widths, fractions, marker="o")
  right.set(title="fraction of distinct critical points that are minima", xlabel="width")
  right.grid(alpha=0.3)
  fig.tight_layout()
  return report.save_figure(fig, out_dir / "critical_points_index_vs_loss.png")


def newton_convergence(out_dir: Path) -> Path:
  """‖∇f‖ along every Newton run, one colour per width."""
  curves = read_curves(out_dir / "history.csv", "newton_grad_norm")
  widths = sorted({int(m.split("-")[0].removeprefix("width")) for m in curves})
  colors = dict(zip(widths, plt.cm.viridis(np.linspace(0, 0.9, len(widths))), strict=True))
  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
  for member, (steps, values) in curves.items():
    width = int(member.split("-")[0].removeprefix("width"))
    ax.plot(steps, np.maximum(values, 1e-300), color=colors[width], lw=0.6, alpha=0.6)
  for width in widths:
    ax.plot([], [], color=colors[width], label=f"width {width}")
  ax.set(title="Newton for ∇f = 0 from every start", xlabel="Newton step", ylabel="‖∇f‖")
  ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  return report.save_figure(fig, out_dir / "critical_points_newton_grad_norm.png")
