"""How an FID/KID result was computed (its protocol), and warnings when results computed
differently are compared.

FID and KID are only comparable between results measured the same way: the feature network
and its weights, the resize to 299×299, how many real and generated images, which real images
(dataset content and split), the metric settings and the code. `evaluate` stores all of that
under `result["protocol"]`:

    scores = evaluate(ganvas.load("runs/a"), load_dataset("data/emoji64"), n=10_000)
    scores["protocol"]["n_fake"], scores["protocol"]["feature_network"]["weights_sha256"]
    for line in format_protocol(scores["protocol"]):
        print(line)

    ranked = rank_results([a, b, c], key="fid")        # warns when their protocols differ
    check_comparable(a["protocol"], b["protocol"])     # the differences; warns if any

What generated the images (G or G_ema, the step) and the seeds are recorded but not compared:
comparing steps, G with G_ema, or seeds is what one does with results of one protocol.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

PROTOCOL_VERSION = 1
KEY_PROTOCOL = "protocol"

# The parts of a protocol that must agree for two scores to be comparable. Left out: the
# generator (step, G/G_ema), the seeds, the device, the weights file's path (its hash is
# compared) and the dataset's path (its content hash is compared).
COMPARED = (
    "version",
    "feature_network",
    "resize",
    "image_size",
    "n_real",
    "n_fake",
    "real",
    "metrics",
    "versions",
)


class ProtocolMismatchWarning(UserWarning):
    """Results computed under different protocols are being compared or ranked."""


def versions() -> dict[str, str]:
    """The versions of the code that computes the scores: ganvas, torch-fidelity, torch."""
    import torch_fidelity

    from ganvas import __version__

    return {
        "ganvas": __version__,
        "torch_fidelity": str(torch_fidelity.__version__),
        "torch": torch.__version__,
    }


def device_description(device: torch.device) -> str:
    """The device the feature network ran on. On CUDA, cuDNN may run the convolutions in TF32
    (torch's default), which moves features by ~1e-3 relative: worth knowing, so it is said."""
    if device.type != "cuda":
        return device.type
    return f"cuda (cuDNN TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'})"


def describe_generator(generated: Any, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What made the generated images: fixed images, or the generator's weights name ('G' or
    'G_ema') and step, read from a ganvas pipeline (or attributes `weights` / `step` of a
    callable) and updated with `info`."""
    if isinstance(generated, (np.ndarray, torch.Tensor)):
        out: dict[str, Any] = {"source": "fixed images"}
    else:
        out = {
            "source": "pipeline" if callable(getattr(generated, "sample", None)) else "callable",
            "weights": getattr(generated, "weights", None),
            "step": getattr(generated, "step", None),
        }
        out = {k: v for k, v in out.items() if isinstance(v, (str, int, type(None)))}
    out.update(info or {})
    return out


def make_protocol(
    *,
    feature_network: Mapping[str, Any],
    resize: str,
    image_size: Sequence[int],
    n_fake: int,
    n_real: int | Mapping[str, int] | None,
    real: Mapping[str, Any] | None,
    generator: Mapping[str, Any],
    seeds: Mapping[str, int | None],
    metrics: Mapping[str, Any],
    device: str,
) -> dict[str, Any]:
    """A protocol as `evaluate` stores it (plain JSON values). See the module docstring; the
    fields are documented in docs/evaluation.md."""
    return {
        "version": PROTOCOL_VERSION,
        "feature_network": dict(feature_network),
        "resize": resize,
        "image_size": [int(s) for s in image_size],
        "n_real": dict(n_real) if isinstance(n_real, Mapping) else n_real,
        "n_fake": int(n_fake),
        "real": None if real is None else dict(real),
        "generator": dict(generator),
        "seeds": dict(seeds),
        "metrics": dict(metrics),
        "device": device,
        "versions": versions(),
    }


def _comparable(protocol: Mapping[str, Any]) -> dict[str, Any]:
    """The compared fields, flattened to dotted names."""
    view: dict[str, Any] = {}
    for field in COMPARED:
        value = protocol.get(field)
        if field == "feature_network" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != "weights_file"}
            if value.get("weights_sha256"):  # the hash decides; names depend on a side file
                value.pop("name", None)
        if field == "real" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != "data"}
        if isinstance(value, Mapping):
            view.update({f"{field}.{k}": v for k, v in value.items()})
        else:
            view[field] = value
    return view


def protocol_differences(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[str]:
    """What differs between two protocols in the fields that make scores comparable, as
    'field: value_a ≠ value_b' lines; empty when they agree.

    Metric settings are compared only for metrics both computed (an FID-only result and an
    FID+KID result share a protocol for FID). A missing protocol (results from before
    protocols were recorded) is a difference: nothing says how that result was computed.
    """
    if not a or not b:
        return (
            ["one of them records no protocol (computed by an older ganvas?)"]
            if a or b
            else ["neither records a protocol"]
        )
    va, vb = _comparable(a), _comparable(b)
    out = []
    for key in sorted(set(va) | set(vb)):
        # Which metrics were computed does not matter, only the settings of shared ones.
        if key == "metrics.computed" or (
            key.startswith("metrics.") and (key not in va or key not in vb)
        ):
            continue
        if va.get(key) != vb.get(key):
            out.append(f"{key}: {_short(va.get(key))} ≠ {_short(vb.get(key))}")
    return out


def _short(value: Any, width: int = 60) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def check_comparable(
    a: Mapping[str, Any] | None,
    b: Mapping[str, Any] | None,
    what: str = "these results",
    stacklevel: int = 2,
) -> list[str]:
    """Warn (ProtocolMismatchWarning) when two protocols differ; returns the differences."""
    differences = protocol_differences(a, b)
    if differences:
        warnings.warn(
            f"comparing {what} computed under different FID/KID protocols; the numbers are not "
            f"comparable: {'; '.join(differences)}",
            ProtocolMismatchWarning,
            stacklevel=stacklevel + 1,
        )
    return differences


def rank_results(
    results: Sequence[Mapping[str, Any]], key: str = "fid", higher_is_better: bool = False
) -> list[Mapping[str, Any]]:
    """Results (dicts with `key` and "protocol") from best to worst by `key`.

    Warns (ProtocolMismatchWarning) once when any result's protocol differs from the first
    one's, naming the results by their "step" when they have one.

    Raises:
        KeyError: a result lacks `key`.
    """
    for index, result in enumerate(results[1:], start=1):
        differences = protocol_differences(results[0].get(KEY_PROTOCOL),
                                           result.get(KEY_PROTOCOL))  # fmt: skip
        if differences:
            first, other = _label(results[0], 0), _label(result, index)
            warnings.warn(
                f"ranking results by {key} computed under different FID/KID protocols "
                f"({first} vs {other}: {'; '.join(differences)}); the order may mean nothing",
                ProtocolMismatchWarning,
                stacklevel=2,
            )
            break
    return sorted(results, key=lambda r: float(r[key]), reverse=higher_is_better)


def _label(result: Mapping[str, Any], index: int) -> str:
    return f"step {result['step']}" if "step" in result else f"result {index}"


def format_protocol(protocol: Mapping[str, Any] | None) -> list[str]:
    """A few lines for people: network and weights hash, resize, what was compared with what,
    versions."""
    if not protocol:
        return ["protocol: not recorded"]
    net = protocol.get("feature_network") or {}
    sha = net.get("weights_sha256")
    lines = [f"network   {net.get('name')}" + (f", weights sha256 {sha[:16]}…" if sha else "")]
    size = "×".join(str(s) for s in protocol.get("image_size") or ())
    lines.append(f"resize    {size} → {protocol.get('resize')}")
    gen = protocol.get("generator") or {}
    seeds = protocol.get("seeds") or {}
    if gen.get("source") == "fixed images":
        made = "fixed images"
    else:
        made = ", ".join(f"{k} {gen[k]}" for k in ("weights", "step") if gen.get(k) is not None)
        made = (
            f"{made}, seed {seeds.get('generator')}" if made else f"seed {seeds.get('generator')}"
        )
    fake = f"{protocol.get('n_fake')} generated ({made})"
    real = protocol.get("real")
    if real:
        part = f", class {real['class']}" if real.get("class") is not None else ""
        digest = str(real.get("content_hash") or "")
        digest = digest[: digest.find(":") + 13]  # 'sha256:' and 12 hex digits
        fake += (f" vs {protocol.get('n_real')} real ({real.get('split')} split of "
                 f"{real.get('data')}{part}, content {digest}…)")  # fmt: skip
    lines.append(f"images    {fake}")
    v = protocol.get("versions") or {}
    lines.append(f"code      ganvas {v.get('ganvas')}, torch-fidelity {v.get('torch_fidelity')}, "
                 f"torch {v.get('torch')}, on {protocol.get('device')}")  # fmt: skip
    return lines
