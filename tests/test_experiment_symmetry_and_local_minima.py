"""§8.2.2 on digits: symmetry of relabelled hidden units, and the minima reached from seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from landscape_helpers import assert_refused, history, run_config, run_quick, summary

from jaxopt_study import data, experiment, results
from jaxopt_study.experiment import verdict
from jaxopt_study.lab import digits_tasks

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end


NAME = "symmetry_and_local_minima"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return run_quick(NAME, tmp_path_factory.mktemp("run") / NAME)


def test_a_relabelled_minimum_has_the_same_loss_and_spectrum(finished_run):
  """§8.2.2: πθ* is an equivalent model; in float64 both agree to rounding."""
  claims = summary(finished_run)
  assert claims["permutation_loss_diff"] < 1e-12
  assert claims["permutation_spectrum_diff"] < 1e-10
  assert claims["permuted_param_distance"] > 0.5, "the copy lies far from θ* in parameter space"


def test_seeds_reach_different_points_of_similar_loss(finished_run):
  """Different seeds end far apart, at losses that differ by < 5% of what training removed."""
  claims = summary(finished_run)
  assert claims["seed_param_distance"] > 0.5
  assert claims["seed_loss_spread_vs_decrease"] < 0.05
  assert max(claims["test_error_by_seed"].values()) < 0.15


def test_verdicts_judge_every_claim(finished_run):
  """Symmetry and distinct points reproduce; the standard deviation s of the seeds' final losses
  over what training removed (the mean initial loss minus the mean final one) is judged against
  10% on the log scale, beyond t_{0.975, n − 1} of its relative standard error 1/√(2(n − 1)),
  from results.csv."""
  claims = summary(finished_run)
  rows = [r for r in results.read_csv(finished_run / "results.csv") if r["kind"] == "solution"]
  losses = np.asarray([r["final_train_loss"] for r in rows])
  removed = np.mean([r["initial_train_loss"] for r in rows]) - losses.mean()
  assert claims["seed_loss_spread"] == pytest.approx(np.ptp(losses) / losses.mean())
  assert claims["seed_loss_spread_vs_decrease"] == pytest.approx(np.ptp(losses) / removed)
  n = losses.size
  assert n == 3  # the quick config's seeds
  value = np.std(losses, ddof=1) / removed
  assert claims["seed_loss_std_vs_decrease"] == pytest.approx(value, rel=1e-9)
  assert claims["seed_loss_std_vs_decrease_se"] == pytest.approx(value / np.sqrt(2 * (n - 1)))
  assert claims["seed_loss_std_vs_decrease_dof"] == n - 1
  distance = np.log(0.1 / value)  # > 0: below the threshold
  if abs(distance) <= experiment.margin(n - 1) / np.sqrt(2 * (n - 1)) * (1 + 1e-6):  # one setting
    spread = "inconclusive"
  else:
    spread = verdict(distance > 0)
  assert claims["verdicts"] == {
    "permutation_loss_diff": "reproduced",
    "permutation_spectrum_diff": "reproduced",
    "seed_loss_spread": spread,
    "seed_param_distance": "reproduced",
  }


def test_spectrum_matches_jax_hessian_of_the_flat_loss(finished_run, x64):
  """The recorded eigenvalues at θ* against eigvalsh of `jax.hessian` (an independent path)."""
  config = run_config(finished_run)
  model = digits_tasks.mlp(config.seed, **config.model)
  digits = data.load_digits(config.data.test_fraction, config.data.split_seed, dtype=jnp.float64)
  template = jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), model.params)
  params, _ = results.load_member_state(
    finished_run / "params.npz", f"seed{config.seed}", template, model.model_state
  )  # saved in float64, the precision of the analysis
  flat, unravel = ravel_pytree(params)
  loss_fn = digits_tasks.nll(model)
  matrix = jax.hessian(lambda v: loss_fn(unravel(v), digits.x_train, digits.y_train))(flat)
  expected = np.linalg.eigvalsh(np.asarray(matrix))
  recorded = np.asarray([v for _, v in history(finished_run)[f"seed{config.seed}"]["eigenvalue"]])
  np.testing.assert_allclose(recorded, expected, atol=1e-9 * np.max(np.abs(expected)))


@pytest.mark.parametrize(
  "override, culprit",
  [
    ("num_solutions=1", "num_solutions"),
    ("max_params=100", "max_params"),
    ("model.depth=0", "model.depth"),
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  assert_refused(NAME, override, culprit, tmp_path, capsys)
