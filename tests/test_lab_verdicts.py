"""`lab.verdicts.all_of`: one criterion for a claim of several parts, judged as the skeleton
judges a dict of per-setting values (every part must hold; one failure fails)."""

import math

import pytest

from jaxopt_study.experiment import above, below
from jaxopt_study.lab import verdicts

FALLS_AND_SMALL = verdicts.all_of(below("deepest_over_shallowest", 1.0), below("deepest", 0.1))


@pytest.mark.parametrize(
  "summary, expected",
  [
    ({"deepest_over_shallowest": 0.5, "deepest": 0.01}, True),
    ({"deepest_over_shallowest": 0.5, "deepest": 0.2}, False),
    ({"deepest_over_shallowest": 2.0, "deepest": 0.01}, False),
    # one part undecided (not measured): undecided, unless another part fails
    ({"deepest_over_shallowest": math.nan, "deepest": 0.01}, None),
    ({"deepest_over_shallowest": None, "deepest": 0.2}, False),
  ],
)
def test_all_of_holds_when_every_part_holds(summary, expected):
  assert FALLS_AND_SMALL(summary) is expected


def test_all_of_combines_per_setting_parts():
  """Parts over the same settings (per η): a setting undecided in both parts is undecided."""
  falls = verdicts.all_of(above("loss_decreased", 0.5), above("rises", 0.0))
  assert falls({"loss_decreased": {"a": True, "b": True}, "rises": {"a": 3, "b": 1}}) is True
  assert falls({"loss_decreased": {"a": True, "b": True}, "rises": {"a": 3, "b": 0}}) is False
  assert falls({"loss_decreased": {"a": True, "b": None}, "rises": {"a": 3, "b": None}}) is None


@pytest.mark.parametrize("criteria", [(), ("deepest",)])
def test_all_of_refuses_what_is_not_a_criterion(criteria):
  with pytest.raises(TypeError, match="all_of: criteria"):
    verdicts.all_of(*criteria)
