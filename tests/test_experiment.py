"""The skeleton's verdicts: `above` / `below` criteria on a summary, with standard errors."""

import math

import pytest

from jaxopt_study.experiment import (
  INCONCLUSIVE,
  NOT_REPRODUCED,
  REPRODUCED,
  above,
  all_of,
  below,
  verdict,
)


@pytest.mark.parametrize(
  "criterion, summary, expected",
  [
    (above("ratio", 1.0), {"ratio": 1.5}, True),
    (above("ratio", 1.0), {"ratio": 0.5}, False),
    (below("ratio", 1.0), {"ratio": 0.5}, True),
    # within 2 standard errors of the threshold: cannot decide
    (above("ratio", 1.0, standard_error="ratio_se"), {"ratio": 1.5, "ratio_se": 0.3}, None),
    (above("ratio", 1.0, standard_error="ratio_se"), {"ratio": 1.5, "ratio_se": 0.2}, True),
    (below("ratio", 1.0, standard_error="ratio_se"), {"ratio": 1.5, "ratio_se": 0.2}, False),
    (above("ratio", 1.0), {"ratio": math.nan}, None),
    (above("ratio", 1.0), {"ratio": None}, None),
    # an error bar asked for but missing (one seed) or not finite: cannot decide
    (above("ratio", 1.0, standard_error="ratio_se"), {"ratio": 9.0, "ratio_se": math.nan}, None),
    (above("ratio", 1.0, standard_error="ratio_se"), {"ratio": 9.0, "ratio_se": None}, None),
    (above("by_rate", 0), {"by_rate": {}}, None),
    # one value per setting: all must hold; one failure fails; else one undecided is undecided
    (above("by_rate.x", 0), {"by_rate": {"x": {"a": 1.0, "b": 2.0}}}, True),
    (above("by_rate.x", 0), {"by_rate": {"x": {"a": 1.0, "b": -2.0}}}, False),
    (
      above("r", 0, standard_error="se"),
      {"r": {"a": 1.0, "b": 0.1}, "se": {"a": 0.1, "b": 1}},
      None,
    ),
    # exactly 2 standard errors away, as float32 rounds it (regularization's quick run: −6/450
    # ± 3/450 stored as −0.013333331793546677 ± 0.006666664034128188): a tie, undecided
    (
      below("d", 0.0, standard_error="se"),
      {"d": -0.013333331793546677, "se": 0.006666664034128188},
      None,
    ),
    (below("d", 0.0, standard_error="se"), {"d": -0.0134, "se": 0.0066666}, True),
    # a best rate at its grid's edge does not bracket the optimum: cannot decide
    (above("ratio", 1.0, unless="at_edge"), {"ratio": 9.0, "at_edge": True}, None),
    (above("ratio", 1.0, unless="at_edge"), {"ratio": 9.0, "at_edge": False}, True),
    # flags setting by setting: a flagged setting cannot decide, the others still can
    (
      above("r", 0, unless="edge"),
      {"r": {"a": 1.0, "b": -1.0}, "edge": {"a": False, "b": True}},
      None,
    ),
    (
      above("r", 0, unless="edge"),
      {"r": {"a": -1.0, "b": -1.0}, "edge": {"a": False, "b": True}},
      False,
    ),
  ],
)
def test_criteria_judge_the_summary(criterion, summary, expected):
  assert criterion(summary) is expected


def test_a_missing_claim_names_the_key():
  with pytest.raises(KeyError, match="'by_rate.x'.*missing 'x'"):
    above("by_rate.x", 0)({"by_rate": {}})


def test_verdict_words():
  assert [verdict(True), verdict(False), verdict(None)] == [
    REPRODUCED,
    NOT_REPRODUCED,
    INCONCLUSIVE,
  ]


FALLS_AND_SMALL = all_of(below("deepest_over_shallowest", 1.0), below("deepest", 0.1))


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
  falls = all_of(above("loss_decreased", 0.5), above("rises", 0.0))
  assert falls({"loss_decreased": {"a": True, "b": True}, "rises": {"a": 3, "b": 1}}) is True
  assert falls({"loss_decreased": {"a": True, "b": True}, "rises": {"a": 3, "b": 0}}) is False
  assert falls({"loss_decreased": {"a": True, "b": None}, "rises": {"a": 3, "b": None}}) is None


@pytest.mark.parametrize("criteria", [(), ("deepest",)])
def test_all_of_refuses_what_is_not_a_criterion(criteria):
  with pytest.raises(TypeError, match="all_of: criteria"):
    all_of(*criteria)
