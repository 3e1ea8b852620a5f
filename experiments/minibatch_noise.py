"""§8.1.3 and §8.2.6: the standard error of the minibatch gradient, and its bias under reuse.

Part 1, the noise. At the initial parameters θ of a digits MLP the per-example gradients gᵢ of
the training NLL are taken with `vmap(grad)`; their mean is the full-batch gradient ḡ and their
covariance Σ = (1/N) Σᵢ (gᵢ − ḡ)(gᵢ − ḡ)ᵀ. For each batch size n, `num_draws` minibatches are drawn
as `data.batch_indices` draws them (through `train.masked_batch_indices`, so that every batch size
runs in one compiled program), both

* with replacement (``"replacement"``): ĝ is the mean of n i.i.d. draws, so exactly
  E‖ĝ − ḡ‖² = tr Σ / n and the standard error is σ/√n with σ² = tr Σ (eq. 8.8 of the book);
* without replacement (``"epoch"``, the first slice of a fresh permutation): the finite-population
  correction applies, E‖ĝ − ḡ‖² = (tr Σ / n) (N − n) / (N − 1).

The measured standard error is √(mean over draws of ‖ĝ − ḡ‖²); `se_slope` is its log-log slope
against n with replacement (theory −1/2, distance from it `se_slope_error`),
`se_slope_without_replacement` the same without (steeper near n = N), and
`se_ratio_max_deviation` the largest |measured / theory − 1|.

Part 2, the bias under reuse (§8.1.3: "the first pass ... unbiased estimate of the gradient of the
generalization error ... the second pass ... biased"). `num_seeds` runs of SGD (Algorithm 8.1) train
for two epochs with batches that shuffle once per epoch, each from its own initialization (seed
`seed` + r for run r, all in one vmapped program) on its own random train/held-out split of the
digits, so that the held-out noise and the initial point average out across runs (the error bars
are over initializations, splits and minibatch orders, not conditional on one θ₀). The split is
not stratified by class: with a stratified split the unseen training examples of epoch one are not
exchangeable with the held-out ones, which showed as a small positive first-epoch bias. Before every
step t the held-out set is cut in two halves A and B; with u = ∇L_A(θ_t)/‖∇L_A(θ_t)‖ a direction of
descent estimated independently of both, the step's bias along u is ⟨ĝ_t − ∇L_B(θ_t), u⟩ and the
held-out slope is ⟨∇L_B(θ_t), u⟩. In the first epoch the minibatch holds examples that θ_t has never
seen, so the bias has mean zero; in the second every example has already been used and the minibatch
gradient underestimates the slope of the generalization error. `reuse_bias_epoch1` and
`reuse_bias_epoch2` are each run's mean bias over an epoch divided by the mean slope of that epoch
pooled over every run (a per-run slope would share ∇L_B's noise with the bias), averaged over
runs: the ratio b̄ / s̄ of the means over runs of the bias b_r and the slope s_r. The pooled
slope s̄ is itself a mean over the same runs, so the standard error (`_se`) is the ratio
estimator's, by the delta method: sd_r(b_r − R s_r) / (√runs |s̄|) with R = b̄ / s̄, which counts
the slope's spread and its covariance with the bias (both read ∇L_B) besides the bias's own.
Their degrees of freedom (`_dof`, runs − 1) set the verdicts' margins: each claim is decided only
beyond t_{0.975, dof} standard errors of its threshold (and `reuse_bias_epoch1_abs`, the size of
the first, is judged with the first's error). Each run's values are kept in `params.npz`:
`reuse_bias` (runs × epochs, b_r / s̄) and `heldout_slope` (s_r / s̄, whose mean over runs is 1).
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxopt_study import data as data_lib
from jaxopt_study import losses, models, optim, report, train, validate
from jaxopt_study.experiment import Experiment, Members, Results, below
from jaxopt_study.lab import curves, digits_tasks, verdicts
from jaxopt_study.results import read_csv


class MinibatchNoise(Experiment):
  """The standard error of the minibatch gradient per batch size, and its bias under reuse."""

  NAME = "minibatch_noise"
  TITLE = "Chapter 8.1.3 / 8.2.6: minibatch gradient noise σ/√n and the bias of reused examples"
  SECTION = "8.1.3"
  DESCRIPTION = (
    "Standard error of the minibatch gradient of a digits MLP at initialization against the "
    "batch size n, sampled with replacement (exactly σ/√n, eq. 8.8) and without replacement "
    "(σ/√n times the finite-population correction √((N−n)/(N−1))), from per-example gradients; "
    "and the bias of the minibatch gradient along an independently estimated held-out descent "
    "direction, in the first epoch of SGD (fresh examples: unbiased) and in the second (reused "
    "examples: the minibatch gradient underestimates the slope of the held-out loss)."
  )
  PUBLISHED = {
    "se_slope": "−0.5: standard error σ/√n (Goodfellow et al. 2016, eq. 8.8)",
    "se_slope_without_replacement": "steeper than −0.5 near n = N (finite-population correction)",
    "reuse_bias_epoch1": "0: the first pass gives an unbiased gradient of the generalization "
    "error (§8.1.3)",
    "reuse_bias_epoch2": "< 0 (biased) once examples are reused in the second pass (§8.1.3)",
  }
  # "−0.5" within 0.05; "unbiased" as a bias under 10% of the held-out slope, standard errors
  # over runs deciding (beyond t_{0.975, runs − 1} of them).
  CRITERIA = {
    "se_slope": below("se_slope_error", 0.05),
    "se_slope_without_replacement": below("se_slope_without_replacement", -0.5),
    "reuse_bias_epoch1": below("reuse_bias_epoch1_abs", 0.1, standard_error="reuse_bias_epoch1_se"),
    "reuse_bias_epoch2": below("reuse_bias_epoch2", 0.0, standard_error="reuse_bias_epoch2_se"),
  }
  FIELDS = {
    "data.name": digits_tasks.DIGITS,
    "batch_sizes": functools.partial(
      validate.require_sequence, each=validate.require_positive_int, min_length=2
    ),
    **dict.fromkeys(
      ("num_draws", "num_seeds", "reuse_batch_size"), functools.partial(validate.require_int, low=2)
    ),
    "learning_rate": validate.require_positive,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    """Both the training set and the two held-out halves must hold enough examples."""
    test_fraction = config.data.test_fraction
    if not 0.2 <= test_fraction <= 0.8:
      raise ValueError(
        f"{self.NAME}: data.test_fraction={test_fraction!r} must be in [0.2, 0.8] so that both "
        "the training set and the two held-out halves hold enough examples"
      )
    num_train = round(1797 * (1 - test_fraction))
    for i, n in enumerate(config.batch_sizes):
      validate.require_int(f"batch_sizes[{i}]", n, self.NAME, low=1, high=num_train - 1)
    if config.reuse_batch_size > num_train // 4:
      raise ValueError(
        f"{self.NAME}: reuse_batch_size={config.reuse_batch_size} must be <= {num_train // 4} so "
        "that an epoch has at least four steps"
      )
    digits_tasks.mlp(config.seed, **config.model)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Measures the standard error per batch size and the bias per epoch; three short compiled
    programs, nothing worth resuming."""
    data = digits_tasks.load(config.data)
    model = digits_tasks.mlp(config.seed, **config.model)
    table = standard_errors(config, model, data)
    bias_rows, per_seed, slopes = reuse_bias(config, data)
    return Results(table, bias_rows, {"reuse_bias": per_seed, "heldout_slope": slopes})

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    """The log-log slopes of the standard errors, their largest deviation from theory, and the
    relative bias of each epoch (mean over runs, with its delta-method standard error)."""
    table, per_seed = results.table, results.arrays["reuse_bias"]
    sizes = np.asarray([r["batch_size"] for r in table], float)
    ratios = [r[f"ratio_{kind}"] for r in table for kind in ("replacement", "without_replacement")]
    epoch_means, epoch_ses = ratio_of_means_and_error(per_seed, results.arrays["heldout_slope"])
    se_slope = curves.log_slope(sizes, [r["se_replacement"] for r in table])
    return {
      "se_slope": se_slope,
      "se_slope_error": abs(se_slope + 0.5),
      "se_slope_without_replacement": curves.log_slope(
        sizes, [r["se_without_replacement"] for r in table]
      ),
      "se_ratio_max_deviation": float(np.max(np.abs(np.asarray(ratios) - 1.0))),
      "gradient_noise_sigma": table[0]["sigma"],
      "num_train": table[0]["num_train"],
      "reuse_bias_epoch1": float(epoch_means[0]),
      "reuse_bias_epoch1_se": float(epoch_ses[0]),
      "reuse_bias_epoch1_dof": verdicts.dof(per_seed[:, 0]),
      "reuse_bias_epoch1_abs": abs(float(epoch_means[0])),
      "reuse_bias_epoch2": float(epoch_means[1]),
      "reuse_bias_epoch2_se": float(epoch_ses[1]),
      "reuse_bias_epoch2_dof": verdicts.dof(per_seed[:, 1]),
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Standard error vs batch size (measured and theory) and the per-step bias, from the CSVs."""
    table = read_csv(out_dir / "results.csv")
    sizes = [r["batch_size"] for r in table]
    noise = report.line_plot(
      {
        f"{label}, {kind}": (sizes, [r[f"{prefix}_{kind}"] for r in table])
        for prefix, label in (("se", "measured"), ("se_theory", "σ/√n theory"))
        for kind in ("replacement", "without_replacement")
      },
      out_dir / "standard_error.png",
      title="standard error of the minibatch gradient",
      xlabel="batch size n",
      ylabel="√E‖ĝ − ḡ‖²",
      logx=True,
      logy=True,
    )
    bias = report.line_plot(
      curves.read_curves(out_dir / "history.csv", "bias_along_heldout_descent"),
      out_dir / "reuse_bias.png",
      title="bias of the minibatch gradient along the held-out descent direction",
      xlabel="SGD step",
      ylabel="⟨ĝ − ∇L_held-out, u⟩ (mean over runs)",
    )
    return [noise, bias]


def per_example_loss(model: models.FunctionalModel):
  """(params, x (n, 64), y (n,)) -> mean NLL, the training objective of §8.1.2."""

  def loss(params, x, y):
    return losses.softmax_cross_entropy(model.apply(params, model.model_state, x, True)[0], y)

  return loss


def standard_errors(config, model: models.FunctionalModel, data: data_lib.Dataset) -> list[dict]:
  """One row per batch size: measured and theoretical standard errors of the minibatch gradient."""
  loss = per_example_loss(model)
  num_train = data.x_train.shape[0]

  @jax.jit
  def per_example_gradients(params, x, y):
    def one(x, y):
      return ravel_pytree(jax.grad(loss)(params, x[None], y[None]))[0]

    return jax.vmap(one)(x, y)

  gradients = per_example_gradients(
    model.params, data.x_train, data.y_train
  )  # (N, P), row i = ∇ℓᵢ(θ)
  mean_gradient = gradients.mean(axis=0)
  trace_sigma = float(jnp.mean(jnp.sum((gradients - mean_gradient[None, :]) ** 2, axis=1)))
  key = jax.random.key(config.seed)
  sizes = jnp.asarray(config.batch_sizes, jnp.int32)
  max_size = max(config.batch_sizes)

  @functools.partial(jax.jit, static_argnums=0)
  def squared_errors(sampling: str, gradients: jax.Array, mean_gradient: jax.Array) -> jax.Array:
    """‖ĝ − ḡ‖² of `num_draws` minibatches for every batch size (batch_sizes, num_draws)."""

    def one(batch_size, draw):
      # "epoch": the first slice of epoch `draw`'s permutation, a fresh draw without replacement.
      step = draw * (num_train // batch_size) if sampling == "epoch" else draw
      indices, weights = train.masked_batch_indices(
        key, step, num_train, batch_size, max_size, sampling
      )
      counts = jnp.zeros([num_train]).at[indices].add(weights)  # repeats under replacement
      batch_gradient = counts @ gradients / batch_size.astype(counts.dtype)  # ĝ: the mean
      return jnp.sum((batch_gradient - mean_gradient) ** 2)

    draws = jnp.arange(config.num_draws)
    return jax.vmap(lambda b: jax.lax.map(lambda r: one(b, r), draws, batch_size=64))(sizes)

  measured = {
    sampling: np.asarray(squared_errors(sampling, gradients, mean_gradient))
    for sampling in train.SAMPLINGS
  }
  rows = []
  for i, n in enumerate(config.batch_sizes):
    theory = np.sqrt(trace_sigma / n)
    correction = np.sqrt((num_train - n) / (num_train - 1))
    se_with = float(np.sqrt(measured["replacement"][i].mean()))
    se_without = float(np.sqrt(measured["epoch"][i].mean()))
    rows.append(
      {
        "batch_size": n,
        "num_train": num_train,
        "sigma": float(np.sqrt(trace_sigma)),
        "se_replacement": se_with,
        "se_theory_replacement": float(theory),
        "ratio_replacement": se_with / theory,
        "se_without_replacement": se_without,
        "se_theory_without_replacement": float(theory * correction),
        "ratio_without_replacement": se_without / (theory * correction),
      }
    )
  return rows


def ratio_of_means_and_error(bias: np.ndarray, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per epoch (column), R = b̄ / s̄ and its delta-method standard error sd(b − R s) / (√n |s̄|),
  from each run's (row's) bias b and held-out slope s, both divided by s̄ (so s̄ = 1 here): the
  error of a ratio whose denominator is a mean over the same runs (the ratio estimator's
  variance, Cochran 1977, ch. 6)."""
  bias, slope = np.asarray(bias, float), np.asarray(slope, float)
  ratio = bias.mean(axis=0) / slope.mean(axis=0)
  residuals = bias - ratio * slope
  error = residuals.std(axis=0, ddof=1) / np.sqrt(bias.shape[0]) / np.abs(slope.mean(axis=0))
  return ratio, error


def reuse_bias(config, data: data_lib.Dataset) -> tuple[list[dict], np.ndarray, np.ndarray]:
  """Two epochs of SGD per run, each from its own initialization (seed + r): the bias of each
  step, and each run's epoch means of the bias and of the held-out slope, both divided by the
  slope's mean over runs (runs × epochs)."""
  num_train, num_test = data.x_train.shape[0], data.x_test.shape[0]
  x = jnp.concatenate([data.x_train, data.x_test])
  y = jnp.concatenate([data.y_train, data.y_test])

  def random_split(key: jax.Array) -> data_lib.Dataset:
    # A plain random split per run (not stratified by class, unlike `load_digits`), so that the
    # examples a run has not yet seen and its held-out ones are exchangeable given θ_t.
    order = jax.random.permutation(key, x.shape[0])
    train_idx, test_idx = order[:num_train], order[num_train:]
    return data_lib.Dataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx])

  half = num_test // 2
  batch_size = config.reuse_batch_size
  steps_per_epoch = num_train // batch_size
  # one initialization per run; the first seed's model applies every run's parameters
  model, inits = digits_tasks.mlps(
    [config.seed + r for r in range(config.num_seeds)], **config.model
  )
  loss = per_example_loss(model)
  grad_fn = jax.grad(loss)
  loop = train.make_train_loop(model, optim.sgd(config.learning_rate), batch_size=batch_size)

  def one_run(data: data_lib.Dataset, key: jax.Array, params):
    def step(state: train.TrainState, t):
      idx = data_lib.batch_indices(key, t, num_train, batch_size, "epoch")
      x, y = data.x_train[idx], data.y_train[idx]
      g_batch = ravel_pytree(grad_fn(state.params, x, y))[0]
      g_a = ravel_pytree(grad_fn(state.params, data.x_test[:half], data.y_test[:half]))[0]
      g_b = ravel_pytree(grad_fn(state.params, data.x_test[half:], data.y_test[half:]))[0]
      direction = g_a / jnp.linalg.norm(g_a)
      measured = (jnp.dot(g_batch - g_b, direction), jnp.dot(g_b, direction))
      return loop.update(state, (x, y), None), measured

    state = loop.init(params, model.model_state)
    _, (bias, slope) = jax.lax.scan(step, state, jnp.arange(2 * steps_per_epoch))
    return bias, slope

  keys = jax.random.split(jax.random.key(config.seed), 2 * config.num_seeds)
  split_keys, order_keys = keys[: config.num_seeds], keys[config.num_seeds :]
  splits = jax.vmap(random_split)(split_keys)
  bias, slope = jax.jit(jax.vmap(one_run))(splits, order_keys, inits)
  bias = np.asarray(bias).reshape(config.num_seeds, 2, steps_per_epoch)
  slope = np.asarray(slope).reshape(config.num_seeds, 2, steps_per_epoch)
  # Each run's mean bias over an epoch, divided by the slope pooled over every run of that epoch:
  # a per-run denominator would share the noise of ∇L_B with the numerator (a ratio bias).
  pooled = slope.mean(axis=(0, 2))
  per_seed = bias.mean(axis=2) / pooled  # (seeds, epoch)
  rows = [
    {"member": f"epoch{epoch + 1}", "step": epoch * steps_per_epoch + i, "metric": name, "value": v}
    for epoch in range(2)
    for i in range(steps_per_epoch)
    for name, v in (
      ("bias_along_heldout_descent", float(bias[:, epoch, i].mean())),
      ("heldout_slope", float(slope[:, epoch, i].mean())),
    )
  ]
  return rows, per_seed, slope.mean(axis=2) / pooled
