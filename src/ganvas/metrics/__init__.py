"""Sample-quality metrics: FID, KID, precision/recall and Inception Score.

    from ganvas.metrics import evaluate, KEY_FID
    scores = evaluate(ganvas.load("runs/a"), load_dataset("data/emoji64"), metrics=["fid", "kid"])

`inception.py` holds the FID Inception network (torch-fidelity's TF-compatible Inception-v3)
and the conversion of its offline weights; `fidelity.py` the metrics and the reference cache.
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
    FeatureExtractor,
    MetricsError,
    convert_fid_helper_weights,
    default_weights_path,
    extract_features,
    resolve_inception_weights,
)

__all__ = [
    "INCEPTION_WEIGHTS_ENV",
    "KEY_FID",
    "KEY_IS_MEAN",
    "KEY_IS_STD",
    "KEY_KID_MEAN",
    "KEY_KID_STD",
    "KEY_PRECISION",
    "KEY_RECALL",
    "METRICS",
    "FeatureExtractor",
    "MetricsError",
    "ReferenceStats",
    "convert_fid_helper_weights",
    "default_weights_path",
    "evaluate",
    "extract_features",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kid_from_features",
    "per_class_fid",
    "precision_recall",
    "reference_stats",
    "resolve_inception_weights",
]
