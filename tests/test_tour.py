"""`jaxopt-study tour`: order, failures, claims beside published values, a report that renders.

Two tiny stand-in experiments (in a temporary repository layout) test the tour's own logic fast;
one real tour of two shipped experiments tests it end to end, with the Hessian classification.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jaxopt_study import cli, tour

pytestmark = pytest.mark.slow  # runs experiments, the tour or the CLI end to end

CONFIG = """
import ml_collections

def get_config():
  return ml_collections.ConfigDict({{"experiment": "{name}", "value": {value}}})
"""

EXPERIMENT = """
from pathlib import Path

import matplotlib.pyplot as plt

from jaxopt_study.experiment import Experiment, Results, above


class StandIn(Experiment):
  NAME = "{name}"
  TITLE = "Stand-in {name}"
  SECTION = "{section}"
  DESCRIPTION = "A stand-in experiment that {what}."
  PUBLISHED = {{"doubled": "twice the value (a test)"}}
  CRITERIA = {{"doubled": above("doubled", 8)}}

  def check_more(self, config):
    if config.value < 0:
      raise ValueError(f"value={{config.value}}: must be >= 0")

  def run(self, config, members, progress):
    if {fails}:
      raise RuntimeError("the stand-in failed on purpose")
    row = {{"member": "only", "value": config.value}}
    history = [{{"member": "only", "step": 0, "metric": "value", "value": config.value}}]
    return Results([row], history)

  def summarize(self, config, results):
    return {{"doubled": 2 * results.table[0]["value"], "plain": 1}}

  def plot(self, out_dir):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    path = Path(out_dir) / "line.png"
    fig.savefig(path)
    plt.close(fig)
    return [path]
"""

STAND_INS = {  # name: (section, fails, value)
  "zeta_late": ("8.7.3", False, 3),
  "alpha_early": ("8.1.2", False, 5),
  "broken": ("8.2.4", True, 1),
}


def chromium() -> str | None:
  return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def stand_in_repo(tmp_path_factory) -> Path:
  root = tmp_path_factory.mktemp("repo")
  (root / "configs").mkdir()
  (root / "experiments").mkdir()
  for name, (section, fails, value) in STAND_INS.items():
    what = "fails" if fails else "doubles its value"
    (root / "configs" / f"{name}_quick.py").write_text(CONFIG.format(name=name, value=value))
    (root / "configs" / f"{name}.py").write_text(CONFIG.format(name=name, value=10 * value))
    (root / "experiments" / f"{name}.py").write_text(
      EXPERIMENT.format(name=name, section=section, what=what, fails=fails)
    )
  return root


@pytest.fixture(scope="module")
def stand_in_tour(stand_in_repo) -> tuple[int, Path]:
  out = stand_in_repo / "tour"
  code = cli.main(["tour", "--configs", str(stand_in_repo / "configs"), "--out", str(out)])
  return code, out


def test_a_failure_does_not_stop_the_tour_but_sets_the_exit_code(stand_in_tour, capsys):
  code, out = stand_in_tour
  assert code == 1
  for name in ("alpha_early", "zeta_late"):
    assert (
      json.loads((out / name / "summary.json").read_text())["doubled"] == 2 * STAND_INS[name][2]
    )
  html = (out / "report.html").read_text()
  assert "This experiment failed." in html and "the stand-in failed on purpose" in html
  assert "1 failed: broken" in html


def test_sections_follow_the_chapter_with_claims_beside_published_values(stand_in_tour):
  _, out = stand_in_tour
  html = (out / "report.html").read_text()
  headings = re.findall(r"<h2 id='s([^']+)'>", html)
  assert headings == ["8.1", "8.2", "8.7"]
  assert html.index("id='alpha_early'") < html.index("id='broken'") < html.index("id='zeta_late'")
  claims = re.search(r"id='alpha_early'.*?<table class='claims'>(.*?)</table>", html, re.S)[1]
  assert "<td>doubled</td><td>10</td><td>twice the value (a test)</td><td>reproduced</td>" in claims
  assert "<td>plain</td><td>1</td><td></td><td></td>" in claims
  assert html.count("data:image/png;base64,") == 2  # the two that ran; none for the failure
  for name in STAND_INS:
    assert f"href='{name}/report.html'" in html


def test_the_verdicts_of_every_experiment_head_the_report(stand_in_tour):
  """CRITERIA judge each summary (doubled > 8): summary.json keeps the verdicts, and one table
  at the top of the tour lists them before the contents."""
  _, out = stand_in_tour
  for name, expected in (("alpha_early", "reproduced"), ("zeta_late", "not reproduced")):
    summary = json.loads((out / name / "summary.json").read_text())
    assert summary["verdicts"] == {"doubled": expected}
  html = (out / "report.html").read_text()
  top = html[html.index("What reproduced") : html.index("<h2>Contents")]
  assert "2 claims: 1 reproduced, 1 not reproduced, 0 inconclusive." in top
  assert "beyond t<sub>0.975, dof</sub> standard errors" in top  # how they are decided
  assert "<a href='#alpha_early'>alpha_early</a></td><td>doubled</td><td>reproduced</td>" in top
  assert "<a href='#zeta_late'>zeta_late</a></td><td>doubled</td><td>not reproduced</td>" in top
  single = (out / "zeta_late" / "report.html").read_text()
  assert "<td>doubled</td><td>6</td><td>twice the value (a test)</td><td>not reproduced</td>" in (
    single
  )


def test_full_and_only_choose_the_configs(stand_in_repo, tmp_path):
  configs = stand_in_repo / "configs"
  out = tmp_path / "tour"
  assert cli.main(["tour", "--configs", str(configs), "--full", "--only", "zeta_late",
                   "--out", str(out), "--no-progress"]) == 0  # fmt: skip
  assert [p.name for p in out.iterdir() if p.is_dir()] == ["zeta_late"]
  assert json.loads((out / "zeta_late" / "summary.json").read_text())["doubled"] == 60


def test_unknown_names_are_refused_before_anything_runs(stand_in_repo, tmp_path, capsys):
  out = tmp_path / "tour"
  args = ["tour", "--configs", str(stand_in_repo / "configs"), "--out", str(out)]
  assert cli.main([*args, "--only", "alpha_early,nope"]) == 2
  assert "--only nope: no such experiment" in capsys.readouterr().err
  for blank in ("", " ", ","):  # an empty shell variable once ran every experiment
    assert cli.main([*args, "--only", blank]) == 2
    assert "names no experiment" in capsys.readouterr().err
  assert not out.exists()
  empty = tmp_path / "empty"
  empty.mkdir()
  assert cli.main(["tour", "--configs", str(empty), "--out", str(out)]) == 2
  assert "no *_quick.py configs" in capsys.readouterr().err


def test_out_must_be_a_tours_folder_or_new(stand_in_repo, tmp_path, capsys):
  """A tour into a run's folder replaced that run's report.html, and into a file ended in a
  FileExistsError traceback: both refused before anything runs; a tour's own folder is taken
  again (its experiments resume)."""
  args = ["tour", "--configs", str(stand_in_repo / "configs"), "--only", "zeta_late"]
  run = tmp_path / "run"
  run.mkdir()
  (run / "config.json").write_text("{}")
  (run / "report.html").write_text("the run's own report")
  assert cli.main([*args, "--out", str(run)]) == 2
  assert "run holds config.json, which is not a tour's" in capsys.readouterr().err
  assert (run / "report.html").read_text() == "the run's own report"
  afile = tmp_path / "afile"
  afile.write_text("")
  assert cli.main([*args, "--out", str(afile)]) == 2
  assert "is a file: a tour writes a folder" in capsys.readouterr().err
  out = tmp_path / "tour"
  assert cli.main([*args, "--out", str(out), "--no-progress"]) == 0
  assert cli.main([*args, "--out", str(out), "--no-progress"]) == 0


def test_the_repository_tour_finds_every_quick_config():
  found = tour.find_configs(tour.default_configs())
  shipped = sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("*_quick.py"))
  assert sorted(p.name for p in found.values()) == shipped and "optimizers" in found


@pytest.fixture(scope="module")
def real_tour(tmp_path_factory) -> Path:
  """Two shipped experiments: the optimizer comparison (whose best network the tour classifies)
  and the long-term dependencies, as `jaxopt-study tour --only` runs them."""
  out = tmp_path_factory.mktemp("real") / "tour"
  assert cli.main(["tour", "--only", "long_term_dependencies,optimizers", "--out", str(out),
                   "--no-progress"]) == 0  # fmt: skip
  return out


def test_the_real_tour_reports_claims_and_the_hessian_verdict(real_tour):
  html = (real_tour / "report.html").read_text()
  assert re.findall(r"<h2 id='s([^']+)'>", html) == ["8.2", "8.5"]
  verdict = json.loads((real_tour / "optimizers" / "classification-exact.json").read_text())
  assert verdict["method"] == "exact" and verdict["kind"] in {
    "minimum",
    "saddle",
    "degenerate",
    "not_critical",
  }
  assert f"<td>kind</td><td>{verdict['kind']}</td>" in html
  summary = json.loads((real_tour / "optimizers" / "summary.json").read_text())
  assert f"<td>best_optimizer</td><td>{summary['best_optimizer']}</td>" in html
  assert "all ran." in html


PROBE = """<script>window.addEventListener('load', () => {
  const images = [...document.images];
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.title = `IMAGES ${loaded}/${images.length}`;
});</script></body>"""


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (apt install chromium)")
@pytest.mark.parametrize("which", ["stand_in_tour", "real_tour"])
def test_the_report_renders_headless_with_every_figure_loaded(which, request, tmp_path):
  """Chromium opens a copy of the report (only a probe script added) from nothing but the file."""
  out = request.getfixturevalue(which)
  out = out[1] if isinstance(out, tuple) else out
  html = (out / "report.html").read_text()
  page = tmp_path / "probe.html"
  page.write_text(html.replace("</body>", PROBE))
  dom = subprocess.run(
    [
      chromium(),
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--virtual-time-budget=10000",
      "--dump-dom",
      page.as_uri(),
    ],  # fmt: skip
    capture_output=True,
    text=True,
    timeout=120,
    check=True,
  ).stdout
  expected = html.count("<img ")
  assert expected > 0
  assert f"<title>IMAGES {expected}/{expected}</title>" in dom


def test_tour_helps(capsys):
  with pytest.raises(SystemExit):
    cli.main(["tour", "--help"])
  text = capsys.readouterr().out
  assert all(option in text for option in ("--only", "--full", "--out", "--configs"))
