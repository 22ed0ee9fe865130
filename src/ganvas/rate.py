"""Human rating: show samples one at a time, record yes/no, report accuracy with a 95 %
interval (seeds/000 counted how many of 100 samples looked like a painted landscape).

In a terminal each image is drawn with coloured half blocks; `write_html_form` makes a page
to rate in a browser instead, whose downloaded answers `record_answers` reads back.
"""

from __future__ import annotations

import base64
import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.text import Text

from ganvas.generate import GeneratorPipeline
from ganvas.grid import to_pil
from ganvas.io import write_text_atomic
from ganvas.rundir import RunDir


def wilson_interval(yes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion yes/n (sane at 0 and n, unlike p ± 2σ)."""
    if n == 0:
        return 0.0, 1.0
    p = yes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def half_blocks(picture: np.ndarray, width: int = 48) -> Text:
    """[H, W, C] uint8 → rich Text drawing two pixel rows per line with '▀' (top pixel as the
    foreground colour, bottom pixel as the background)."""
    image = to_pil(picture).convert("RGB")
    height = max(2, round(image.height * width / image.width / 2) * 2)
    pixels = np.asarray(image.resize((width, height)))
    text = Text()
    for y in range(0, height, 2):
        for x in range(width):
            top, bottom = pixels[y, x], pixels[y + 1, x]
            text.append(
                "▀",
                style=f"rgb({top[0]},{top[1]},{top[2]}) on rgb({bottom[0]},{bottom[1]},{bottom[2]})",
            )
        text.append("\n")
    return text


def rate_in_terminal(
    pipeline: GeneratorPipeline,
    n: int,
    question: str,
    seed: int = 0,
    ask: Callable[[str], str] = input,
    console: Console | None = None,
) -> dict[str, Any]:
    """Show n samples one by one and ask `question`; y/n per image, q stops early."""
    console = console or Console()
    pictures = pipeline.sample_numpy(n, seed)
    answers: list[bool] = []
    for i, picture in enumerate(pictures):
        console.print(half_blocks(picture))
        while True:
            reply = ask(f"[{i + 1}/{n}] {question} [y/n/q] ").strip().lower()
            if reply in ("y", "yes", "n", "no", "q"):
                break
        if reply == "q":
            break
        answers.append(reply.startswith("y"))
    return summarize(answers, question, n_shown=len(answers), seed=seed, step=pipeline.step)


def summarize(
    answers: list[bool], question: str, n_shown: int, seed: int, step: int
) -> dict[str, Any]:
    yes = int(sum(answers))
    low, high = wilson_interval(yes, len(answers))
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "question": question,
        "step": step,
        "seed": seed,
        "n": len(answers),
        "yes": yes,
        "accuracy": yes / len(answers) if answers else 0.0,
        "ci95": [round(low, 4), round(high, 4)],
    }


def save_rating(run_dir: str | Path, result: dict[str, Any]) -> Path:
    """Append the result to run_dir/ratings.jsonl (rewritten whole, atomically); returns
    that file."""
    path = RunDir(run_dir).ratings_file
    previous = path.read_text() if path.is_file() else ""
    write_text_atomic(path, previous + json.dumps(result) + "\n")
    return path


def write_html_form(
    pipeline: GeneratorPipeline, n: int, question: str, path: str | Path, seed: int = 0
) -> Path:
    """A self-contained page: n samples with yes/no buttons and a button that downloads the
    answers as JSON, for `ganvas rate RUN --answers FILE`."""
    cards = []
    for i, picture in enumerate(pipeline.sample_numpy(n, seed)):
        buffer = io.BytesIO()
        to_pil(picture).save(buffer, format="PNG")
        data = base64.b64encode(buffer.getvalue()).decode()
        cards.append(
            f'<div class="card"><img src="data:image/png;base64,{data}" alt="sample {i}">'
            f'<label><input type="radio" name="q{i}" value="yes"> yes</label>'
            f'<label><input type="radio" name="q{i}" value="no"> no</label></div>'
        )
    meta = json.dumps({"question": question, "n": n, "seed": seed, "step": pipeline.step})
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>ganvas rating</title>
<style>body{{font-family:sans-serif}} .card{{display:inline-block;margin:6px;text-align:center}}
img{{width:128px;height:128px;image-rendering:pixelated;display:block}}</style></head>
<body><h1 id="question"></h1><div id="cards">{"".join(cards)}</div>
<button id="save">Download answers</button>
<script>
const meta = {meta};
document.getElementById("question").textContent = meta.question;
document.getElementById("save").onclick = () => {{
  const answers = [];
  for (let i = 0; i < meta.n; i++) {{
    const chosen = document.querySelector(`input[name=q${{i}}]:checked`);
    answers.push(chosen ? chosen.value === "yes" : null);
  }}
  const blob = new Blob([JSON.stringify({{...meta, answers}})], {{type: "application/json"}});
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob); link.download = "answers.json"; link.click();
}};
</script></body></html>"""
    write_text_atomic(path, page)
    return Path(path)


def record_answers(answers_file: str | Path) -> dict[str, Any]:
    """Read the JSON the HTML form downloads; unanswered images are left out."""
    data = json.loads(Path(answers_file).read_text())
    answers = [a for a in data.get("answers", []) if a is not None]
    return summarize(answers, data.get("question", ""), n_shown=data.get("n", len(answers)),
                     seed=data.get("seed", 0), step=data.get("step", 0))  # fmt: skip
