"""§8.2.1 "Ill-conditioning", Fig. 8.1: the minibatch gradient norm grows while the error falls.

A gradient step −εg changes the loss, to second order, by −ε gᵀg + ½ ε² gᵀHg (eq. 4.9, recalled
in §8.2.1). Goodfellow et al. (2016) note that in many cases "the gradient norm does not shrink
significantly throughout learning, but the gᵀHg term grows by more than an order of magnitude",
and Fig. 8.1 shows it for a convolutional network on a detection task: on the left a scatter of
the norms of individual gradient evaluations (minibatch gradients) over training with their
running average, rising throughout; on the right the validation classification error, falling to
a low level. Gradient descent there does not approach a critical point of any kind.

Protocol. A digits MLP (the config's `model`, Glorot initialization at `init_scale` 1) on a task
it cannot fit: a fixed fraction `data.label_noise` of the training labels, chosen at random
(seeded by `data.noise_seed`), is replaced by a different class drawn uniformly
(`noisy_labels`; the held-out labels stay clean), and the objective carries the L2 penalty
(`l2_penalty`/2)‖θ‖² (§7.1.1), so neither the minibatch nor the full-batch gradient can be driven
to zero by memorizing. SGD (Algorithm 8.1) at a constant rate, `epochs` passes of `batch_size`,
one run per seed (seeds `seed`, ..., `seed + num_seeds − 1`: the initialization and the minibatch
order), all seeds as one vmapped `train.make_train_fn` program on the `Problem` API with

* `log_minibatches`: the loss and the gradient norm of every step's minibatch at θ_t, the
  quantity of Fig. 8.1 (left);
* the in-loop curvature monitor (`hessian.tracking`) once per epoch: gᵀg and gᵀHg of the
  full-batch training objective, with λ_max and the Hessian trace;
* the full-batch evaluation once per epoch (held-out 0-1 error, Fig. 8.1 right).

Claims (`summary.json`), each the mean over seeds with its standard error (`_se`: the sample
standard deviation over √seeds) and its degrees of freedom (`_dof`: seeds − 1), judged beyond
t_{0.975, dof} standard errors of the seeds' values from its threshold, the windows being the
first and the last 10% of the T steps:

* `minibatch_grad_norm_growth`: the mean minibatch gradient norm of the last 10% of steps over
  that of the first 10% (> 1: it grows, Fig. 8.1 left);
* `gHg_growth`: the mean gᵀHg measured at θ_t in the last 10% of training over that in the first
  10% (> 10: "more than an order of magnitude", §8.2.1);
* `error_drop`: the held-out error at θ₀ minus its mean over the evaluations of the last 10%
  (> 0.5: from chance, 0.9, to a low level, Fig. 8.1 right);

with `gTg_growth` and `full_batch_grad_norm_growth` (the same ratio for gᵀg and for the full-batch
‖g‖, the quantities of the text), `final_test_error`, `final_train_error` (against the noisy
labels: the share the network fits) and every value by seed.
"""

import functools
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np

from jaxopt_study import data as data_lib
from jaxopt_study import hessian, optim, report, train, validate
from jaxopt_study import problem as problem_lib
from jaxopt_study.experiment import Experiment, Members, Results, above
from jaxopt_study.lab import digits_tasks, verdicts
from jaxopt_study.lab.curves import history_curves
from jaxopt_study.results import history_rows, member_arrays, read_csv

WINDOW = 0.1  # the growth ratios compare the last 10% of the steps with the first 10%
MINIBATCH_METRICS = {"loss": "minibatch_loss", "grad_norm": "minibatch_grad_norm"}


class Fig81GradientNorm(Experiment):
  """SGD on a digits MLP with noisy labels and an L2 penalty: the minibatch gradient norm of
  every step, gᵀg and gᵀHg every epoch, and the held-out error, over seeds."""

  NAME = "fig8_1_gradient_norm"
  TITLE = "Chapter 8.2.1, Fig. 8.1: the minibatch gradient norm grows while the error falls?"
  SECTION = "8.2.1"
  DESCRIPTION = (
    "Fig. 8.1 of Goodfellow et al. (2016) scatters the norm of every minibatch gradient over "
    "the training of a convolutional network on a detection task, with its running mean: the "
    "norm grows throughout while the validation error falls, and §8.2.1 adds that gᵀHg grows by "
    "more than an order of magnitude. Here a tanh MLP on scikit-learn's digits starts from its "
    "ordinary (Glorot) initialization, init_scale 1, on a task it cannot drive to zero gradient: "
    "a fixed, seeded fraction of the training labels (`data.label_noise`) is replaced by another "
    "class at random (held-out labels clean), and the objective carries an L2 penalty "
    "(`l2_penalty`). SGD at a constant rate logs the loss and gradient norm of every step's "
    "minibatch, and once per epoch the full-batch gᵀg and gᵀHg (the in-loop curvature monitor) "
    "and the held-out 0-1 error, for several seeds at once. The claims compare the last 10% of "
    "the steps with the first 10%, as means over seeds with standard errors; the figure draws "
    "each step's minibatch norm as a light point with a running mean (left) beside the held-out "
    "error (right), as the book's figure does."
  )
  PUBLISHED = {
    "minibatch_grad_norm_growth": "> 1: the norms of individual minibatch gradients and their "
    "running mean increase over training (Goodfellow et al. 2016, Fig. 8.1, left)",
    "gHg_growth": "> 10: 'the gᵀHg term grows by more than an order of magnitude' "
    "(Goodfellow et al. 2016, §8.2.1)",
    "error_drop": "> 0.5: 'the validation set classification error decreases to a low level' "
    "(Fig. 8.1, right; here from chance, 0.9)",
  }
  CRITERIA = {
    "minibatch_grad_norm_growth": above(
      "minibatch_grad_norm_growth", 1.0, standard_error="minibatch_grad_norm_growth_se"
    ),
    "gHg_growth": above("gHg_growth", 10.0, standard_error="gHg_growth_se"),
    "error_drop": above("error_drop", 0.5, standard_error="error_drop_se"),
  }
  FIELDS = {
    "seed": functools.partial(validate.require_int, low=0, high=train.MAX_SEED),
    "num_seeds": validate.require_positive_int,
    "epochs": validate.require_positive_int,
    "batch_size": validate.require_positive_int,
    "sampling": functools.partial(validate.require_choice, choices=train.SAMPLINGS),
    "learning_rate": validate.require_positive,
    "l2_penalty": validate.require_non_negative,
    "data.name": digits_tasks.DIGITS,
    "data.label_noise": validate.require_unit_interval,
    "data.noise_seed": functools.partial(validate.require_int, low=0),
    "model.init_scale": validate.require_non_negative,
    "optimizer.name": functools.partial(validate.require_choice, choices=sorted(optim.OPTIMIZERS)),
    "curvature.lanczos_steps": validate.require_positive_int,
    "curvature.probes": validate.require_positive_int,
  }

  def check_more(self, config: ml_collections.ConfigDict) -> None:
    validate.require_int(
      "seed + num_seeds - 1", config.seed + config.num_seeds - 1, self.NAME, high=train.MAX_SEED
    )
    problem = make_problem(config)
    every = steps_per_epoch(config, problem.num_train)
    steps = config.epochs * every
    train.check_arguments(
      problem.num_train, steps, config.batch_size, every, config.sampling, None, config.l2_penalty
    )
    train.check_curvature(every, curvature_options(config), every, problem.num_train, self.NAME)
    make_optimizer(config)

  def run(self, config: ml_collections.ConfigDict, members: Members, progress: bool) -> Results:
    """Trains every seed at once; each seed's row, its per-step and per-epoch history and its
    final parameters."""
    record, arrays = members.get("seeds", functools.partial(train_seeds, config))
    return Results(record["rows"], record["history"], arrays)

  def summarize(self, config: ml_collections.ConfigDict, results: Results) -> dict:
    steps = int(results.table[0]["steps"])
    by_seed = {
      member: seed_claims(results.history, member, steps)
      for member in (row["member"] for row in results.table)
    }
    claims = {}
    for name in (
      "minibatch_grad_norm_growth",
      "gHg_growth",
      "error_drop",
      "gTg_growth",
      "full_batch_grad_norm_growth",
      "final_test_error",
      "final_train_error",
    ):
      values = [seed[name] for seed in by_seed.values()]
      claims[name], claims[f"{name}_se"] = verdicts.mean_and_standard_error(values)
      claims[f"{name}_dof"] = verdicts.dof(values)
    return {
      **claims,
      "num_seeds": len(by_seed),
      "steps": steps,
      "window_steps": window(steps),
      "by_seed": by_seed,
    }

  def plot(self, out_dir: Path) -> list[Path]:
    """Fig. 8.1 (minibatch norms with a running mean; the held-out error) and gᵀg, gᵀHg."""
    rows = read_csv(out_dir / "history.csv")
    every = int(read_csv(out_dir / "results.csv")[0]["steps_per_epoch"])
    return [figure_8_1(rows, every, out_dir), curvature_figure(rows, every, out_dir)]


def noisy_labels(labels: np.ndarray, fraction: float, seed: int, num_classes: int) -> np.ndarray:
  """`labels` with round(fraction · n) of them, chosen at random without replacement, each
  replaced by a different class drawn uniformly, so exactly that many are wrong (seeded)."""
  rng = np.random.default_rng(seed)
  noisy = np.array(labels)
  chosen = rng.choice(noisy.size, round(fraction * noisy.size), replace=False)
  noisy[chosen] = (noisy[chosen] + rng.integers(1, num_classes, chosen.size)) % num_classes
  return noisy


def make_problem(config: ml_collections.ConfigDict) -> problem_lib.Problem:
  """The config's model (`problem.builtin`) on the digits with `noisy_labels` for training and
  the clean held-out labels; its init scale is applied when the seeds are drawn.

  Raises:
    ValueError: a model option the model does not take, naming `model`.
  """
  digits = digits_tasks.load(config.data)
  noisy = noisy_labels(
    np.asarray(digits.y_train),
    config.data.label_noise,
    config.data.noise_seed,
    digits_tasks.NUM_CLASSES,
  )
  data = data_lib.Dataset(digits.x_train, jnp.asarray(noisy), digits.x_test, digits.y_test)
  options = {k: v for k, v in config.model.to_dict().items() if k not in ("name", "init_scale")}
  try:
    return problem_lib.builtin(config.model.name, data, **options)
  except (TypeError, ValueError) as error:
    raise ValueError(f"fig8_1_gradient_norm: model: {error}") from error


def steps_per_epoch(config: ml_collections.ConfigDict, num_train: int) -> int:
  """Minibatch steps per pass over the training set (at least one)."""
  return max(1, num_train // config.batch_size)


def curvature_options(config: ml_collections.ConfigDict) -> hessian.CurvatureOptions:
  """The monitor's options, on the whole training set."""
  return hessian.CurvatureOptions(
    lanczos_steps=config.curvature.lanczos_steps, probes=config.curvature.probes, seed=config.seed
  )


def make_optimizer(config: ml_collections.ConfigDict):
  """`optim.OPTIMIZERS[config.optimizer.name]` at the config's learning rate and hyperparameters.

  Raises:
    ValueError: a hyperparameter the optimizer refuses or does not take, naming `optimizer`.
  """
  hyper = config.optimizer.to_dict()
  name = hyper.pop("name")
  try:
    return optim.OPTIMIZERS[name](learning_rate=config.learning_rate, **hyper)
  except (TypeError, ValueError) as error:
    raise ValueError(f"fig8_1_gradient_norm: optimizer: {error}") from error


def seed_list(config: ml_collections.ConfigDict) -> list[int]:
  return list(range(config.seed, config.seed + config.num_seeds))


def train_seeds(config: ml_collections.ConfigDict) -> tuple[dict, dict]:
  """Every seed's run as one compiled program: `train.make_train_fn` (what `train.train` jits)
  vmapped over the seeds' initial parameters and keys, each member the same run as
  `train.train(problem, ..., seed=s, log_minibatches=True, curvature_every=...)` alone."""
  problem = make_problem(config)
  pure = problem_lib.pure(problem)
  every = steps_per_epoch(config, problem.num_train)
  steps = config.epochs * every
  train_fn = train.make_train_fn(
    problem,
    make_optimizer(config),
    steps=steps,
    batch_size=config.batch_size,
    eval_every=every,
    sampling=config.sampling,
    l2_penalty=config.l2_penalty,
    curvature_every=every,
    curvature=curvature_options(config),
    log_minibatches=True,
  )
  seeds = seed_list(config)
  initial = [pure.initial(seed, config.model.init_scale) for seed in seeds]
  params, model_state = (digits_tasks.stack([draw[i] for draw in initial]) for i in (0, 1))
  keys = jnp.stack([jax.random.key(seed) for seed in seeds])
  run_all = jax.jit(jax.vmap(train_fn, in_axes=(0, 0, None, 0)))
  state, history = run_all(params, model_state, problem_lib.as_data(problem), keys)
  eval_steps = train.eval_steps(steps, every)
  rows, history_out, arrays = [], [], {}
  for i, seed in enumerate(seeds):
    member = f"seed{seed}"
    epochs = {name: np.asarray(values[i]) for name, values in history.items()}
    minibatches = {
      out: np.asarray(state.minibatches[name][i]) for name, out in MINIBATCH_METRICS.items()
    }
    history_out += history_rows(member, {"step": eval_steps, **epochs})
    history_out += history_rows(member, {"step": np.arange(steps), **minibatches})
    rows.append(
      {
        "member": member,
        "seed": seed,
        "steps": steps,
        "steps_per_epoch": every,
        "label_noise": config.data.label_noise,
        "l2_penalty": config.l2_penalty,
        "init_scale": config.model.init_scale,
        **{f"final_{name}": float(values[-1]) for name, values in epochs.items()},
      }
    )
    member_state = jax.tree.map(lambda x, i=i: np.asarray(x[i]), (state.params, state.model_state))
    arrays |= member_arrays(member, *member_state)
  return {"rows": rows, "history": history_out}, arrays


def window(steps: int) -> int:
  """The number of steps in each 10% window (at least one)."""
  return max(1, round(WINDOW * steps))


def growth(steps: Sequence[float], values: Sequence[float], total_steps: int) -> float:
  """mean(values at the last 10% of the steps) / mean(values at the first 10%): the window of
  the first is steps < w, that of the last the steps > (the last step) − w, w = `window`."""
  steps, values = np.asarray(steps, float), np.asarray(values, float)
  w = window(total_steps)
  return float(values[steps > steps.max() - w].mean() / values[steps < w].mean())


def seed_claims(history: list[dict], member: str, total_steps: int) -> dict[str, float]:
  """One seed's claims, from its history rows."""

  def curve(metric: str) -> tuple[list, list]:
    return history_curves(history, metric)[member]

  eval_steps, errors = map(np.asarray, curve("test_error"))
  last = eval_steps > eval_steps.max() - window(total_steps)
  return {
    "minibatch_grad_norm_growth": growth(*curve("minibatch_grad_norm"), total_steps),
    "gHg_growth": growth(*curve("g_hess_g"), total_steps),
    "gTg_growth": growth(*curve("g_dot_g"), total_steps),
    "full_batch_grad_norm_growth": growth(*curve("grad_norm"), total_steps),
    "error_drop": float(errors[0] - errors[last].mean()),
    "final_test_error": float(errors[-1]),
    "final_train_error": float(curve("train_error")[1][-1]),
  }


def running_mean(values: np.ndarray, length: int) -> np.ndarray:
  """The trailing mean over the last `length` values (fewer at the start)."""
  sums = np.cumsum(np.insert(values, 0, 0.0))
  ends = np.arange(1, values.size + 1)
  starts = np.maximum(0, ends - length)
  return (sums[ends] - sums[starts]) / (ends - starts)


def figure_8_1(rows: list[dict], every: int, out_dir: Path) -> Path:
  """As Fig. 8.1: left, every step's minibatch gradient norm (light points) and its running mean
  over the last epoch, per seed, against epochs; right, the held-out 0-1 error per epoch."""
  norms, errors = (history_curves(rows, m) for m in ("minibatch_grad_norm", "test_error"))
  colors = plt.cm.viridis(np.linspace(0, 0.85, len(norms)))
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
  for (member, (steps, values)), color in zip(norms.items(), colors, strict=True):
    epochs, values = np.asarray(steps, float) / every, np.asarray(values, float)
    left.scatter(epochs, values, s=3, color=color, alpha=0.25, linewidths=0)
    left.plot(epochs, running_mean(values, every), color=color, lw=1.2, label=member)
    steps, values = errors[member]
    right.plot(np.asarray(steps, float) / every, values, color=color, lw=1.2, label=member)
  left.set(
    title="minibatch gradient norms, running mean (Fig. 8.1, left)",
    xlabel="epoch",
    ylabel="‖∇ minibatch objective‖",
  )
  right.set(title="held-out 0-1 error (Fig. 8.1, right)", xlabel="epoch", ylabel="0-1 error")
  for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  return report.save_figure(fig, out_dir / "gradient_norm.png")


def curvature_figure(rows: list[dict], every: int, out_dir: Path) -> Path:
  """gᵀg and gᵀHg of the full-batch objective per epoch, per seed (§8.2.1)."""
  series = {
    f"{label} {member}": (np.asarray(steps, float) / every, values)
    for label, metric in (("gᵀg", "g_dot_g"), ("gᵀHg", "g_hess_g"))
    for member, (steps, values) in history_curves(rows, metric).items()
  }
  return report.line_plot(
    series,
    out_dir / "curvature.png",
    title="first- and second-order terms along the full-batch gradient (§8.2.1)",
    xlabel="epoch",
    ylabel="value",
    logy=True,
  )
