"""The restore family's objective: DeOldify's NoGAN schedule as phases, on fastai's losses.

Phases, by step (s = step, g = model.g_pretrain_steps, d = model.d_pretrain_steps):
    Gpre   s < g        G alone on the feature loss of G(crappified x) against x
    Dpre   s < g + d    the critic alone: (BCE(D(x), 1) + BCE(D(G(x̃)), 0)) / 2 on every
                        position of its logit map, G's outputs detached
    D / G  after        the GAN phase, one player per step as fastai's AdaptiveGANSwitcher
                        decides: it starts with the critic and trains it until its loss is
                        below model.critic_threshold (0.65), then G for one step, then the
                        critic again. G's loss: gan_weights[0] · BCE(D(G(x̃)), 1) +
                        gan_weights[1] · feature loss (fastai's 1 : 50).
The switcher's mode is saved in the objective's state, so a resume is exact in any phase. The
pretrained encoder of G is frozen for the first model.encoder_frozen_steps steps.

Feature loss (fastai's FeatureLoss, lesson 7): L1 on pixels + Σ wᵢ · L1 on features +
Σ wᵢ² · g · L1 on their Gram matrices, wᵢ = 5, 15, 2. fastai takes the features of VGG16-BN
before three of its poolings; VGG weights cannot be downloaded here, so this takes the
first three stages of the offline EfficientNet-Lite0 (strides 4, 8, 16; 24, 40, 112 channels:
edges, textures, parts, as those VGG layers): it is 13 MB, takes [-1, 1] images as ganvas
holds them, and runs at any side ≥ 32 (smaller images are upsampled to 32), where the FID
Inception wants 299 px and 87 MB. Frozen, in eval mode, not saved with checkpoints; its
SHA-256 is, so a resume on other weights is refused.

Adapted to this network (VGG's feature and Gram magnitudes are not EfficientNet's), from
measurements on scikit-image's astronaut, coffee, chelsea and rocket at 64 px against
themselves halved and re-enlarged, where the pixel L1 is 0.057: each stage's features are
divided by FEATURE_SCALE, which makes each unweighted feature term equal that pixel L1, and
the Gram factor 5e3 becomes 200 (model.gram_weight); there, the weighted terms come to pixel
0.057, features 1.26 and Gram 4.26 (benchmarks/README.md has the command).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganvas.errors import CheckpointError, ConfigError
from ganvas.objectives.base import Phase, TrainingParts, reals_and_fakes

G_PRE, D_PRE, D_MAIN, G_MAIN = "Gpre", "Dpre", "D", "G"
MIN_FEATURE_SIDE = 32
FEATURE_SCALE = (54.0, 50.0, 51.0, 31.0)  # EfficientNet-Lite0 stages 1..4 (docstring)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] → [N, C, C], normalised by C·H·W (fastai's)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class FeatureLoss(nn.Module):
    """output, target [N, C, H, W] in [-1, 1] → (loss, its terms detached)."""

    def __init__(self, pixel_weight: float, feature_weights: tuple[float, ...],
                 gram_weight: float) -> None:  # fmt: skip
        super().__init__()
        from ganvas.models.features import EfficientNetPyramid, weights_fingerprint

        self.network = EfficientNetPyramid(input_side=0)  # frozen, always in eval mode
        self.fingerprint = weights_fingerprint(self.network)
        self.pixel_weight, self.gram_weight = pixel_weight, gram_weight
        self.feature_weights = tuple(feature_weights)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if min(images.shape[-2:]) < MIN_FEATURE_SIDE:
            images = F.interpolate(images, size=(MIN_FEATURE_SIDE, MIN_FEATURE_SIDE),
                                   mode="bilinear", align_corners=False)  # fmt: skip
        out, x = [], images
        for stage, scale in zip(self.network.stages[: len(self.feature_weights)], FEATURE_SCALE):
            x = stage(x)
            out.append(x / scale)
        return out

    def forward(self, output: torch.Tensor, target: torch.Tensor):
        with torch.no_grad():
            wanted = self.features(target)
        got = self.features(output)
        pixel = F.l1_loss(output, target)
        feature = sum(w * F.l1_loss(a, b) for w, a, b in zip(self.feature_weights, got, wanted))
        gram = sum(w**2 * self.gram_weight * F.l1_loss(gram_matrix(a), gram_matrix(b))
                   for w, a, b in zip(self.feature_weights, got, wanted))  # fmt: skip
        loss = self.pixel_weight * pixel + feature + gram
        return loss, {"loss_pixel": pixel.detach(), "loss_feature": feature.detach(),
                      "loss_gram": gram.detach()}  # fmt: skip


def critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """fastai's: (BCE(real, 1) + BCE(fake, 0)) / 2 over every logit."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return (real + fake) / 2


def critic_logits(parts: TrainingParts, images: torch.Tensor) -> torch.Tensor:
    """The critic's logits [N, L] on `images` as it sees them (through the D-input pipeline)."""
    return parts.D.logits(parts.d_input(images))


class RestoreObjective:
    def __init__(self, parts: TrainingParts) -> None:
        from ganvas.training.schedules import FixedSchedule

        self.parts = parts
        m = self.model = parts.config.model
        total = FixedSchedule(parts.config, len(parts.feed.sampler.images)).total_steps
        if m.g_pretrain_steps + m.d_pretrain_steps > total:
            raise ConfigError(
                f"model.g_pretrain_steps={m.g_pretrain_steps} + model.d_pretrain_steps="
                f"{m.d_pretrain_steps} exceed the run's {total} steps (train.steps): lower "
                "them or train longer"
            )
        device = next(parts.G.parameters()).device
        self.feature_loss = FeatureLoss(m.pixel_weight, m.feature_weights,
                                        m.gram_weight).to(device)  # fmt: skip
        self.g_pre, self.d_pre = Phase(G_PRE, "G"), Phase(D_PRE, "D")
        self.d_main, self.g_main = Phase(D_MAIN, "D"), Phase(G_MAIN, "G")
        self.gen_mode = False  # the switcher: GAN phase starts with the critic
        self._critic_loss: torch.Tensor | None = None

    # --- The loop's interface ----------------------------------------------------------------

    def phases(self) -> list[Phase]:
        return [self.g_pre, self.d_pre, self.d_main, self.g_main]

    def phase_name(self, step: int) -> str:
        """'Gpre', 'Dpre' or 'GAN': the part of the NoGAN schedule `step` belongs to."""
        m = self.model
        if step < m.g_pretrain_steps:
            return G_PRE
        if step < m.g_pretrain_steps + m.d_pretrain_steps:
            return D_PRE
        return "GAN"

    def phases_due(self, step: int) -> list[Phase]:
        self.parts.G.set_encoder_trainable(step >= self.model.encoder_frozen_steps)
        name = self.phase_name(step)
        if name == G_PRE:
            return [self.g_pre]
        if name == D_PRE:
            return [self.d_pre]
        return [self.g_main if self.gen_mode else self.d_main]

    def loss(self, phase: Phase) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase.name == G_PRE:
            return self._pretrain_loss()
        if phase.name in (D_PRE, D_MAIN):
            return self._critic_loss_of_batch()
        return self._generator_loss()

    def after_phase(self, phase: Phase) -> None:
        """fastai's AdaptiveGANSwitcher (gen_thresh None, critic_thresh 0.65)."""
        if phase is self.g_main:
            self.gen_mode = False
        elif phase is self.d_main and float(self._critic_loss) < self.model.critic_threshold:
            self.gen_mode = True

    def state_dict(self) -> dict[str, Any]:
        return {"gen_mode": self.gen_mode, "loss_network_sha256": self.feature_loss.fingerprint}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("loss_network_sha256")
        if saved is not None and saved != self.feature_loss.fingerprint:
            raise CheckpointError(
                "this run's feature loss used other EfficientNet-Lite0 weights than the installed "
                "ones (SHA-256 differs); install the same weights file or point "
                "GANVAS_EFFICIENTNET_LITE0_WEIGHTS at it"
            )
        self.gen_mode = bool(state.get("gen_mode", False))

    # --- The phases ----------------------------------------------------------------------------

    def _pretrain_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch, restored, _ = reals_and_fakes(self.parts, keep_graph=True)
        loss, terms = self.feature_loss(restored, batch["image"])
        return loss, {"loss_g": loss.detach(), **terms}

    def _critic_loss_of_batch(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.parts
        batch, restored, _ = reals_and_fakes(p, keep_graph=False)
        real_logits = critic_logits(p, batch["image"])
        fake_logits = critic_logits(p, restored.detach())
        p.d_input.observe_real_logits(real_logits.detach().mean(1))
        loss = critic_loss(real_logits, fake_logits)
        self._critic_loss = loss.detach()
        return loss, {"loss_d": loss.detach(), "score_real": real_logits.detach().mean(),
                      "score_fake": fake_logits.detach().mean()}  # fmt: skip

    def _generator_loss(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.parts
        batch, restored, _ = reals_and_fakes(p, keep_graph=True)
        content, terms = self.feature_loss(restored, batch["image"])
        fake_logits = critic_logits(p, restored)
        adversarial = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        w_adv, w_content = self.model.gan_weights
        loss = w_adv * adversarial + w_content * content
        return loss, {"loss_g": loss.detach(), "loss_g_gan": adversarial.detach(), **terms}
