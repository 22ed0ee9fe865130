"""The Rate tab's protocol (seeds/000): one image at a time, yes or no, every answer saved at
once to RUN/ratings.jsonl with `ganvas.rate`'s writer and record format.

Each answer is one record of that format with n = 1 (so totals add up over lines and
sessions), plus `index` (the image's place in the session), `kind` ('generated' or, in blind
mode, 'real'), `session` and `source: "studio"`. Blind mode mixes real training images in
without saying which is which, measuring the rater's own 'yes' rate on reals.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from ganvas.rate import save_rating, summarize, wilson_interval
from ganvas.studio.actions import Studio, generate_images
from ganvas.studio.runs import MAX_IMAGES, check_bound


def start_session(
    studio: Studio, label: str, n: int, question: str, seed: int = 0, blind: bool = False
) -> dict[str, Any]:
    """A new session: n generated images (and, blind, as many reals), shuffled by seed."""
    check_bound("n", n, 1, MAX_IMAGES)
    run = studio.run(label)
    pictures = list(generate_images(studio, label, seed, int(n)))
    n_generated = len(pictures)
    kinds = ["generated"] * len(pictures)
    if blind:
        reals = real_images(run, int(n), seed)
        pictures += list(reals)
        kinds += ["real"] * len(reals)
    order = (
        np.random.default_rng(seed).permutation(len(pictures)) if blind else range(len(pictures))
    )
    return {
        "run": label,
        "question": question.strip() or "Does this look like a real image from the data?",
        "seed": int(seed),
        "step": studio.pipeline(label).step,
        "session": uuid.uuid4().hex[:12],
        "pictures": [pictures[i] for i in order],
        "kinds": [kinds[i] for i in order],
        "indices": [int(i) if i < n_generated else int(i) - n_generated for i in order],
        "answers": [],
    }


def real_images(run: Any, n: int, seed: int) -> np.ndarray:
    """n training images of the run, a seeded random choice (ValueError without a dataset)."""
    from ganvas.data.store import load_dataset

    try:
        dataset = load_dataset(run.read_config().data.path)
    except Exception as err:
        raise ValueError(
            f"blind mode needs the run's dataset, which cannot be read: {err}"
        ) from err
    rng = np.random.default_rng(seed + 1)
    chosen = np.sort(rng.choice(len(dataset), min(n, len(dataset)), replace=False))
    return np.asarray(dataset.images[chosen])


def current_picture(session: dict[str, Any] | None) -> np.ndarray | None:
    if not session or len(session["answers"]) >= len(session["pictures"]):
        return None
    return session["pictures"][len(session["answers"])]


def answer(studio: Studio, session: dict[str, Any], yes: bool) -> dict[str, Any]:
    """Record the answer for the image shown and append its line to ratings.jsonl."""
    position = len(session["answers"])
    if position >= len(session["pictures"]):
        raise ValueError("this session is finished; start a new one")
    run = studio.run(session["run"])
    record = summarize([bool(yes)], session["question"], n_shown=1, seed=session["seed"],
                       step=session["step"])  # fmt: skip
    record.update(index=session["indices"][position], kind=session["kinds"][position],
                  session=session["session"], source="studio")  # fmt: skip
    save_rating(run.path, record)
    session["answers"].append(bool(yes))
    return session


def progress_text(session: dict[str, Any] | None) -> str:
    """'3/10 rated · generated: 2/3 yes = 0.67 [0.21, 0.94]' (and reals in blind mode)."""
    if not session:
        return "Press Start to rate."
    done, total = len(session["answers"]), len(session["pictures"])
    parts = [f"{done}/{total} rated"]
    for kind in ("generated", "real"):
        answers = [a for a, k in zip(session["answers"], session["kinds"]) if k == kind]
        if answers or (kind == "generated" and not done):
            yes = sum(answers)
            low, high = wilson_interval(yes, len(answers))
            share = yes / len(answers) if answers else 0.0
            parts.append(f"{kind}: {yes}/{len(answers)} yes = {share:.2f}, "
                         f"95 % interval [{low:.2f}, {high:.2f}]")  # fmt: skip
    if done >= total:
        parts.append("done: saved to ratings.jsonl")
    return " · ".join(parts)
