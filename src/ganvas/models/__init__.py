"""GAN families (one file each) and the registry the trainer builds them through."""

from ganvas.models.registry import (
    Family,
    ModelConfig,
    build_models,
    get_family,
    list_families,
    register_family,
)

__all__ = [
    "Family",
    "ModelConfig",
    "build_models",
    "get_family",
    "list_families",
    "register_family",
]
