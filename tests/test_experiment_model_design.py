"""§8.7.5 on the quick config: skip connections keep a deep MLP trainable; the Hessian at
initialization is indefinite for every design; the claims agree with the rows they summarize."""

import numpy as np
import pytest
from landscape_helpers import assert_refused, run_config, run_quick, summary

from jaxopt_study.results import read_csv

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

NAME = "model_design"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  return run_quick(NAME, tmp_path_factory.mktemp("run") / NAME)


def test_the_residual_net_trains_further_than_the_plain_net_at_depth(finished_run):
  """He et al. (2016), §8.7.5: at the same depth, budget and best rate, skip connections end
  lower than the plain net, beyond the spread over seeds."""
  claims, config = summary(finished_run), run_config(finished_run)
  depth = str(max(config.depths))
  plain, residual = (claims["final_loss_by_depth"][d][depth] for d in ("plain", "residual"))
  assert residual["mean"] + residual["std"] < plain["mean"] - plain["std"]
  assert claims["verdicts"]["final_loss_by_depth/residual"] == "reproduced"


def test_the_best_rate_and_its_loss_are_those_of_the_table(finished_run):
  """The reported best rate has the lowest mean final loss over seeds among the rates whose
  seeds all stayed finite, and its loss is the mean of those seeds' rows."""
  claims, config = summary(finished_run), run_config(finished_run)
  rows = [r for r in read_csv(finished_run / "results.csv") if r["part"] == "train"]
  for design in config.designs:
    for depth in config.depths:
      mine = [r for r in rows if r["design"] == design and r["depth"] == depth]
      means = {}
      for rate in config.learning_rates:
        losses = [r["final_train_loss"] for r in mine if r["learning_rate"] == rate]
        assert len(losses) == len(config.seeds)
        if all(np.isfinite(losses)) and not any(
          r["diverged"] for r in mine if r["learning_rate"] == rate
        ):
          means[rate] = np.mean(losses)
      best = min(means, key=means.get)
      assert claims["best_learning_rate_by_depth"][design][str(depth)] == best
      assert claims["final_loss_by_depth"][design][str(depth)]["mean"] == pytest.approx(
        means[best], rel=1e-12
      )
      edge = best in (min(config.learning_rates), max(config.learning_rates))
      assert claims["best_rate_at_grid_edge"][design][str(depth)] == edge


def test_the_hessian_at_initialization_is_indefinite(finished_run):
  """A random initialization is no minimum: λ_min < 0 < λ_max for every design and seed."""
  rows = [r for r in read_csv(finished_run / "results.csv") if r["part"] == "init"]
  assert rows
  for row in rows:
    assert row["lambda_min"] < 0 < row["lambda_max"], row["member"]
    assert row["grad_ratio_first_last"] > 0


@pytest.mark.parametrize(
  "override, culprit",
  [
    ("designs=['plain','wide']", "designs"),
    ("learning_rates=[0.1,1.0]", "learning_rates"),
    ("hessian_examples=100000", "hessian_examples"),
    ("depths=[0]", "depths"),
  ],
)
def test_bad_values_are_refused_before_running(override, culprit, tmp_path, capsys):
  assert_refused(NAME, override, culprit, tmp_path, capsys)
