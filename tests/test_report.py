"""The report: series beyond the colour cycle stay distinguishable; every verdict has a row."""

import matplotlib.pyplot as plt

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


def test_thirty_series_look_alike_in_no_pair_and_more_get_a_colour_bar(tmp_path, monkeypatch):
  """Colour and style repeated every 30 series (m0000 and m0030 alike) and a sweep of 300
  members drew a legend that left the figure: up to 30 series are all distinct with a legend;
  beyond, a colour map by order with a colour bar naming the first and last, no legend."""
  figures = []
  monkeypatch.setattr(report, "save_figure", lambda fig, path: figures.append(fig) or path)

  def draw(count):
    series = {f"m{i:04d}": ([1.0, 2.0], [1.0, 2.0 + i]) for i in range(count)}
    report.line_plot(series, tmp_path / "p.png", title="t", xlabel="x", ylabel="y")
    return figures[-1]

  axes = draw(30).axes
  looks = {(str(line.get_color()), line.get_linestyle()) for line in axes[0].lines}
  assert len(looks) == 30 and axes[0].get_legend() is not None and len(axes) == 1
  axes = draw(300).axes
  assert axes[0].get_legend() is None and len(axes[0].lines) == 300
  (bar,) = axes[1:]
  assert [t.get_text() for t in bar.get_yticklabels()] == ["m0000", "m0299"]
  lines = axes[0].lines
  assert tuple(lines[0].get_color()) == plt.cm.viridis(0.0)
  assert tuple(lines[-1].get_color()) == plt.cm.viridis(1.0)


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
