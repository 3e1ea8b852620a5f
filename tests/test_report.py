"""The report: series beyond the colour cycle stay distinguishable; every verdict has a row."""

from jaxopt_study import report


def test_series_past_ten_colours_are_dashed(tmp_path, monkeypatch):
  figures = []
  monkeypatch.setattr(report, "save_figure", lambda fig, path: figures.append(fig) or path)
  series = {f"s{i}": ([1.0, 2.0], [1.0, 2.0 + i]) for i in range(12)}
  report.line_plot(series, tmp_path / "p.png", title="t", xlabel="x", ylabel="y")
  (figure,) = figures
  styles = [line.get_linestyle() for line in figure.axes[0].lines]
  assert styles == ["-"] * 10 + ["--"] * 2
  colours = [line.get_color() for line in figure.axes[0].lines]
  assert len(set(zip(colours, styles, strict=True))) == 12


def test_every_verdict_has_a_row_also_of_a_claim_that_is_no_quantity_of_the_summary():
  """A claim judged from other quantities (`regularization`'s per-method claims, `transfer`'s)
  was left out of report.html and of the tour's verdict table."""
  verdicts = {"ratio": "reproduced", "a_beats_b": "not reproduced"}
  summary = {"ratio": 2.0, "gap": {"a": 0.1}, "verdicts": verdicts}
  published = {"ratio": "> 1", "a_beats_b": "a below b"}
  rows = report.claim_rows(summary, published, "claim", "ours")
  assert rows == [
    {"claim": "ratio", "ours": 2.0, "published": "> 1", "verdict": "reproduced"},
    {"claim": "gap", "ours": {"a": 0.1}, "published": "", "verdict": ""},
    {"claim": "a_beats_b", "ours": "—", "published": "a below b", "verdict": "not reproduced"},
  ]
