"""Fig. 8.1 (§8.2.1) on digits: the protocol (minibatch norms, init scale 1, noisy labels and the
L2 penalty, seeds), the claims' arithmetic from the saved history, and the criteria."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from landscape_helpers import ROOT, assert_refused, load_experiment, run_config, run_quick, summary

from jaxopt_study import data, optim, registry, results, train
from jaxopt_study.config import load_config
from jaxopt_study.experiment import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, margin, verdict
from jaxopt_study.lab import digits_tasks

NAME = "fig8_1_gradient_norm"
CLAIMS = ("minibatch_grad_norm_growth", "gHg_growth", "error_drop")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return run_quick(NAME, tmp_path_factory.mktemp("run") / NAME)


@pytest.fixture(scope="module")
def experiment_module():
  return load_experiment(NAME)


def saved_history(out) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
  """history.csv as member -> metric -> (steps, values)."""
  curves: dict = {}
  for row in results.read_csv(out / "history.csv"):
    steps, values = curves.setdefault(row["member"], {}).setdefault(row["metric"], ([], []))
    steps.append(row["step"])
    values.append(row["value"])
  return {
    member: {name: tuple(map(np.asarray, pair)) for name, pair in metrics.items()}
    for member, metrics in curves.items()
  }


def direct_minibatch(problem, params, seed: int, step: int, config) -> tuple[float, float]:
  """(loss, ‖gradient‖) of the step's own minibatch at `params`, written out: softmax
  cross-entropy on the problem's (noisy) training labels plus (α/2)‖θ‖²."""
  x, y = problem.train_data
  idx = data.batch_indices(
    jax.random.key(seed), step, x.shape[0], config.batch_size, config.sampling
  )
  graph, _, rest = nnx.split(problem.model(nnx.Rngs(0)), nnx.Param, ...)

  def objective(p):
    logits = nnx.merge(graph, p, rest)(x[idx])
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()
    leaves = jax.tree.leaves(p)
    return nll + 0.5 * config.l2_penalty * sum(jnp.sum(leaf**2) for leaf in leaves)

  value, grads = jax.value_and_grad(objective)(params)
  return float(value), float(optax.tree.norm(grads))


@pytest.mark.slow
def test_recorded_norms_are_each_steps_minibatch_gradient(finished_run, experiment_module):
  """At θ₀ (the module's own initialization: init scale 1) of the first and the last seed, and at
  θ_k of the last seed's run by `train.train` alone, the saved minibatch loss and norm equal a
  direct computation on that step's minibatch, with the noisy labels and the L2 penalty; the
  norm is not the full-batch one."""
  config = run_config(finished_run)
  problem = experiment_module.make_problem(config)
  curves = saved_history(finished_run)
  every = problem.num_train // config.batch_size
  for seed in (config.seed, config.seed + config.num_seeds - 1):
    saved = curves[f"seed{seed}"]
    steps, norms = saved["minibatch_grad_norm"]
    losses = saved["minibatch_loss"][1]
    np.testing.assert_array_equal(steps, np.arange(config.epochs * every))
    _, initial, _ = nnx.split(problem.model(nnx.Rngs(seed)), nnx.Param, ...)
    loss, norm = direct_minibatch(problem, initial, seed, 0, config)
    assert losses[0] == pytest.approx(loss, rel=1e-5)
    assert norms[0] == pytest.approx(norm, rel=1e-5)
    full_batch = saved["grad_norm"][1][0]
    assert abs(norms[0] - full_batch) > 0.01 * full_batch
  last = config.seed + config.num_seeds - 1
  k = every + 3  # inside the second epoch
  alone = train.train(
    problem,
    optim.sgd(config.learning_rate),
    steps=k,
    batch_size=config.batch_size,
    eval_every=k,
    sampling=config.sampling,
    seed=last,
    l2_penalty=config.l2_penalty,
  )
  loss, norm = direct_minibatch(problem, alone.params, last, k, config)
  saved = curves[f"seed{last}"]
  assert saved["minibatch_loss"][1][k] == pytest.approx(loss, rel=1e-4)
  assert saved["minibatch_grad_norm"][1][k] == pytest.approx(norm, rel=1e-4)


@pytest.mark.slow
def test_the_penalty_is_in_the_objective_and_the_labels_are_noisy(finished_run, experiment_module):
  """The minibatch loss at θ₀ exceeds the bare cross-entropy by (α/2)‖θ₀‖²; exactly the stated
  fraction of the training labels is wrong; the held-out labels are the clean ones."""
  config = run_config(finished_run)
  assert config.l2_penalty > 0 and config.data.label_noise > 0
  problem = experiment_module.make_problem(config)
  clean = digits_tasks.load(config.data)
  wrong = np.asarray(problem.train_data[1]) != np.asarray(clean.y_train)
  assert wrong.sum() == round(config.data.label_noise * clean.y_train.size)
  np.testing.assert_array_equal(problem.heldout_data[1], clean.y_test)
  np.testing.assert_array_equal(problem.train_data[0], clean.x_train)
  module = problem.model(nnx.Rngs(config.seed))
  _, params, _ = nnx.split(module, nnx.Param, ...)
  x, y = problem.train_data
  idx = data.batch_indices(jax.random.key(config.seed), 0, x.shape[0], config.batch_size)
  bare = float(optax.softmax_cross_entropy_with_integer_labels(module(x[idx]), y[idx]).mean())
  penalty = 0.5 * config.l2_penalty * float(optax.tree.norm(params, squared=True))
  logged = saved_history(finished_run)[f"seed{config.seed}"]["minibatch_loss"][1][0]
  assert logged == pytest.approx(bare + penalty, rel=1e-5)
  assert penalty > 1e-3 * bare  # far above float32 rounding: the check can see the penalty


def test_noisy_labels_replace_an_exact_share_by_other_classes(experiment_module):
  labels = np.arange(1000) % 10
  noisy = experiment_module.noisy_labels(labels, 0.3, seed=4, num_classes=10)
  assert (noisy != labels).sum() == 300
  assert set(np.unique(noisy)) == set(range(10))
  np.testing.assert_array_equal(noisy, experiment_module.noisy_labels(labels, 0.3, 4, 10))
  assert (noisy != experiment_module.noisy_labels(labels, 0.3, 5, 10)).any()
  np.testing.assert_array_equal(experiment_module.noisy_labels(labels, 0.0, 4, 10), labels)


def test_full_config_states_the_protocol():
  """Init scale 1, at least three seeds, noisy labels and a penalty in the full config; the
  quick one differs only in size."""
  full = load_config(ROOT / "configs" / f"{NAME}.py")
  quick = load_config(ROOT / "configs" / f"{NAME}_quick.py")
  assert full.model.init_scale == 1.0 and quick.model.init_scale == 1.0
  assert full.num_seeds >= 3 and quick.num_seeds >= 3
  assert full.data.label_noise > 0 and full.l2_penalty > 0
  assert quick.data.label_noise == full.data.label_noise and quick.l2_penalty == full.l2_penalty


@pytest.mark.slow
def test_claims_recomputed_from_the_saved_history(finished_run):
  """Each seed's ratios of the last-10% mean over the first-10% mean, and the mean and standard
  error over seeds, recomputed from history.csv by hand."""
  config = run_config(finished_run)
  claims = summary(finished_run)
  curves = saved_history(finished_run)
  members = [f"seed{s}" for s in range(config.seed, config.seed + config.num_seeds)]
  assert sorted(curves) == sorted(members) == sorted(claims["by_seed"])
  total = claims["steps"]
  w = round(0.1 * total)
  assert claims["window_steps"] == w
  per_seed = {name: [] for name in CLAIMS}
  for member in members:
    norms = curves[member]["minibatch_grad_norm"][1]
    assert norms.size == total
    eval_steps, g_hess_g = curves[member]["g_hess_g"]
    errors = curves[member]["test_error"][1]
    first, last = eval_steps < w, eval_steps > total - w
    expected = {
      "minibatch_grad_norm_growth": norms[-w:].mean() / norms[:w].mean(),
      "gHg_growth": g_hess_g[last].mean() / g_hess_g[first].mean(),
      "error_drop": errors[0] - errors[last].mean(),
    }
    for name, value in expected.items():
      assert claims["by_seed"][member][name] == pytest.approx(value, rel=1e-9, abs=1e-12)
      per_seed[name].append(value)
  n = len(members)
  for name, values in per_seed.items():
    assert claims[name] == pytest.approx(np.mean(values), rel=1e-9)
    se = np.std(values, ddof=1) / np.sqrt(n)
    assert claims[f"{name}_se"] == pytest.approx(se, rel=1e-9)
    assert claims[f"{name}_dof"] == n - 1 == config.num_seeds - 1
  assert set(claims["verdicts"]) == set(CLAIMS)
  for name, threshold in zip(CLAIMS, (1.0, 10.0, 0.5), strict=True):
    distance = claims[name] - threshold  # beyond t_{0.975, seeds - 1} standard errors
    undecided = abs(distance) <= margin(claims[f"{name}_dof"]) * claims[f"{name}_se"]
    assert claims["verdicts"][name] == verdict(None if undecided else distance > 0)


@pytest.mark.parametrize(
  "value, se, dof, expected",
  [
    (1.5, 0.1, 4, REPRODUCED),
    (1.1, 0.1, 4, INCONCLUSIVE),  # within t_{0.975, 4} = 2.78 standard errors of 1
    (1.25, 0.1, 30, REPRODUCED),  # 2.5 standard errors: beyond t_{0.975, 30} = 2.04
    (1.25, 0.1, 2, INCONCLUSIVE),  # but within t_{0.975, 2} = 4.30 (3 seeds)
    (1.25, 0.1, None, INCONCLUSIVE),  # one seed: no error bar, no degrees of freedom
    (0.8, 0.05, 4, NOT_REPRODUCED),
    (float("nan"), 0.1, 4, INCONCLUSIVE),
  ],
)
def test_criteria_judge_with_the_standard_errors(value, se, dof, expected):
  found = registry.load(NAME)
  base = {"gHg_growth": 20.0, "gHg_growth_se": 1.0, "error_drop": 0.8, "error_drop_se": 0.02}
  base |= {"gHg_growth_dof": 4, "error_drop_dof": 4}
  claims = base | {
    "minibatch_grad_norm_growth": value,
    "minibatch_grad_norm_growth_se": se,
    "minibatch_grad_norm_growth_dof": dof,
  }
  verdicts = found.verdicts(claims)
  assert verdicts["minibatch_grad_norm_growth"] == expected
  assert verdicts["gHg_growth"] == REPRODUCED and verdicts["error_drop"] == REPRODUCED
  below = found.verdicts(claims | {"gHg_growth": 5.0, "error_drop": 0.3})
  assert below["gHg_growth"] == NOT_REPRODUCED and below["error_drop"] == NOT_REPRODUCED


@pytest.mark.slow
def test_saved_parameters_give_the_last_recorded_loss(finished_run, experiment_module):
  config = run_config(finished_run)
  problem = experiment_module.make_problem(config)
  member = f"seed{config.seed}"
  graph, template, rest = nnx.split(problem.model(nnx.Rngs(0)), nnx.Param, ...)
  params, _ = results.load_member_state(finished_run / "params.npz", member, template, rest)
  logits = nnx.merge(graph, params, rest)(problem.train_data[0])
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, problem.train_data[1]).mean()
  loss = float(nll) + 0.5 * config.l2_penalty * float(optax.tree.norm(params, squared=True))
  steps, values = saved_history(finished_run)[member]["train_loss"]
  assert steps[-1] == results.read_csv(finished_run / "results.csv")[0]["steps"]
  assert loss == pytest.approx(values[-1], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
  "override, culprit",
  [
    ("epochs=0", "epochs"),
    ("learning_rate=-0.1", "learning_rate"),
    ("batch_size=0", "batch_size"),
    ("num_seeds=0", "num_seeds"),
    ("data.label_noise=1.5", "label_noise"),
    ("l2_penalty=-1.0", "l2_penalty"),
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  assert_refused(NAME, override, culprit, tmp_path, capsys)
