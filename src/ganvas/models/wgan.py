"""WGAN (Arjovsky, Chintala & Bottou, 2017): DCGAN's networks trained as a Wasserstein critic.

The architecture is DCGAN's: G is `ganvas.models.dcgan.Generator` unchanged. The critic has
DCGAN's discriminator shape (stride-2 4×4 convs, LeakyReLU(0.2), no norm on the first layer)
with a linear output: its score is an unbounded estimate of how real an image is, not a
probability, so nothing squashes it. The paper's DCGAN critic kept BatchNorm
(`critic_norm='batch'`); `critic_norm='none'` removes it, e.g. to pair with a gradient
penalty, which is computed per sample and breaks under batch statistics.

What makes it a WGAN is not in this file: weight clipping (every critic parameter into
[-0.01, 0.01] after each update), RMSProp at lr 5e-5 and 5 critic updates per G update are
training settings (loss, optim and train sections of the config), not model settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ganvas.errors import check
from ganvas.models.dcgan import DCGANConfig, Discriminator, Generator
from ganvas.models.registry import Family, register_family


@dataclass(frozen=True)
class WGANConfig(DCGANConfig):
    critic_norm: Literal["batch", "none"] = "batch"  # BatchNorm in the critic, as in the paper

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.critic_norm in ("batch", "none"),
            f"model.critic_norm={self.critic_norm!r} is not allowed; choose one of 'batch', 'none'",
        )


class Critic(Discriminator):
    """DCGAN's discriminator read as a critic: the same layers (BatchNorm optional), and its
    output is an unbounded score [N] (higher = judged more real), with no sigmoid anywhere."""

    def __init__(self, cfg: WGANConfig) -> None:
        super().__init__(cfg, batchnorm=cfg.critic_norm == "batch")


FAMILY = register_family(
    Family(
        name="wgan",
        config=WGANConfig,
        generator=Generator,
        discriminator=Critic,
        paper="Arjovsky, Chintala & Bottou 2017, arXiv:1701.07875",
    )
)
