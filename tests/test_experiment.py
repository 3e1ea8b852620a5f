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
  margin,
  verdict,
)

LARGE = 10**6  # degrees of freedom where t_{0.975} is the normal's 1.96
AT_MARGIN = 0.006666664034128188 * margin(LARGE)  # a mean exactly at the margin, as float32 rounds


@pytest.mark.parametrize(
  "criterion, summary, expected",
  [
    (above("ratio", 1.0), {"ratio": 1.5}, True),
    (above("ratio", 1.0), {"ratio": 0.5}, False),
    (below("ratio", 1.0), {"ratio": 0.5}, True),
    # 2.5 errors from the threshold: beyond t_{0.975} with many seeds (1.96), within it with 5
    # (t = 2.78 at dof 4): cannot decide
    (above("r", 1.0, standard_error="r_se"), {"r": 1.5, "r_se": 0.2, "r_dof": LARGE}, True),
    (above("r", 1.0, standard_error="r_se"), {"r": 1.5, "r_se": 0.2, "r_dof": 4}, None),
    (below("r", 1.0, standard_error="r_se"), {"r": 1.5, "r_se": 0.2, "r_dof": LARGE}, False),
    # two seeds (dof 1): 11.4 errors are not enough, 13.3 are (t = 12.71)
    (above("r", 1.0, standard_error="r_se"), {"r": 9.0, "r_se": 0.7, "r_dof": 1}, None),
    (above("r", 1.0, standard_error="r_se"), {"r": 9.0, "r_se": 0.6, "r_dof": 1}, True),
    # degrees of freedom as a number, and per setting
    (above("r", 1.0, standard_error="r_se", dof=math.inf), {"r": 1.5, "r_se": 0.25}, True),
    (
      above("r", 0, standard_error="r_se"),
      {"r": {"a": 1.0, "b": 1.0}, "r_se": {"a": 0.2, "b": 0.2}, "r_dof": {"a": 1, "b": 9}},
      None,
    ),
    (
      above("r", 0, standard_error="s", dof="n"),
      {"r": {"a": 1.0, "b": 1.0}, "s": 0.2, "n": {"a": 9, "b": 9}},
      True,
    ),
    (above("ratio", 1.0), {"ratio": math.nan}, None),
    (above("ratio", 1.0), {"ratio": None}, None),
    # an error bar asked for but missing (one seed) or not finite: cannot decide
    (above("r", 1.0, standard_error="r_se"), {"r": 9.0, "r_se": math.nan, "r_dof": 3}, None),
    (above("r", 1.0, standard_error="r_se"), {"r": 9.0, "r_se": None, "r_dof": 3}, None),
    (above("r", 1.0, standard_error="r_se"), {"r": 9.0, "r_se": 0.1, "r_dof": None}, None),
    (above("r", 1.0, standard_error="r_se"), {"r": 9.0, "r_se": 0.1, "r_dof": 0}, None),
    # every seed gave the same quantized value (error 0): decided from 6 seeds on (a sign test's
    # 2 · 2⁻⁶ < 0.05), not from 5
    (above("r", 0.0, standard_error="r_se"), {"r": 0.01, "r_se": 0.0, "r_dof": 4}, None),
    (above("r", 0.0, standard_error="r_se"), {"r": 0.01, "r_se": 0.0, "r_dof": 5}, True),
    # the same count from every seed, in float32 rounding (regularization's quick run: 5/450
    # fewer errors from each of 3 seeds, ± 2.5e-9): no spread, as 0; a spread of 1e-4 decides
    (below("r", 0.0, standard_error="r_se"), {"r": -0.0111, "r_se": 2.5e-9, "r_dof": 2}, None),
    (below("r", 0.0, standard_error="r_se"), {"r": -0.0111, "r_se": 1e-4, "r_dof": 2}, True),
    # a ratio's delta-method error judged on the log scale: 0.5 ± 0.2 is 2.5 errors below 1 on
    # the ratio scale, but |log 0.5| / (0.2 / 0.5) = 1.73 < 1.96 on the scale it was made on
    (below("r", 1.0, standard_error="r_se"), {"r": 0.5, "r_se": 0.2, "r_dof": LARGE}, True),
    (
      below("r", 1.0, standard_error="r_se", ratio=True),
      {"r": 0.5, "r_se": 0.2, "r_dof": LARGE},
      None,
    ),
    (
      above("r", 1.0, standard_error="r_se", ratio=True),
      {"r": 3.0, "r_se": 0.9, "r_dof": LARGE},
      True,
    ),
    (above("r", 1.0, ratio=True), {"r": 0.0}, None),
    (above("by_rate", 0), {"by_rate": {}}, None),
    # one value per setting: all must hold; one failure fails; else one undecided is undecided
    (above("by_rate.x", 0), {"by_rate": {"x": {"a": 1.0, "b": 2.0}}}, True),
    (above("by_rate.x", 0), {"by_rate": {"x": {"a": 1.0, "b": -2.0}}}, False),
    (
      above("r", 0, standard_error="r_se"),
      {"r": {"a": 1.0, "b": 0.1}, "r_se": {"a": 0.1, "b": 1}, "r_dof": LARGE},
      None,
    ),
    # exactly at the margin, as float32 rounds it (the mean and error of 0-1 counts): a tie
    (
      below("d", 0.0, standard_error="d_se"),
      {"d": -AT_MARGIN * (1 - 1e-8), "d_se": 0.006666664034128188, "d_dof": LARGE},
      None,
    ),
    (
      below("d", 0.0, standard_error="d_se"),
      {"d": -AT_MARGIN * (1 + 1e-5), "d_se": 0.006666664034128188, "d_dof": LARGE},
      True,
    ),
    # a claim about some settings: those whose key starts with `only` (a prefix, or a tuple)
    (above("r", 0, only="mse@"), {"r": {"mse@1": 1.0, "mse@2": 2.0, "ce@1": -1.0}}, True),
    (above("r", 0, only="ce@"), {"r": {"mse@1": 1.0, "mse@2": 2.0, "ce@1": -1.0}}, False),
    (above("r", 0, only=("mse@", "x")), {"r": {"mse@1": 1.0, "x": 2.0, "ce@1": -1.0}}, True),
    (above("r", 0, only="adam@"), {"r": {"mse@1": 1.0}}, None),  # no such setting
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


def test_the_margin_is_students_t():
  """t_{0.975} from the printed table (Fisher & Yates): 12.706 at 1 degree of freedom, 4.303 at
  2, 2.776 at 4, 2.228 at 10, and the normal's 1.960 in the limit."""
  for dof, t in [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (math.inf, 1.960)]:
    assert margin(dof) == pytest.approx(t, abs=5e-4)


def test_the_margin_for_one_of_several_settings_is_bonferronis():
  """t_{1 − 0.025/k}: k = 5 settings at 10 degrees of freedom is t_{0.995, 10} = 3.169 and at 1,
  t_{0.995, 1} = 63.657 (Fisher & Yates); one setting is the plain margin."""
  assert margin(10, 5) == pytest.approx(3.169, abs=5e-4)
  assert margin(1, 5) == pytest.approx(63.657, abs=5e-3)
  assert margin(4, 1) == margin(4)


def test_a_setting_fails_a_claim_beyond_the_margin_corrected_for_every_setting():
  """A claim of k settings holds when every setting holds beyond t_{0.975} errors, and fails when
  one fails beyond t_{1 − 0.025/k}: with 5 settings at 10 degrees of freedom, a setting 3.0
  errors on the wrong side (beyond 2.228, within 3.169) leaves the claim undecided, 3.3 fail it;
  alone, 3.0 errors fail it."""
  criterion = below("d", 0.0, standard_error="d_se")
  holding = dict.fromkeys("abcd", -3.0)  # each holds beyond t_{0.975, 10} = 2.228 errors
  for wrong_side, expected in ((3.0, None), (3.3, False)):
    summary = {"d": {**holding, "e": wrong_side}, "d_se": 1.0, "d_dof": 10}
    assert criterion(summary) is expected
  assert criterion({"d": {"e": 3.0}, "d_se": 1.0, "d_dof": 10}) is False
  # settings that cannot decide are not chances to fail: four flagged, the fifth fails alone
  flagged = below("d", 0.0, standard_error="d_se", unless="edge")
  edge = {**dict.fromkeys("abcd", True), "e": False}
  summary = {"d": {**holding, "e": 3.0}, "d_se": 1.0, "d_dof": 10, "edge": edge}
  assert flagged(summary) is False
  # a claim of several parts counts the settings of every part: 2.5 errors against it are beyond
  # t_{0.975, 10} = 2.228 but within t_{1 − 0.025/2, 10} = 2.634, in one dict or in two parts
  two = {"d": {"a": -3.0, "e": 2.5}, "d_se": 1.0, "d_dof": 10}
  assert criterion(two) is None
  parts = {"a": -3.0, "e": 2.5, "a_se": 1.0, "e_se": 1.0, "a_dof": 10, "e_dof": 10}
  assert (
    all_of(below("a", 0.0, standard_error="a_se"), below("e", 0.0, standard_error="e_se"))(parts)
    is None
  )
  assert below("e", 0.0, standard_error="e_se")(parts) is False
  # the settings a claim judges are the ones counted: `only` one of them, 3.0 errors fail it
  some = below("d", 0.0, standard_error="d_se", only="e")
  assert some({"d": {**holding, "e": 3.0}, "d_se": 1.0, "d_dof": 10}) is False
  assert criterion({"d": {**holding, "e": -2.3}, "d_se": 1.0, "d_dof": 10}) is True
  assert criterion({"d": {**holding, "e": -2.2}, "d_se": 1.0, "d_dof": 10}) is None
  # on the log scale too: 5 ratios, one 3.0 errors (of its log) above 1
  ratio = below("r", 1.0, standard_error="r_se", ratio=True)
  value = math.exp(0.3)
  summary = {"r": {**dict.fromkeys("abcd", 0.5), "e": value}, "r_se": 0.1 * value, "r_dof": 10}
  assert ratio(summary) is None
  summary["r"]["e"] = value = math.exp(0.33)
  summary["r_se"] = 0.1 * value
  assert ratio(summary) is False


def test_criteria_refuse_what_they_cannot_judge():
  with pytest.raises(ValueError, match="'spread' does not end in _se.*pass dof="):
    above("r", 0.0, standard_error="spread")
  with pytest.raises(ValueError, match="ratio=True needs a threshold > 0"):
    above("r", 0.0, ratio=True)


def test_only_on_a_single_value_names_the_claim():
  with pytest.raises(TypeError, match="'r': only='mse@' picks settings of a dict.*one value"):
    above("r", 0, only="mse@")({"r": 1.0})


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
