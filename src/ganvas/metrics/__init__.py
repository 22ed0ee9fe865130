"""Sample-quality metrics: FID, KID, precision/recall and Inception Score.

    from ganvas.metrics import evaluate, KEY_FID
    scores = evaluate(ganvas.load("runs/a"), load_dataset("data/emoji64"), metrics=["fid", "kid"])

`inception.py` holds the FID Inception network (torch-fidelity's TF-compatible Inception-v3)
and the conversion of its offline weights; `fidelity.py` the metrics and the reference cache;
`protocol.py` what every result records about how it was computed (`result["protocol"]`) and
the warnings when results of different protocols are compared.
"""

from ganvas.metrics.fidelity import (
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
    "INCEPTION_WEIGHTS_ENV",
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
    "resolve_inception_weights",
]
