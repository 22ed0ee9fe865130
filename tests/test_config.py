import pytest

from ganvas.config import ConfigError, config_from_dict, load_config, parse_set, preset_names
from ganvas.models.registry import family_config_class


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_validates_and_round_trips(name):
    cfg = load_config(preset=name)
    assert cfg.description, f"preset {name} should say what it is"
    assert isinstance(cfg.model, family_config_class(cfg.model.family))
    import yaml

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
