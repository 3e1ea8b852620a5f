"""Plots of the report: series beyond the colour cycle stay distinguishable."""

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
