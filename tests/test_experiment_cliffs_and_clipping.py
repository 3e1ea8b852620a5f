"""The cliffs-and-clipping experiment (§8.2.4; Pascanu et al. 2013): quick config, its claims."""

import chex
import jax.numpy as jnp
import pytest
from landscape_helpers import load_experiment
from quick_runs import CONFIGS, quick_run_fixtures, refused_field

from jaxopt_study.config import load_config
from jaxopt_study.experiment import verdict
from jaxopt_study.results import read_csv

NAME = "cliffs_and_clipping"
finished_run, summary = quick_run_fixtures(NAME)


@pytest.mark.slow  # runs the quick config end to end
def test_writes_every_file(finished_run):
  names = {p.name for p in finished_run.iterdir()}
  assert {"results.csv", "history.csv", "summary.json", "report.html"} <= names
  assert {"surface.png", "loss.png"} <= names


@pytest.mark.slow  # runs the quick config end to end
def test_gradient_at_the_cliff_is_orders_of_magnitude_larger(summary):
  """Pascanu et al. (2013), Fig. 6: the wall's gradient dwarfs the rest of the surface."""
  assert summary["grad_norm_range_orders"] > 3.0
  assert summary["max_grad_norm_on_paths"] > 100 * summary["grad_norm_median_on_surface"]


@pytest.mark.slow  # runs the quick config end to end
def test_unclipped_sgd_is_thrown_off_the_cliff(summary):
  """Some starts meet the wall and are catapulted onto a plateau far away."""
  assert summary["diverged_without_clipping"] >= 0.2
  assert summary["max_step_without_clipping"] > 20.0


@pytest.mark.slow  # runs the quick config end to end
def test_clipping_keeps_steps_small_and_converges(finished_run, summary):
  """Pascanu et al. (2013), Alg. 1: with the norm (or each value) clipped, the same rate converges,
  and every start that unclipped SGD lost converges with the norm clipped."""
  table = read_csv(finished_run / "results.csv")
  assert summary["max_step_with_clipping"]["norm"] <= 0.5 + 1e-5  # ε · clip_norm = 1.0 · 0.5
  assert summary["max_step_with_clipping"]["value"] <= 0.35 * 2**0.5 + 1e-5  # two components
  assert summary["converged_with_clipping"]["norm"] >= 0.9
  assert summary["converged_with_clipping"]["value"] >= 0.8
  by_member = {r["member"]: r for r in table}
  lost = [r for r in table if r["clipping"] == "none" and r["diverged"]]
  assert lost
  for row in lost:
    clipped = by_member[row["member"].replace("none@", "norm@")]
    assert clipped["converged"] is True, row["member"]


@pytest.mark.slow  # runs the quick config end to end
def test_verdicts_judge_every_claim(summary):
  """Thrown off: unclipped starts land on the plateau more often than clipped ones."""
  rows = summary["diverged_without_minus_with_clipping"]
  assert set(rows) == {"norm", "value"}
  assert summary["verdicts"] == {
    "grad_norm_range_orders": verdict(summary["grad_norm_range_orders"] > 2),
    "diverged_without_clipping": verdict(all(d > 0 for d in rows.values())),
    "converged_with_clipping": verdict(
      all(share > 0.5 for share in summary["converged_with_clipping"].values())
    ),
  }


@pytest.mark.slow  # runs the CLI
@pytest.mark.parametrize(
  ("field", "value"), [("target", "1.5"), ("w_range", "[3.0, 1.0]"), ("clip_norm", "0.0")]
)
def test_bad_config_is_refused_naming_the_field(tmp_path, capsys, field, value):
  assert field in refused_field(tmp_path, capsys, NAME, field, value)


def test_nothing_is_drawn_so_the_claims_are_judged_on_their_values():
  """The criteria take no error bar: the seed only builds the network, whose every parameter
  `Unit.at` sets, so the surface and each descent are the same for any seed."""
  module = load_experiment(NAME)
  config = load_config(CONFIGS / f"{NAME}_quick.py")
  units = []
  for seed in (0, 7):
    config.unlock()
    config.seed = seed
    units.append(module.Unit(config))
  chex.assert_trees_all_equal(*(unit.at(5.0, -4.0) for unit in units))
  w, b = jnp.asarray([4.5, 6.0, 6.0]), jnp.asarray([-5.0, -4.0, -3.4])
  chex.assert_trees_all_equal(*(unit.surface(w, b) for unit in units))
