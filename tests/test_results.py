"""Run folders: resuming a member from what an earlier run saved."""

import numpy as np

from jaxopt_study.results import RunDir, load_or_compute


def test_a_member_is_computed_once_then_read_back(tmp_path):
  calls = []

  def compute():
    calls.append(1)
    return {"loss": 0.25}, {"m/params": np.arange(3.0)}

  run_dir = RunDir(tmp_path, {"seed": 0})
  run_dir.open()
  first = load_or_compute(run_dir, "m", compute)
  again = load_or_compute(RunDir(tmp_path, {"seed": 0}), "m", compute)
  assert calls == [1]
  assert again[0] == first[0] == {"loss": 0.25}
  np.testing.assert_array_equal(again[1]["m/params"], [0.0, 1.0, 2.0])
  assert load_or_compute(None, "m", compute)[0] == {"loss": 0.25} and calls == [1, 1]
