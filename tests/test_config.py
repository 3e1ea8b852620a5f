"""Config loading and `--set` overrides: typed, named errors, nothing silently accepted."""

from pathlib import Path

import pytest

from jaxopt_study.config import ConfigError, apply_overrides, load_config

CONFIGS = Path(__file__).parents[1] / "configs"


def test_overrides_are_parsed_with_the_fields_type():
  config = apply_overrides(
    load_config(CONFIGS / "optimizers.py"),
    [
      "steps=300",
      "model.width=16",
      "optimizers.adam.learning_rate=[0.01, 0.1]",
      "model.batchnorm=True",
      "optimizers.sgd.learning_rate=[1]",
      "model.init_scale=2",
    ],
  )
  assert config.steps == 300 and config.model.width == 16 and config.model.batchnorm is True
  assert list(config.optimizers.adam.learning_rate) == [0.01, 0.1]
  assert config.model.init_scale == 2.0 and isinstance(config.model.init_scale, float)


def test_quick_config_derives_from_the_full_one():
  full, quick = load_config(CONFIGS / "optimizers.py"), load_config(CONFIGS / "optimizers_quick.py")
  assert quick.steps < full.steps
  assert quick.optimizers.to_dict() == full.optimizers.to_dict()


@pytest.mark.parametrize(
  "override, culprit",
  [
    ("stepz=3", "stepz"),
    ("model.widht=3", "model.widht"),
    ("modle.width=3", "modle"),
    ("steps=abc", "steps"),
    ("model.batchnorm=1", "model.batchnorm"),
    ("steps", "KEY=VALUE"),
    ("model=3", "model"),
  ],
)
def test_bad_overrides_name_the_field(override, culprit):
  with pytest.raises(ConfigError, match=culprit):
    apply_overrides(load_config(CONFIGS / "optimizers.py"), [override])


def test_missing_config_file_is_named(tmp_path):
  with pytest.raises(ConfigError, match="nope.py"):
    load_config(tmp_path / "nope.py")
