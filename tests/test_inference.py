import numpy as np
import pytest
import torch
from torch import nn

from ganvas.errors import ConfigError
from ganvas.inference import (
    latents,
    pick_generator,
    resolve_device,
    run_generator,
    to_uint8,
    to_uint8_nhwc,
)


def test_to_uint8_maps_minus_one_to_one_onto_0_to_255_and_clamps():
    x = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 1, 7)
    out = to_uint8(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 1, 1, 7)
    # 127.5 and 63.75 etc.: (x + 1) · 127.5, rounded half to even
    assert out.flatten().tolist() == [0, 0, 64, 128, 191, 255, 255]


def test_to_uint8_nhwc_is_the_same_values_channels_last_in_numpy():
    x = torch.rand(2, 3, 4, 5) * 2 - 1
    nhwc = to_uint8_nhwc(x)
    assert isinstance(nhwc, np.ndarray) and nhwc.shape == (2, 4, 5, 3)
    assert np.array_equal(nhwc, to_uint8(x).permute(0, 2, 3, 1).numpy())


class Recorder(nn.Module):
    """A generator that draws z onto a 2×2 image scaled past [-1, 1], noting its mode and
    the size of each batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(3.0))
        self.calls: list[tuple[int, bool, bool]] = []

    def forward(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        self.calls.append((len(z), self.training, torch.is_grad_enabled()))
        shift = 0 if c is None else c.float()[:, None]
        return (self.scale * z[:, :4] + shift).reshape(-1, 1, 2, 2)


def test_run_generator_runs_in_chunks_in_eval_mode_without_grad_and_restores_the_mode():
    G = Recorder().train()
    z = latents(10, 4, seed=1)
    img = run_generator(G, z, batch_size=4)
    assert [n for n, _, _ in G.calls] == [4, 4, 2]
    assert not any(training or grad for _, training, grad in G.calls)
    assert G.training  # restored
    assert img.dtype == torch.float32 and img.device.type == "cpu" and img.shape == (10, 1, 2, 2)
    assert img.min() == -1 and img.max() == 1  # clamped
    assert torch.equal(img, (3 * z).clamp(-1, 1).reshape(10, 1, 2, 2))
    labels = torch.arange(10) % 2
    shifted = run_generator(G.eval(), z, labels, batch_size=3)
    assert not G.training
    assert torch.equal(shifted, (3 * z + labels[:, None]).clamp(-1, 1).reshape(10, 1, 2, 2))
    with pytest.raises(ValueError, match="3 labels for 10"):
        run_generator(G, z, labels[:3])


def test_latents_are_seeded_standard_normal_on_the_cpu():
    z = latents(3, 8, seed=5)
    assert z.shape == (3, 8) and z.device.type == "cpu"
    assert torch.equal(z, latents(3, 8, seed=5)) and not torch.equal(z, latents(3, 8, seed=6))
    assert torch.equal(z, torch.randn(3, 8, generator=torch.Generator().manual_seed(5)))


def test_pick_generator_prefers_the_moving_average():
    G, G_ema = nn.Linear(1, 1), nn.Linear(1, 1)
    assert pick_generator(G, G_ema) is G_ema and pick_generator(G, None) is G


def test_resolve_device():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device() == resolve_device("auto")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ConfigError, match="device='tpu' is not a device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(ConfigError, match="CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
