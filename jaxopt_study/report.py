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
  """One line per labelled (x, y) series, saved as PNG; non-finite points are left out.

  Up to `MAX_LEGEND` series, each has a legend entry and its own look: past the 10 colours of
  the colour cycle, lines are dashed, then dotted. More series (a large sweep) cannot all be told
  apart, and their legend would leave the figure: they are drawn thin in a colour map by their
  order, with a colour bar naming the first and the last.
  """
  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
  many = len(series) > MAX_LEGEND
  colors = plt.cm.viridis(np.linspace(0.0, 1.0, len(series)))
  for index, (label, (x, y)) in enumerate(series.items()):
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(y) & (y > 0 if logy else True)
    if many:
      ax.plot(x[keep], y[keep], color=colors[index], lw=0.7, alpha=0.6)
    else:
      style = ("-", "--", ":")[index // 10]
      ax.plot(x[keep], y[keep], style, label=label, marker="o" if len(x) < 12 else None, ms=3)
  ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
  if logx:
    ax.set_xscale("log")
  if logy:
    ax.set_yscale("log")
  ax.grid(alpha=0.3)
  if many:
    labels = list(series)
    scale = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, len(labels) - 1))
    bar = fig.colorbar(scale, ax=ax, ticks=[0, len(labels) - 1])
    bar.ax.set_yticklabels([labels[0], labels[-1]], fontsize=7)
    bar.set_label(f"{len(labels)} series, in order", fontsize=7)
  else:
    ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  return save_figure(fig, path)


MAX_LEGEND = 30  # 10 colours × 3 line styles: more series and two would look alike


def save_figure(fig: plt.Figure, path: Path) -> Path:
  """Saves `fig` as PNG through a temporary file and a rename (never half-written), then closes
  it; every figure of an experiment goes through here."""
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
  return save_figure(fig, path)


def write_report(
  path: Path,
  *,
  title: str,
  description: str,
  config: Mapping[str, Any],
  summary: Mapping[str, Any],
  table: Sequence[Mapping[str, Any]],
  figures: Sequence[Path],
  published: Mapping[str, str] | None = None,
) -> Path:
  """Writes a self-contained HTML page: description, summary (each claim beside its published
  value and verdict, when there are), figures, results table, config."""
  parts = [
    _head(title),
    f"<h1>{html.escape(title)}</h1>",
    f"<p>{html.escape(description)}</p>",
    "<h2>Summary</h2>",
    _table(claim_rows(summary, published or {}, "quantity", "value")),
    "<h2>Figures</h2>",
    _figures(figures),
    "<h2>Results</h2>",
    _table(table),
    "<h2>Config</h2>",
    f"<pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>",
    "</body></html>",
  ]
  write_atomic(path, "\n".join(parts))
  return path


def write_tour_report(
  path: Path,
  *,
  chapter: Sequence[tuple[str, str]],
  experiments: Sequence[Mapping[str, Any]],
  seconds: float,
  full: bool,
) -> Path:
  """Writes the tour's self-contained page: contents, then per chapter section its experiments
  (description, claims beside the published values, figures, or the error of one that failed),
  then an index of the run folders.

  Args:
    chapter: (section number, title) in the book's order; an experiment belongs to the first
      whose number prefixes its `section`, else to the last.
    experiments: dicts with name, title, section, description, config, folder (relative to the
      report), seconds, claims (rows of claim / ours / published / verdict, as `claim_rows`),
      figures (PNG paths), error
      (traceback text or None) and hessian (a classification dict with a title, or None).
  """
  groups: dict[str, list[Mapping[str, Any]]] = {number: [] for number, _ in chapter}
  for entry in experiments:
    number = next(
      (n for n, _ in chapter if entry["section"] == n or entry["section"].startswith(n + ".")),
      chapter[-1][0],
    )
    groups[number].append(entry)
  failed = [e["name"] for e in experiments if e["error"]]
  title = "jaxopt_study tour: chapter 8 of Deep Learning, run"
  parts = [
    _head(title),
    f"<h1>{html.escape(title)}</h1>",
    f"<p>{len(experiments)} experiments ({'full' if full else 'quick'} configs) in "
    f"{seconds / 60:.1f} min; "
    + (
      f"<span class='bad'>{len(failed)} failed: {html.escape(', '.join(failed))}</span>"
      if failed
      else "all ran."
    )
    + " Each section follows Goodfellow, Bengio &amp; Courville, <i>Deep Learning</i> (2016), "
    "chapter 8. Claims are this run's numbers; the published column gives the value or direction "
    "reported in the cited work.</p>",
    "<h2>What reproduced</h2>",
    _verdict_counts(experiments),
    _verdict_table(experiments),
    "<nav><h2>Contents</h2><ol>",
  ]
  for number, name in chapter:
    if groups[number]:
      links = ", ".join(
        f"<a href='#{html.escape(e['name'])}'{' class=bad' if e['error'] else ''}>"
        f"{html.escape(e['name'])}</a>"
        for e in groups[number]
      )
      label = f"{number} {name}" if number[0].isdigit() else name
      parts.append(f"<li><a href='#s{number}'>{html.escape(label)}</a>: {links}</li>")
  parts.append("</ol></nav>")
  for number, name in chapter:
    if not groups[number]:
      continue
    label = f"{number} {name}" if number[0].isdigit() else name
    parts.append(f"<h2 id='s{number}'>{html.escape(label)}</h2>")
    parts.extend(_tour_entry(entry) for entry in groups[number])
  parts += [
    "<h2 id='index'>Run folders</h2>",
    _table(
      [
        {
          "experiment": e["name"],
          "§": e["section"],
          "config": e["config"],
          "folder": e["folder"],
          "status": "failed" if e["error"] else "ok",
          "seconds": round(e["seconds"], 1),
        }
        for e in experiments
      ],
      links={"folder": "{}/report.html"},
    ),
    "</body></html>",
  ]
  write_atomic(path, "\n".join(parts))
  return path


def claim_rows(
  summary: Mapping[str, Any], published: Mapping[str, str], name: str, value: str
) -> list[dict[str, Any]]:
  """One row per quantity of a summary: its value, and the published value and the verdict (the
  summary's `verdicts`) where there are; then one row per judged claim that is not itself a
  quantity of the summary (its criterion reads others), valued "—", so that every verdict shows."""
  verdicts = summary.get("verdicts", {})
  rows = []
  for key, measured in summary.items():
    if key == "verdicts":
      continue
    row = {name: key, value: measured}
    if published:
      row["published"] = published.get(key, "")
    if verdicts:
      row["verdict"] = verdicts.get(key, "")
    rows.append(row)
  for claim, judged in verdicts.items():
    if claim not in summary:
      row = {name: claim, value: "—", "published": published.get(claim, ""), "verdict": judged}
      rows.append(row)
  return rows


VERDICT_RULE = (
  "A claim with an error bar over seeds is reproduced when its mean (a ratio's geometric mean, "
  "on the log scale) lies beyond t<sub>0.975, dof</sub> standard errors of its threshold on the "
  "published side (a 95% interval: 12.7 errors for 2 seeds, 4.30 for 3, 1.96 for many), and "
  "not reproduced when it lies beyond them on the other side (for a claim of k settings that "
  "can decide, over all its parts, one setting failing beyond t<sub>1 − 0.025/k, dof</sub>); "
  "it is inconclusive in between, with one seed, a missing or censored value, the same value "
  "from every one of fewer than six seeds, or a best learning rate at the edge of its grid. A "
  "claim without an error bar (an exact computation, or a fraction of seeds showing an event) "
  "is judged on its value. Where a claim compares methods each at its best learning rate, each "
  "seed is judged at the rate best on the other seeds (leave one seed out) or on fresh "
  "evaluation seeds, never at a rate its own result picked (a claim about where the best rate "
  "lies, as sweep_init_batch's, measures each seed's own)."
)


def _verdict_counts(experiments: Sequence[Mapping[str, Any]]) -> str:
  """How many judged claims each verdict has, and how verdicts are decided."""
  verdicts = [
    row["verdict"] for entry in experiments for row in entry["claims"] if row.get("verdict")
  ]
  counts = ", ".join(
    f"{verdicts.count(word)} {word}" for word in ("reproduced", "not reproduced", "inconclusive")
  )
  return f"<p>{len(verdicts)} claims: {counts}. {VERDICT_RULE}</p>"


def _verdict_table(experiments: Sequence[Mapping[str, Any]]) -> str:
  """Every judged claim of the tour: experiment, claim, verdict, published value."""
  rows = [
    {
      "experiment": entry["name"],
      "claim": row["claim"],
      "verdict": row["verdict"],
      "published": row.get("published", ""),
    }
    for entry in experiments
    for row in entry["claims"]
    if row.get("verdict")
  ]
  return _table(rows, links={"experiment": "#{}"}, css_class="claims")


def _tour_entry(entry: Mapping[str, Any]) -> str:
  name = html.escape(entry["name"])
  parts = [
    f"<section id='{name}'><h3>{html.escape(entry['title'])}</h3>",
    f"<p class='meta'>§{html.escape(entry['section'])} · <code>{html.escape(entry['config'])}"
    f"</code> · {entry['seconds']:.0f} s · <a href='{html.escape(entry['folder'])}/report.html'>"
    "full report and tables</a></p>",
  ]
  if entry["description"]:
    parts.append(f"<p>{html.escape(entry['description'])}</p>")
  if entry["error"]:
    parts.append(
      "<div class='error'><b>This experiment failed.</b>"
      f"<pre>{html.escape(entry['error'])}</pre></div></section>"
    )
    return "\n".join(parts)
  parts.append(_table(entry["claims"], css_class="claims"))
  if entry["hessian"]:
    verdict = dict(entry["hessian"])
    parts.append(f"<h4>{html.escape(verdict.pop('title'))}</h4>")
    parts.append(_table([{"quantity": k, "value": v} for k, v in verdict.items()]))
  parts += [_figures(entry["figures"]), "</section>"]
  return "\n".join(parts)


def _head(title: str) -> str:
  return (
    "<!doctype html><html><head><meta charset='utf-8'>"
    "<meta name='viewport' content='width=device-width, initial-scale=1'>"
    f"<title>{html.escape(title)}</title>"
    "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;"
    "padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;font-size:13px;"
    "margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;"
    "vertical-align:top}td:first-child,th:first-child,.claims td{text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%;margin:0.5em 0}figure{margin:0}"
    ".figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:1em}"
    "pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}"
    "section{border-top:1px solid #ddd;margin-top:1.5em}.meta{color:#666;font-size:13px}"
    ".bad{color:#b00020}.error{background:#fdecee;border-left:4px solid #b00020;padding:0.5em}"
    "</style></head><body>"
  )


def _figures(figures: Sequence[Path]) -> str:
  """The PNG files embedded as base64 images, in a responsive grid."""
  parts = ["<div class='figs'>"]
  for figure in figures:
    encoded = base64.b64encode(Path(figure).read_bytes()).decode("ascii")
    parts.append(
      f"<figure><img alt='{html.escape(Path(figure).stem)}' "
      f"src='data:image/png;base64,{encoded}'></figure>"
    )
  parts.append("</div>")
  return "".join(parts)


def _table(
  rows: Sequence[Mapping[str, Any]],
  links: Mapping[str, str] | None = None,
  css_class: str | None = None,
) -> str:
  """An HTML table of dict rows; `links` maps a column to an href pattern for its cells."""
  if not rows:
    return "<p>(none)</p>"
  columns = list(dict.fromkeys(k for row in rows for k in row))
  head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
  body = "".join(
    "<tr>" + "".join(_cell(row.get(c, ""), (links or {}).get(c)) for c in columns) + "</tr>"
    for row in rows
  )
  attribute = f" class='{css_class}'" if css_class else ""
  return f"<table{attribute}><tr>{head}</tr>{body}</table>"


def _cell(value: Any, link: str | None) -> str:
  text = html.escape(_format(value))
  if link:
    text = f"<a href='{html.escape(link.format(value))}'>{text}</a>"
  return f"<td>{text}</td>"


def _format(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, Mapping):
    return ", ".join(f"{k}: {_format(v)}" for k, v in value.items())
  if isinstance(value, list | tuple):
    return "[" + ", ".join(_format(v) for v in value) + "]"
  return str(value)
