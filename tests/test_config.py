"""Config loading and `--set` overrides: typed, named errors, nothing silently accepted."""

from pathlib import Path

import pytest

from jaxopt_study.config import ConfigError, apply_overrides, load_config
from jaxopt_study.experiment import prepare

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


def test_a_model_augment_block_on_the_digits_gets_their_standardization():
  """`model.augment = {...}` in a config: `Augment` maps the standardized digits back to pixels
  with the statistics of the config's own split, and two equal blocks share one `Problem`."""
  import jax.numpy as jnp
  import numpy as np

  from jaxopt_study import config as config_lib
  from jaxopt_study import problem as problem_lib
  from jaxopt_study import regularization

  config = load_config(CONFIGS / "optimizers_quick.py")
  config.unlock()
  config.data.split_seed = 3
  config.model.augment = {"rate": 1.0, "max_shift": 1, "max_rotation": 0.0}
  problem = config_lib.build_problem(config)
  assert config_lib.build_problem(config) is problem
  pure = problem_lib.pure(problem)
  module = pure.module(*pure.initial(0))
  mean, std = regularization.digits_standardization(config.data.test_fraction, 3)
  assert module.augment.standardization == (mean, std)
  assert mean != regularization.digits_standardization(config.data.test_fraction, 0)[0]
  x = jnp.asarray(problem.train_data[0][:4])
  module.eval()
  np.testing.assert_array_equal(module.augment(x), x)  # eval mode: the identity


def test_an_optional_field_can_be_switched_off_and_a_none_field_set():
  """`--set checkpoint_every=None` was refused ("expected int"), so an optional setting could not
  be turned off from the command line; a field that is None takes any value (the experiment's
  check judges it, before compiling); a block cannot become None."""
  config = apply_overrides(load_config(CONFIGS / "sweep_init_batch.py"), ["checkpoint_every=None"])
  assert config.checkpoint_every is None
  assert apply_overrides(config, ["checkpoint_every=100"]).checkpoint_every == 100
  assert apply_overrides(config, ["checkpoint_every=ten"]).checkpoint_every == "ten"
  with pytest.raises(ConfigError, match="model=None: expected ConfigDict"):
    apply_overrides(config, ["model=None"])


def test_set_adds_a_field_a_sweep_config_may_leave_out():
  """`--set l2_penalty=...` on a sweep config without the field was refused as unknown, though a
  sweep config takes it; so was an optimizer hyperparameter left at its default. Such fields are
  added (and judged by the sweep's check: an optimizer's unknown hyperparameter is refused by
  name); a misspelt field, or one the experiment does not take, is still refused."""
  quick = CONFIGS / "sweep_init_batch_quick.py"
  assert "l2_penalty" not in load_config(quick) and "momentum" not in load_config(quick).optimizer
  overrides = ["l2_penalty=0.001", "optimizer.name=momentum", "optimizer.momentum=0.5"]
  config = prepare(quick, overrides).config
  assert config.l2_penalty == 0.001 and config.optimizer.momentum == 0.5
  with pytest.raises(ConfigError, match="unknown config field 'l2_penallty'"):
    prepare(quick, ["l2_penallty=0.001"])
  with pytest.raises(ConfigError, match="optimizer 'sgd' has no hyperparameter b7"):
    prepare(quick, ["optimizer.b7=0.5"])
  with pytest.raises(ConfigError, match="unknown config field 'patience'"):
    prepare(CONFIGS / "lr_schedules_quick.py", ["patience=3"])


def test_set_problem_records_a_relative_file_from_the_working_directory(tmp_path, monkeypatch):
  """`--set problem=my_problem.py:make` was recorded relative, so that spectrum or a resume from
  another folder could not find it (or found another file of that name)."""
  monkeypatch.chdir(tmp_path)
  config = load_config(CONFIGS / "sweep_init_batch_quick.py")
  config = apply_overrides(config, ["problem=my_problem.py:make"], optional=("problem",))
  assert config.problem == f"{tmp_path.resolve() / 'my_problem.py'}:make"
  assert apply_overrides(config, ["problem=pkg.module:make"]).problem == "pkg.module:make"
