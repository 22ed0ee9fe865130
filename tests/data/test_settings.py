"""PrepareSettings: every prepare option, checked once, in one frozen dataclass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import ganvas.data.prepare as prepare_module
from ganvas.cli import app
from ganvas.data.prepare import prepare_dataset
from ganvas.data.settings import PrepareSettings
from ganvas.data.store import load_dataset
from ganvas.errors import ConfigError


def test_command_line_spellings_are_normalised():
    settings = PrepareSettings(
        background="10,20,30",
        start="1:30",
        end="0:02:00.5",
        crop_scale="0.5, 1",
        mosaic="3x2",
        blur="10%",
        classes=["a,b", "c"],
        exclude_classes="d",
        labels="subfolders",
    )
    assert settings.background == (10, 20, 30)
    assert (settings.start, settings.end) == (90.0, 120.5)
    assert settings.crop_scale == (0.5, 1.0)
    assert settings.mosaic == (3, 2)
    assert settings.blur == "p10"
    assert settings.classes == ("a", "b", "c") and settings.exclude_classes == ("d",)
    assert PrepareSettings(background="red").background == (255, 0, 0)
    assert PrepareSettings(background=128).background == (128, 128, 128)
    assert PrepareSettings(mosaic="1x1").mosaic is None
    assert PrepareSettings(blur=100).blur == 100.0


def test_settings_are_frozen_and_updated_copies_are_checked_again():
    settings = PrepareSettings(size=32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.size = 16  # type: ignore[misc]
    smaller = settings.updated(size=16, dedupe=6)
    assert (smaller.size, smaller.dedupe, settings.size) == (16, 6, 32)
    assert settings.updated() is settings
    with pytest.raises(ConfigError, match="size must be between 8 and 4096, got 4"):
        settings.updated(size=4)


def test_unknown_setting_names_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        PrepareSettings().updated(max_per_clas=3)
    message = str(caught.value)
    assert "unknown prepare setting max_per_clas (did you mean max_per_class?)" in message
    assert all(name in message for name in PrepareSettings.names())


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"every": 0}, "every must be at least 1, got 0"),
        ({"start": "soon"}, "start must be a number"),
        ({"start": 5, "end": 2}, r"end \(2 s\) must come after start \(5 s\)"),
        ({"crop_scale": "0.9,0.1"}, "crop_scale must satisfy"),
        ({"crop_ratio": "1"}, "crop_ratio must be two numbers"),
        ({"mosaic": "five"}, "mosaic must look like RxC"),
        ({"mosaic": (0, 3)}, "mosaic rows and columns must be 1-64"),
        ({"blur": "p100"}, "blur percentile must be between 0 and 100"),
        ({"blur": "sharp"}, "blur must be a sharpness threshold"),
        ({"dedupe": 64}, "dedupe must be between 0 and 63"),
        ({"grayscale": "mono"}, "grayscale must be one of keep, drop, only, got 'mono'"),
        ({"random_crops": True}, "random_crops must be a whole number"),
        ({"background": "nocolour"}, "background must be"),
        ({"labels": "none", "exclude_classes": "x"}, "exclude_classes set, but labels is 'none'"),
    ],
)
def test_bad_values_name_the_option_and_what_is_allowed(options, match):
    with pytest.raises(ConfigError, match=match):
        PrepareSettings(**options)


def test_views_for_the_scan_and_the_selection():
    settings = PrepareSettings(size=32, mosaic="2x2", blur="p5", dedupe=4, seed=3)
    scan = settings.scan_settings()
    assert (scan.size, scan.mosaic, scan.seed, scan.measure) == (32, (2, 2), 3, True)
    filters = settings.filter_settings()
    assert (filters.blur, filters.blur_percentile, filters.dedupe) == (None, 5.0, 4)
    assert PrepareSettings().scan_settings().measure is False  # no filter: nothing to measure
    assert PrepareSettings(blur=50).filter_settings().blur == 50.0


def _folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 256, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"{i}.png")
    return src


def test_prepare_dataset_takes_settings_and_keyword_overrides(tmp_path):
    src = _folder(tmp_path)
    settings = PrepareSettings(size=16, workers=1, val_fraction=0.5)
    report = prepare_dataset(src, tmp_path / "a", settings, size=8, progress=False)
    dataset = load_dataset(tmp_path / "a")
    assert report.kept == 3 and dataset.resolution == 8
    assert len(dataset.manifest["splits"]["val"]) == 2  # the rest of `settings` still holds
    assert dataset.manifest["params"]["size"] == 8
    assert dataset.manifest["params"]["crop_ratio"] == [3 / 4, 4 / 3]
    with pytest.raises(ConfigError, match="unknown prepare setting sise"):
        prepare_dataset(src, tmp_path / "b", sise=8)
    with pytest.raises(TypeError, match="settings must be a PrepareSettings"):
        prepare_dataset(src, tmp_path / "c", 64)  # the old positional size
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_command_line_defaults_are_the_settings_defaults(tmp_path, monkeypatch):
    seen = []

    def capture(sources, out, settings, **run):
        seen.append(settings)
        raise KeyboardInterrupt  # stop before any work

    monkeypatch.setattr(prepare_module, "prepare_dataset", capture)
    result = CliRunner().invoke(app, ["prepare", str(tmp_path), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 130, result.output
    # The command's --crop-ratio default is typed as 0.75,1.3333, a hair below 4/3.
    assert seen == [PrepareSettings(crop_ratio=(0.75, 1.3333))]
