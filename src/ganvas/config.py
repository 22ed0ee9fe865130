"""Typed run configuration: preset YAML + `--config FILE` + `--set key=value`, validated.

A config is a tree of frozen dataclasses. Dictionaries from YAML files and command-line
overrides are merged first, then converted once; every unknown key, wrong type or bad value
raises `ConfigError` naming the key, the value and what is allowed.

Saved configs carry `version: CONFIG_VERSION`. One written by an older ganvas (no version:
0) is brought up to date by `MIGRATIONS`, one step at a time, before it is checked.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from ganvas.errors import ConfigError, check

__all__ = ["CONFIG_VERSION", "Config", "ConfigError", "check", "load_config"]

CONFIG_VERSION = 1  # the version of the config layout this ganvas writes

# The augmentations' names, here so that checking a config needs no torch (ganvas.augment
# implements them and its tests check that the lists agree).
DIFFAUGMENT_OPS = ("color", "translation", "cutout")
TRACKERS = ("tensorboard", "wandb", "mlflow")  # ganvas.experiments.trackers
ADA_PIPELINES = ("blit", "geom", "color", "bg", "bgc")  # b: blit, g: geometric, c: colour


def _check_schedule(schedule: tuple, key: str, valid_value: Any) -> None:
    steps = [step for step, _ in schedule]
    check(steps == sorted(steps) and len(set(steps)) == len(steps),
          f"{key}={[list(e) for e in schedule]} must list increasing steps")  # fmt: skip
    for step, value in schedule:
        check(step >= 0 and valid_value(value), f"{key}: entry [{step}, {value}] is out of range")


def scheduled_value(schedule: tuple[tuple[int, Any], ...], step: int, default: Any) -> Any:
    """The value of the last (from_step, value) entry with from_step <= step, else default."""
    value = default
    for from_step, scheduled in schedule:
        if from_step <= step:
            value = scheduled
    return value


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # dataset directory written by `ganvas prepare`
    split: Literal["train", "all"] = "train"  # 'train' leaves the validation split out
    hflip: bool = False  # random horizontal flips
    classes: tuple[str, ...] = ()  # train on these classes only (renumbered in this order)


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["adam", "adamw", "rmsprop"] = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam/AdamW only
    weight_decay: float = 0.0
    lr_schedule: tuple[tuple[int, float], ...] = ()  # ((step, factor), ...): lr = base · factor
    scheduler: Literal["none", "step", "cosine", "linear"] = "none"  # see schedules.lr_factor
    schedule_unit: Literal["steps", "epochs"] = "steps"  # unit of step_size and decay_start
    step_size: float = 1.0  # 'step': multiply by gamma every step_size units
    gamma: float = 0.1
    decay_start: float = 0.0  # 'linear': decay from here to the last step
    min_factor: float = 0.0  # 'cosine'/'linear': factor reached at the last step
    # The update's implementation (docs/speed.md): 'fused' one kernel, 'foreach' batched over
    # the parameters, 'off' one parameter at a time; 'auto' = fused on CUDA, else torch's own.
    fused: Literal["auto", "fused", "foreach", "off"] = "auto"

    def __post_init__(self) -> None:
        check(self.lr_g > 0, f"optim.lr_g={self.lr_g} must be > 0")
        check(self.lr_d > 0, f"optim.lr_d={self.lr_d} must be > 0")
        check(all(0 <= b < 1 for b in self.betas), f"optim.betas={self.betas} must lie in [0, 1)")
        check(self.weight_decay >= 0, f"optim.weight_decay={self.weight_decay} must be >= 0")
        _check_schedule(self.lr_schedule, "optim.lr_schedule", lambda v: v > 0)
        check(self.step_size > 0, f"optim.step_size={self.step_size} must be > 0")
        check(0 < self.gamma <= 1, f"optim.gamma={self.gamma} must lie in (0, 1]")
        check(self.decay_start >= 0, f"optim.decay_start={self.decay_start} must be >= 0")
        check(0 <= self.min_factor <= 1, f"optim.min_factor={self.min_factor} must lie in [0, 1]")


@dataclass(frozen=True)
class LossConfig:
    name: str = "nonsaturating"  # objective; see ganvas.losses.OBJECTIVES
    gp_weight: float = 0.0  # λ of the WGAN-GP penalty (‖∇D(x̂)‖ - 1)² on interpolates
    r1_weight: float = 0.0  # γ of the zero-centred penalty γ/2·E‖∇D(x)‖² on reals
    r2_weight: float = 0.0  # the same on fakes
    r_interval: int = 1  # lazy regularization: R1/R2 every N steps, in a phase of their own
    drift_weight: float = 0.0  # ε of the drift term ε·E[D(x)²]
    clip: float = 0.0  # WGAN weight clipping bound for D's parameters; 0 = off
    ortho_weight: float = 0.0  # BigGAN orthogonal regularization of G's weights
    aux_weight: float = 1.0  # weight of the class loss for families with a classifier head
    aux_fakes_in_d: bool = False  # also train D's class head on fakes (the ACGAN paper's L_C)
    real_label: tuple[float, float] = (1.0, 1.0)  # D's target for reals, uniform in the range
    fake_label: tuple[float, float] = (0.0, 0.0)  # ... and for fakes (label smoothing)
    flip_prob: float = 0.0  # chance that a D target is swapped with the other kind (flipping)

    def __post_init__(self) -> None:
        from ganvas.losses import OBJECTIVES

        check(
            self.name in OBJECTIVES,
            f"loss.name={self.name!r} is not a known loss; choose one of {', '.join(sorted(OBJECTIVES))}",
        )
        for key in ("gp_weight", "r1_weight", "r2_weight", "drift_weight", "clip",
                    "ortho_weight", "aux_weight"):  # fmt: skip
            value = getattr(self, key)
            check(value >= 0, f"loss.{key}={value} must be >= 0")
        check(self.r_interval >= 1, f"loss.r_interval={self.r_interval} must be >= 1")
        for key in ("real_label", "fake_label"):
            low, high = getattr(self, key)
            check(
                0 <= low <= high <= 1,
                f"loss.{key}=[{low}, {high}] must satisfy 0 <= low <= high <= 1",
            )
        check(0 <= self.flip_prob < 1, f"loss.flip_prob={self.flip_prob} must lie in [0, 1)")
        smoothing = self.real_label != (1.0, 1.0) or self.fake_label != (0.0, 0.0) or self.flip_prob
        check(
            not smoothing or self.name in ("nonsaturating", "minimax"),
            f"label smoothing/flipping needs a BCE objective (nonsaturating or minimax), "
            f"not loss.name={self.name!r}",
        )


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    steps: int = 10_000  # generator updates
    epochs: float | None = None  # when set, replaces `steps`: passes over the training images
    d_steps: int = 1  # discriminator updates per generator update ('n_critic')
    d_steps_schedule: tuple[tuple[int, int], ...] = ()  # ((step, d_steps), ...): changes at step
    ema: bool = False  # keep an exponential moving average of G (G_ema) for sampling
    ema_beta: float = 0.999
    ema_kimg: float = 0.0  # > 0: stylegan2-ada's G_ema half-life in kimg (replaces ema_beta)
    ema_rampup: float = 0.0  # > 0: the half-life is at most rampup × the images seen so far
    seed: int = 0
    device: str = "auto"  # 'auto' = cuda if available, else cpu
    # Under torchrun (docs/scaling.md): BatchNorm statistics over the global batch (CUDA only).
    sync_bn: bool = False
    log_interval: int = 50  # steps between metrics.jsonl lines
    sample_interval: int = 500  # steps between fixed-noise grids in samples/
    checkpoint_interval: int = 1000  # steps between checkpoints
    keep_checkpoints: int = 3  # newest checkpoints kept on disk
    n_samples: int = 64  # images in each sample grid
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs ([-1, 1] units)
    instance_noise_anneal: int = 0  # steps over which it decays linearly to 0 (0 = constant)
    # Augmentation of every image D sees (docs/augment.md); instance noise is added after it.
    # 'auto': the family's own choice (DiffAugment for projected and fastgan, else none).
    augment: Literal["auto", "none", "diffaugment", "ada"] = "auto"
    diffaugment_policy: str = "color,translation,cutout"  # DiffAugment's ops, applied in order
    ada_target: float = 0.6  # ADA: the E[sign(D(real))] that p steers toward
    ada_kimg: float = 500.0  # ADA: p can move by 1 in this many thousand real images
    ada_interval: int = 4  # ADA: steps between updates of p
    ada_p: float = 0.0  # ADA: p at step 0 (a resume continues with the saved p)
    ada_pipeline: str = "bgc"  # ADA: groups of transforms, one of ADA_PIPELINES
    replay_size: int = 0  # experience replay: capacity of the buffer of past fakes (0 = off)
    replay_every: int = 1  # replay into every N-th step's D updates
    replay_fraction: float = 0.5  # share of D's fake batch taken from the buffer then
    tensorboard: bool = True
    init_from: str = ""  # start from the weights of this run's newest checkpoint (fine-tuning)
    freeze_d: int = 0  # FreezeD: D's input layer and first N blocks do not learn (fine-tuning)
    eval_interval: int = 0  # steps between FID/KID evaluations (0 = off); the best is kept
    # fd_dinov2: ganvas[dinov2]; psnr, ssim, perceptual: image families (restore), on held-out
    # images (ganvas[restore]); psnr and ssim count higher as better, the others lower.
    eval_metric: Literal["fid", "kid", "fd_dinov2", "psnr", "ssim", "perceptual"] = "fid"
    eval_n: int = 1000  # generated images per evaluation
    eval_split: Literal["train", "val", "all"] = "train"
    eval_weights: str = ""  # Inception weights file; default GANVAS_INCEPTION_WEIGHTS / cache
    collapse_check: Literal["off", "warn", "stop"] = "warn"  # on sample steps: mode collapse
    # A NaN/inf loss or a collapse stop: 'rollback' reloads the last good checkpoint with the
    # learning rates times rollback_lr_factor, at most max_rollbacks times; 'stop' stops.
    on_diverge: Literal["stop", "rollback"] = "rollback"
    rollback_lr_factor: float = 0.5
    max_rollbacks: int = 3
    # Energy (ganvas[energy], docs/experiments.md): kWh and kg CO2e per run with codecarbon's
    # offline tracker, in metrics.jsonl, the checkpoint's state.json and the end-of-run summary.
    energy: bool = True
    energy_country: str = "DEU"  # ISO 3166 alpha-3 code: whose electricity mix gives the CO2e
    carbon_intensity: float = 0.0  # kg CO2e per kWh; > 0 replaces the country's figure
    price_per_kwh: float = 0.30  # € per kWh, for the cost
    # Trackers that mirror config, metrics and sample grids: 'tensorboard', 'wandb', 'mlflow'.
    trackers: tuple[str, ...] = ()
    tracker_project: str = "ganvas"  # W&B project
    tracker_group: str = ""  # W&B group and MLflow experiment ('' = the run dir's name)
    mlflow_uri: str = ""  # MLflow tracking URI ('' = $MLFLOW_TRACKING_URI, else ./mlflow.db)
    # Speed (docs/speed.md); none changes the maths beyond rounding, so a resume may change them.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast of the forward passes
    channels_last: bool = False  # NHWC memory layout for the networks and image batches
    compile: bool = False  # G's and D's forward through torch.compile

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, f"train.batch_size={self.batch_size} must be >= 1")
        check(self.steps >= 1, f"train.steps={self.steps} must be >= 1")
        check(self.epochs is None or self.epochs > 0, f"train.epochs={self.epochs} must be > 0")
        check(self.d_steps >= 1, f"train.d_steps={self.d_steps} must be >= 1")
        _check_schedule(self.d_steps_schedule, "train.d_steps_schedule", lambda v: v >= 1)
        check(0 <= self.ema_beta < 1, f"train.ema_beta={self.ema_beta} must lie in [0, 1)")
        check(self.ema_kimg >= 0, f"train.ema_kimg={self.ema_kimg} must be >= 0")
        check(self.ema_rampup >= 0, f"train.ema_rampup={self.ema_rampup} must be >= 0")
        for name in ("log_interval", "sample_interval", "checkpoint_interval", "keep_checkpoints"):
            value = getattr(self, name)
            check(value >= 1, f"train.{name}={value} must be >= 1")
        check(self.n_samples >= 1, f"train.n_samples={self.n_samples} must be >= 1")
        check(self.instance_noise >= 0, f"train.instance_noise={self.instance_noise} must be >= 0")
        check(self.instance_noise_anneal >= 0,
              f"train.instance_noise_anneal={self.instance_noise_anneal} must be >= 0")  # fmt: skip
        policy = [op.strip() for op in self.diffaugment_policy.split(",")]
        check(
            all(op in DIFFAUGMENT_OPS for op in policy) and len(set(policy)) == len(policy),
            f"train.diffaugment_policy={self.diffaugment_policy!r} must list some of "
            f"{', '.join(DIFFAUGMENT_OPS)}, each at most once, comma-separated",
        )
        check(0 <= self.ada_target < 1, f"train.ada_target={self.ada_target} must lie in [0, 1)")
        check(self.ada_kimg > 0, f"train.ada_kimg={self.ada_kimg} must be > 0")
        check(self.ada_interval >= 1, f"train.ada_interval={self.ada_interval} must be >= 1")
        check(0 <= self.ada_p <= 1, f"train.ada_p={self.ada_p} must lie in [0, 1]")
        check(
            self.ada_pipeline in ADA_PIPELINES,
            f"train.ada_pipeline={self.ada_pipeline!r} is not allowed; choose one of "
            f"{', '.join(ADA_PIPELINES)}",
        )
        check(self.freeze_d >= 0, f"train.freeze_d={self.freeze_d} must be >= 0")
        check(0 < self.rollback_lr_factor <= 1,
              f"train.rollback_lr_factor={self.rollback_lr_factor} must lie in (0, 1]")  # fmt: skip
        check(self.max_rollbacks >= 0, f"train.max_rollbacks={self.max_rollbacks} must be >= 0")
        check(self.carbon_intensity >= 0,
              f"train.carbon_intensity={self.carbon_intensity} must be >= 0")  # fmt: skip
        check(self.price_per_kwh >= 0, f"train.price_per_kwh={self.price_per_kwh} must be >= 0")
        unknown = sorted(set(self.trackers) - set(TRACKERS))
        check(not unknown, f"train.trackers: {', '.join(unknown)} unknown; choose from "
                           f"{', '.join(TRACKERS)}")  # fmt: skip
        check(self.eval_interval >= 0, f"train.eval_interval={self.eval_interval} must be >= 0")
        check(self.eval_n >= 2, f"train.eval_n={self.eval_n} must be >= 2")
        check(self.replay_size >= 0, f"train.replay_size={self.replay_size} must be >= 0")
        check(self.replay_every >= 1, f"train.replay_every={self.replay_every} must be >= 1")
        check(0 < self.replay_fraction <= 1,
              f"train.replay_fraction={self.replay_fraction} must lie in (0, 1]")  # fmt: skip
        check(
            self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
            f"train.device={self.device!r} must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
        )


@dataclass(frozen=True)
class ProgressiveConfig:
    """Progressive growing (ProGAN): used by families that grow, ignored by the others."""

    batch_sizes: tuple[int, ...] = (16,)  # per resolution from the start one; the last repeats
    stage_epochs: float = 0.0  # length of each stage in passes over the data (seeds/000: 30)
    stage_kimg: float = 600.0  # ... or in thousands of real images, when stage_epochs is 0
    fade_fraction: float = 0.5  # share of each stage after the first spent fading the new layers in
    lrs: tuple[float, ...] = ()  # per-resolution learning rate for G and D; () = optim.lr_g/lr_d

    def __post_init__(self) -> None:
        check(len(self.batch_sizes) >= 1 and all(b >= 1 for b in self.batch_sizes),
              f"progressive.batch_sizes={list(self.batch_sizes)} must be positive")  # fmt: skip
        check(self.stage_epochs >= 0, f"progressive.stage_epochs={self.stage_epochs} must be >= 0")
        check(self.stage_kimg > 0, f"progressive.stage_kimg={self.stage_kimg} must be > 0")
        check(0 <= self.fade_fraction <= 1,
              f"progressive.fade_fraction={self.fade_fraction} must lie in [0, 1]")  # fmt: skip
        check(all(lr > 0 for lr in self.lrs), f"progressive.lrs={list(self.lrs)} must be > 0")


@dataclass(frozen=True)
class Config:
    model: Any  # a family's config dataclass (ganvas.models.registry.ModelConfig subclass)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The config as plain YAML-ready values, with its `version` first."""
        return {"version": CONFIG_VERSION, **_plain(dataclasses.asdict(self))}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **overrides: Any) -> Config:
        """A copy with dotted keys replaced, validated: cfg.replace(**{'train.steps': 10}).
        As in `load_config`, setting train.steps alone clears train.epochs."""
        tree = self.to_dict()
        _merge_layer(tree, _override_layer(overrides))
        return config_from_dict(tree)


# --- Presets and files -----------------------------------------------------------------


def preset_names() -> list[str]:
    folder = resources.files("ganvas") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_preset(name: str) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; presets: {', '.join(names)}")
    text = (resources.files("ganvas") / "configs" / f"{name}.yaml").read_text()
    return _parse_yaml(text, f"preset {name}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        hint = f" (--preset {path.name}?)" if str(path) in preset_names() else ""
        raise ConfigError(f"config file {path} does not exist{hint}")
    return _parse_yaml(path.read_text(), str(path))


def parse_set(assignment: str) -> tuple[str, Any]:
    """'train.steps=500' → ('train.steps', 500). Values are parsed as YAML scalars/lists."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r} must look like key=value, e.g. train.steps=500")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    check(bool(key), f"--set {assignment!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r} ({err})") from err
    return key, value


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: str | list[str] | dict[str, Any] | None = None,
) -> Config:
    """Build a validated Config: defaults ← preset ← config file ← overrides.

    A later layer that sets train.steps but not train.epochs drops an earlier layer's
    train.epochs (which would otherwise replace the steps): the explicit setting wins.

    Args:
        preset: a name from `preset_names()`, e.g. 'dcgan-64'.
        config_file: a YAML file with the same structure as a preset; one written by an
            older ganvas (a run's config.yaml) is migrated first.
        overrides: 'train.steps=500', ['train.steps=500', ...] or {'train.steps': 500, ...}.

    Returns:
        The validated Config.

    Raises:
        ConfigError: unknown preset, key or bad value; the message names it and the options.
    """
    tree: dict[str, Any] = {}
    if preset:
        _merge_layer(tree, read_preset(preset))  # presets are written for CONFIG_VERSION
    if config_file:
        _merge_layer(tree, migrate_config(read_config_file(config_file)))
    tree["version"] = CONFIG_VERSION
    _merge_layer(tree, _override_layer(overrides))
    return config_from_dict(tree)


def config_from_dict(tree: dict[str, Any]) -> Config:
    """A validated Config from a plain dict of any config version (none: version 0).

    Raises:
        ConfigError: a bad key or value, or a version newer than this ganvas knows.
    """
    from ganvas.models.registry import family_config_class, list_families

    tree = migrate_config(tree)
    del tree["version"]
    model_tree = tree.pop("model", None)
    if model_tree is None:
        model_tree = {}
    if not isinstance(model_tree, dict):
        hint = ""
        if isinstance(model_tree, str) and model_tree in list_families():
            hint = f"; did you mean --set model.family={model_tree}?"
        raise ConfigError(
            f"model must be a section (model.family=..., model.resolution=..., ...), "
            f"not {model_tree!r}{hint}"
        )
    family = model_tree.get("family", "dcgan")
    if not isinstance(family, str):
        raise ConfigError(
            f"model.family={family!r} must be a family name; "
            f"choose one of {', '.join(list_families())}"
        )
    model_cls = family_config_class(family)
    model = _build(model_cls, {**model_tree, "family": family}, "model")
    rest = _build(_ConfigRest, tree, "")
    return Config(model=model, **{f.name: getattr(rest, f.name) for f in dataclasses.fields(rest)})


# --- Config versions ------------------------------------------------------------------------

Migration = Callable[[dict[str, Any]], dict[str, Any]]


def rename_key(old: str, new: str) -> Migration:
    """A migration that moves the value of dotted key `old` to `new`, e.g.
    rename_key('train.n_critic', 'train.d_steps'); a config without `old` is left as it is.

    Returns:
        A function from a config dict to the migrated dict (it may change its argument).
    """

    def migrate(tree: dict[str, Any]) -> dict[str, Any]:
        *sections, leaf = old.split(".")
        node: Any = tree
        for part in sections:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            _set_dotted(tree, new, node.pop(leaf))
        return tree

    return migrate


# MIGRATIONS[v] turns a config dict of version v into one of version v + 1. A renamed key
# is one entry: e.g. MIGRATIONS[1] = rename_key("train.n_critic", "train.d_steps").
MIGRATIONS: dict[int, Migration] = {
    0: lambda tree: tree,  # version 1 only added the `version` key itself
}


def migrate_config(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config dict brought to CONFIG_VERSION, its `version` key set to it; a
    dict without `version` is version 0 (every config.yaml ganvas 0.1.0 wrote).

    Raises:
        ConfigError: the version is not a whole number, or is newer than this ganvas knows.
    """
    from ganvas import __version__

    check(isinstance(tree, dict), f"a config must be a mapping of sections, not {tree!r}")
    tree = copy.deepcopy(tree)
    version = tree.pop("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ConfigError(f"version={version!r} must be a config version (a whole number >= 0)")
    if version > CONFIG_VERSION:
        raise ConfigError(
            f"this config has version {version}, but ganvas {__version__} reads versions up "
            f"to {CONFIG_VERSION}: it was written by a newer ganvas; upgrade ganvas "
            "(pip install -U ganvas) to use it"
        )
    for step in range(version, CONFIG_VERSION):
        tree = MIGRATIONS[step](tree)
    tree["version"] = CONFIG_VERSION
    return tree


@dataclass(frozen=True)
class _ConfigRest:
    """Config without `model`, so the generic builder can check the other sections."""

    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    description: str = ""


def config_differences(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs."""
    flat_a, flat_b = _flatten(a.to_dict()), _flatten(b.to_dict())
    return {
        k: (flat_a.get(k), flat_b.get(k))
        for k in sorted(set(flat_a) | set(flat_b))
        if flat_a.get(k) != flat_b.get(k)
    }


# --- Generic conversion of dicts into frozen dataclasses with type checks -----------------


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            where = f"{prefix}." if prefix else ""
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {where}{close[0]}?)" if close else ""
            raise ConfigError(
                f"unknown config key {where}{key}{hint}; allowed keys"
                f"{' in ' + prefix if prefix else ''}: {', '.join(fields)}"
            )
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{prefix or 'config'}: {err}") from err


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{key}={value!r}: " + "; ".join(errors)
        )
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{key}={value!r} is not allowed; choose one of {allowed}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}={value!r} must be a list, e.g. [0.5, 0.999]")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}={value!r} must have {len(args)} items")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r} must be true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}={value!r} must be an integer")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads '1e-4' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} must be a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}={value!r} must be a string")
    raise TypeError(f"unsupported config type {hint!r} for {key}")


# --- Small dict helpers --------------------------------------------------------------------


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{where} is not valid YAML: {err}") from err
    if not isinstance(tree, dict):
        raise ConfigError(f"{where} must be a YAML mapping of sections (model, train, ...)")
    return tree


def _override_layer(overrides: str | list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """The overrides of `load_config` as one nested dict, like a config file's."""
    if overrides is None:
        return {}
    if isinstance(overrides, str):
        overrides = [overrides]
    if isinstance(overrides, dict):
        items = list(overrides.items())
    elif isinstance(overrides, list | tuple) and all(isinstance(o, str) for o in overrides):
        items = [parse_set(o) for o in overrides]
    else:
        raise ConfigError(
            f"overrides must be 'key=value', a list of such strings or a dict "
            f"{{'key': value}}, not {overrides!r}"
        )
    layer: dict[str, Any] = {}
    for key, value in items:
        check(isinstance(key, str) and bool(key), f"override key {key!r} must be a dotted name")
        _set_dotted(layer, key, value)
    return layer


def _merge_layer(tree: dict[str, Any], layer: dict[str, Any]) -> None:
    """Merge a later layer over `tree`. A layer that sets train.steps without train.epochs
    also drops the earlier train.epochs, which would otherwise replace the steps."""
    train, earlier = layer.get("train"), tree.get("train")
    sets_steps_only = isinstance(train, dict) and "steps" in train and "epochs" not in train
    if sets_steps_only and isinstance(earlier, dict):
        earlier.pop("epochs", None)
    _merge(tree, layer)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
