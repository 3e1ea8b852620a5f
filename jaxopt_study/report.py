"""Plots (matplotlib, drawn from saved results) and the self-contained HTML report.

The report embeds its figures as base64 PNG, so `report.html` opens with nothing but the file.
"""

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from jaxopt_study.results import write_atomic  # noqa: E402


def line_plot(
  series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
  path: Path,
  *,
  title: str,
  xlabel: str,
  ylabel: str,
  logx: bool = False,
  logy: bool = False,
) -> Path:
  """One line per labelled (x, y) series, saved as PNG; non-finite points are left out."""
  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
  for label, (x, y) in series.items():
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(y) & (y > 0 if logy else True)
    ax.plot(x[keep], y[keep], label=label, marker="o" if len(x) < 12 else None, ms=3)
  ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
  if logx:
    ax.set_xscale("log")
  if logy:
    ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
  """Saves through a temporary file and a rename, then closes the figure."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp.png")
  fig.savefig(tmp)
  plt.close(fig)
  tmp.replace(path)
  return path


def histogram_plot(values: Sequence[float], path: Path, *, title: str, xlabel: str) -> Path:
  """A histogram of `values` with counts on a log scale (spectra: a bulk and a few outliers)."""
  values = np.asarray(values, float)
  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
  ax.hist(values[np.isfinite(values)], bins=min(100, max(10, values.size // 5)), log=True)
  ax.set(title=title, xlabel=xlabel, ylabel="count")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return _save(fig, path)


def write_report(
  path: Path,
  *,
  title: str,
  description: str,
  config: Mapping[str, Any],
  summary: Mapping[str, Any],
  table: Sequence[Mapping[str, Any]],
  figures: Sequence[Path],
) -> Path:
  """Writes a self-contained HTML page: description, summary, figures, results table, config."""
  parts = [
    "<!doctype html><html><head><meta charset='utf-8'>",
    f"<title>{html.escape(title)}</title>",
    "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
    "padding:0 1em;color:#222}table{border-collapse:collapse;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}img{max-width:100%;margin:0.5em 0}"
    ".figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:1em}"
    "pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}</style></head><body>",
    f"<h1>{html.escape(title)}</h1>",
    f"<p>{html.escape(description)}</p>",
    "<h2>Summary</h2>",
    _table([{"quantity": k, "value": _format(v)} for k, v in summary.items()]),
    "<h2>Figures</h2><div class='figs'>",
  ]
  for figure in figures:
    encoded = base64.b64encode(Path(figure).read_bytes()).decode("ascii")
    parts.append(
      f"<figure><img alt='{html.escape(Path(figure).stem)}' "
      f"src='data:image/png;base64,{encoded}'></figure>"
    )
  parts += [
    "</div><h2>Results</h2>",
    _table(table),
    "<h2>Config</h2>",
    f"<pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>",
    "</body></html>",
  ]
  write_atomic(path, "\n".join(parts))
  return path


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
  if not rows:
    return "<p>(none)</p>"
  columns = list(dict.fromkeys(k for row in rows for k in row))
  head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
  body = "".join(
    "<tr>" + "".join(f"<td>{html.escape(_format(row.get(c, '')))}</td>" for c in columns) + "</tr>"
    for row in rows
  )
  return f"<table><tr>{head}</tr>{body}</table>"


def _format(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, Mapping):
    return ", ".join(f"{k}: {_format(v)}" for k, v in value.items())
  return str(value)
