from pathlib import Path

import pytest
import yaml

from ganvas.config import (
    CONFIG_VERSION,
    ConfigError,
    config_from_dict,
    load_config,
    parse_set,
    preset_names,
    rename_key,
)
from ganvas.models.registry import family_config_class


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_validates_and_round_trips(name):
    cfg = load_config(preset=name)
    assert cfg.description, f"preset {name} should say what it is"
    assert isinstance(cfg.model, family_config_class(cfg.model.family))
    assert config_from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def test_dcgan_64_preset_holds_the_reference_recipe():
    cfg = load_config(preset="dcgan-64")
    assert cfg.model.resolution == 64
    assert cfg.optim.name == "adam" and cfg.optim.lr_g == 2e-4 and cfg.optim.betas == (0.5, 0.999)
    assert cfg.train.batch_size == 128


def test_overrides_are_typed():
    cfg = load_config(
        preset="dcgan-64",
        overrides=[
            "train.steps=500",
            "optim.lr_d=1e-4",
            "optim.betas=[0.0, 0.9]",
            "train.ema=true",
        ],
    )
    assert cfg.train.steps == 500 and isinstance(cfg.train.steps, int)
    assert cfg.optim.lr_d == pytest.approx(1e-4)
    assert cfg.optim.betas == (0.0, 0.9)
    assert cfg.train.ema is True


def test_unknown_key_names_it_and_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        load_config(preset="dcgan-64", overrides=["train.stpes=5"])
    message = str(err.value)
    assert "train.stpes" in message
    assert "did you mean train.steps" in message
    assert "batch_size" in message and "checkpoint_interval" in message


def test_unknown_model_key_lists_family_keys():
    with pytest.raises(ConfigError, match=r"model\.width.*g_width"):
        load_config(overrides=["model.width=3"])


@pytest.mark.parametrize(
    "assignment, fragment",
    [
        ("train.steps=abc", "train.steps='abc' must be an integer"),
        ("train.steps=0", "train.steps=0 must be >= 1"),
        ("optim.lr_g=-1", "optim.lr_g=-1.0 must be > 0"),
        ("optim.name=sgd", "choose one of 'adam', 'adamw', 'rmsprop'"),
        ("optim.betas=[0.5]", "must have 2 items"),
        ("train.ema=maybe", "must be true or false"),
        ("model.resolution=48", "power of two"),
        ("model.channels=2", "must be 1 or 3"),
        ("model.family=stylegan9", "not a known GAN family"),
        ("loss.name=hinged", "not a known loss"),
        ("train.device=tpu", "train.device='tpu'"),
    ],
)
def test_bad_values_are_reported_with_key_and_rule(assignment, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(preset="dcgan-32", overrides=[assignment])
    assert fragment in str(err.value)


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'dcgan-64'"):
        load_config(preset="dcgan64")


def test_config_file_and_set_layer_on_the_preset(tmp_path):
    file = tmp_path / "mine.yaml"
    file.write_text("train:\n  batch_size: 16\n  steps: 7\n")
    cfg = load_config(preset="dcgan-64", config_file=file, overrides=["train.steps=9"])
    assert cfg.train.batch_size == 16
    assert cfg.train.steps == 9
    assert cfg.model.resolution == 64


def test_broken_config_file_is_reported(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(config_file=file)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config_file=tmp_path / "missing.yaml")


def test_parse_set_requires_key_value():
    assert parse_set("train.steps=5") == ("train.steps", 5)
    with pytest.raises(ConfigError, match="key=value"):
        parse_set("train.steps")


OLD_RUNS = Path(__file__).parent / "fixtures" / "runs_v0"


def test_configs_are_saved_with_their_version_and_round_trip():
    tree = load_config(preset="dcgan-32").to_dict()
    assert next(iter(tree)) == "version" and tree["version"] == CONFIG_VERSION == 1
    assert config_from_dict(tree) == load_config(preset="dcgan-32")
    assert yaml.safe_load(load_config(preset="dcgan-32").to_yaml())["version"] == 1


@pytest.mark.parametrize("run", ["dcgan", "acgan", "progan"])
def test_config_files_without_a_version_are_version_0_and_load(run):
    tree = yaml.safe_load((OLD_RUNS / run / "config.yaml").read_text())
    assert "version" not in tree
    cfg = config_from_dict(tree)
    assert cfg.model.family == run and cfg.to_dict()["version"] == CONFIG_VERSION
    assert load_config(config_file=OLD_RUNS / run / "config.yaml") == cfg


def test_a_config_from_a_newer_ganvas_says_to_upgrade():
    tree = load_config(preset="dcgan-32").to_dict()
    with pytest.raises(ConfigError, match=r"version 2.*newer ganvas.*pip install -U ganvas"):
        config_from_dict({**tree, "version": CONFIG_VERSION + 1})
    with pytest.raises(ConfigError, match="whole number"):
        config_from_dict({**tree, "version": "one"})


def test_migrations_run_step_by_step_up_to_the_current_version(monkeypatch):
    import ganvas.config as config

    monkeypatch.setattr(config, "CONFIG_VERSION", 3)
    monkeypatch.setattr(config, "MIGRATIONS", {
        0: lambda tree: tree,
        1: config.rename_key("train.n_critic", "train.d_steps"),
        2: config.rename_key("train.d_steps", "train.critic_steps"),
    })  # fmt: skip
    assert config.migrate_config({"version": 1, "train": {"n_critic": 5}}) == {
        "version": 3, "train": {"critic_steps": 5}}  # fmt: skip
    assert config.migrate_config({"train": {"d_steps": 2}})["train"] == {"critic_steps": 2}


def test_rename_key_moves_a_value_across_sections_and_ignores_configs_without_it():
    move = rename_key("train.ema_decay", "ema.beta")
    tree = {"train": {"ema_decay": 0.99, "steps": 5}}
    assert move(tree) == {"train": {"steps": 5}, "ema": {"beta": 0.99}}
    assert move({"train": {"steps": 5}}) == {"train": {"steps": 5}}
    assert move({"model": "not a section"}) == {"model": "not a section"}


def test_steps_set_later_wins_over_a_presets_epochs(tmp_path):
    assert load_config(preset="cdcgan-64").train.epochs == 200
    train = load_config("cdcgan-64", overrides=["train.steps=4"]).train
    assert (train.steps, train.epochs) == (4, None)
    file = tmp_path / "short.yaml"
    file.write_text("train:\n  steps: 7\n")
    train = load_config("cdcgan-64", config_file=file).train
    assert (train.steps, train.epochs) == (7, None)
    # a layer that sets both keeps both (epochs then decides), and epochs alone is kept
    file.write_text("train:\n  steps: 7\n  epochs: 3\n")
    assert load_config("cdcgan-64", config_file=file).train.epochs == 3
    assert load_config("cdcgan-64", overrides=["train.batch_size=8"]).train.epochs == 200
    assert (
        load_config("cdcgan-64", overrides={"train.steps": 4, "train.epochs": 2}).train.epochs == 2
    )
    assert load_config(preset="cdcgan-64").replace(**{"train.steps": 9}).train.epochs is None


def test_a_section_set_to_a_value_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"model must be a section .*not 'dcgan'; did you mean "
                                          r"--set model.family=dcgan\?"):  # fmt: skip
        load_config(overrides=["model=dcgan"])
    with pytest.raises(ConfigError, match=r"model must be a section .*not 5$"):
        load_config(overrides=["model=5"])


def test_a_family_that_is_not_a_name_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"model.family=5 must be a family name; choose one of "
                                          r"acgan, .*dcgan"):  # fmt: skip
        load_config(overrides=["model.family=5"])


def test_overrides_may_be_one_string_and_other_types_are_refused():
    assert load_config(overrides="train.steps=12").train.steps == 12
    assert load_config(overrides=("train.steps=12", "train.seed=3")).train.seed == 3
    for wrong in (12, ["train.steps", 3], {"train.steps"}):
        with pytest.raises(ConfigError, match="overrides must be 'key=value'"):
            load_config(overrides=wrong)
