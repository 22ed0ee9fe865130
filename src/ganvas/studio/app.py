"""ganvas studio: a gradio page to watch runs learn, generate, compare, walk, rate and
restore.

    app = build_app(Studio(RunCatalog(["runs/"])))
    launch(app, host="127.0.0.1", port=7860)

The page only wires controls to `ganvas.studio.actions` / `rating`; a failing request shows
its error (a card in the Run tab, a message elsewhere) and the app goes on serving.
"""

from __future__ import annotations

import base64
import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from ganvas.studio import actions, rating  # noqa: E402
from ganvas.studio.plots import metric_charts  # noqa: E402
from ganvas.studio.runs import (  # noqa: E402
    MAX_COMPARE,
    MAX_IMAGES,
    MAX_RESTORE_SIDE,
    MAX_WALK_STEPS,
    RequestTooLarge,
    RunRefused,
    eval_results,
    fake_grids,
    read_json,
    read_metrics,
    run_summary,
)

CONCURRENCY = 2  # requests computed at once (the machine's cores are shared)
QUEUE_SIZE = 64  # requests waiting; more are refused at once ("queue is full")
REFRESH_S = 15  # the Runs table refreshes this often
MAX_GIF_BYTES = 16 * 2**20
COLUMNS = ["run", "family", "dataset", "step", "kimg", "elapsed", "fid", "kid", "energy_kwh",
           "state"]  # fmt: skip
KEYS_JS = """() => { document.addEventListener('keydown', (e) => {
  if (['INPUT', 'TEXTAREA'].includes(e.target.tagName)) return;
  const id = {y: 'rate-yes', n: 'rate-no'}[e.key];
  if (id) document.getElementById(id)?.click(); }); }"""
# small pictures (16-64 px) are drawn large and sharp, not at their natural size
CSS = ".pixelated img {image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain}"
KNOWN_ERRORS = (RunRefused, RequestTooLarge, TimeoutError, ValueError, OSError)


def user_errors(fn: Callable) -> Callable:
    """Turn known failures into a gradio message (the request fails, the app goes on)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except KNOWN_ERRORS as err:
            raise gr.Error(f"{type(err).__name__}: {err}") from err
        except Exception as err:  # a corrupt run: shown, never a crash of the app
            raise gr.Error(f"cannot do that: {type(err).__name__}: {err}") from err

    return wrapper


def error_card(err: BaseException) -> str:
    message = f"{type(err).__name__}: {err}".replace("\n", " ").replace("`", "'")
    return f"**⚠ this run cannot be shown:** `{message[:300]}`"


def gif_html(path: Path, alt: str) -> str:
    """An <img> with the GIF inline (gradio's Image would re-encode it and lose the frames)."""
    if not path.is_file() or path.stat().st_size > MAX_GIF_BYTES:
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<img src="data:image/gif;base64,{data}" alt="{alt}" '
            'style="max-width:320px;width:100%;image-rendering:pixelated">')  # fmt: skip


def open_picture(path: Path) -> Any:
    """A picture of a run as a PIL image (None when missing or unreadable). Pictures go to the
    page as images, never as paths: gradio serves no file from the run folders."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


# --- Runs -------------------------------------------------------------------------------


def runs_table(studio: actions.Studio) -> tuple[list[list[Any]], list[tuple[str, str]]]:
    rows, thumbs = [], []
    for label, run in studio.catalog.runs().items():
        row = run_summary(label, run)
        rows.append([row.get(c, "") for c in COLUMNS])
        grids = fake_grids(run)
        if grids:
            picture = open_picture(grids[-1][1])
            if picture is not None:
                thumbs.append((picture, label))
    return rows, thumbs


def refresh_runs(studio: actions.Studio) -> tuple[Any, ...]:
    rows, thumbs = runs_table(studio)
    labels, generators, restorers = actions.run_choices(studio)
    return (rows, thumbs, gr.update(choices=labels),
            *(gr.update(choices=generators) for _ in range(5)),
            gr.update(choices=restorers))  # fmt: skip


# --- Run ----------------------------------------------------------------------------------


def show_run(studio: actions.Studio, label: str | None) -> tuple[Any, ...]:
    """Everything of the Run tab; a run that cannot be read gives an error card."""
    empty = (gr.update(maximum=1, value=0), None, "", "", [], "", {}, None, {})
    if not label:
        return ("Choose a run.", *empty)
    try:
        run = studio.run(label)
        summary = run_summary(label, run)
        grids = fake_grids(run)
        charts = [(chart, title) for title, chart in metric_charts(read_metrics(run)).items()]
        card, preview = dataset_card(run)
        last = max(0, len(grids) - 1)
        return (_run_heading(summary), gr.update(maximum=max(1, last), value=last),
                open_picture(grids[-1][1]) if grids else None, _step_text(grids, last),
                gif_html(run.progress_gif, "progress"), charts,
                run.config_file.read_text(encoding="utf-8"), card, preview,
                {"eval": eval_results(run)})  # fmt: skip
    except Exception as err:  # corrupt or half-written: a card, not a crash
        return (error_card(err), *empty)


def _run_heading(summary: dict[str, Any]) -> str:
    if str(summary.get("state", "")).startswith("error"):
        return f"**⚠ this run cannot be shown ({summary['run']}):** `{summary['state']}`"
    return (f"### {summary['run']}\n{summary['family']} on {summary['dataset']} · step "
            f"{summary['step']} · {summary['kimg']} kimg · {summary['elapsed']} · "
            f"{summary['state']}")  # fmt: skip


def _step_text(grids: list[tuple[int, Path]], index: int) -> str:
    return f"step {grids[index][0]}" if grids else "no sample grids yet"


def show_grid(studio: actions.Studio, label: str | None, index: float) -> tuple[Any, str]:
    try:
        grids = fake_grids(studio.run(label))
    except Exception:
        return None, ""
    if not grids:
        return None, _step_text(grids, 0)
    index = min(max(0, int(index or 0)), len(grids) - 1)
    return open_picture(grids[index][1]), _step_text(grids, index)


def dataset_card(run: Any) -> tuple[dict[str, Any], str | None]:
    from ganvas.data.card import dataset_card as card_of

    try:
        card = card_of(run.read_config().data.path)
    except Exception as err:
        return {"unavailable": f"{type(err).__name__}: {err}"}, None
    preview = Path(card["path"]) / "preview.png"
    return card, open_picture(preview)


def make_report(studio: actions.Studio, label: str) -> str:
    from ganvas.studio.report import write_report

    return str(write_report(studio.run(label).path, studio.new_file(".html")))


# --- Generate, Walk, Rate, Copies ---------------------------------------------------------


def generate_controls(studio: actions.Studio, label: str | None) -> tuple[Any, Any]:
    """Show the class picker for conditional runs and truncation where G has it."""
    try:
        pipeline = studio.pipeline(label)
    except Exception:
        return gr.update(visible=False, choices=["all"], value="all"), gr.update(visible=False)
    classes = ["all", *pipeline._row_names()] if pipeline.conditional else ["all"]
    return (gr.update(visible=pipeline.conditional, choices=classes, value="all"),
            gr.update(visible=pipeline.supports_truncation))  # fmt: skip


def generate(
    studio: actions.Studio,
    label: str,
    seed: float,
    count: float,
    class_name: str | None,
    truncation: float | None,
    use_truncation: bool,
) -> tuple[list[tuple[Any, str]], str, str]:
    pictures = actions.generate_images(studio, label, int(seed), int(count), class_name,
                                       truncation if use_truncation else None)  # fmt: skip
    gallery = [(p, f"seed {int(seed)} · {i}") for i, p in enumerate(pictures)]
    png = actions.save_png(studio, _sheet(pictures))
    archive = actions.save_zip(studio, pictures, int(seed))
    return gallery, str(png), str(archive)


def _sheet(pictures: Any) -> Any:
    from ganvas.grid import image_grid

    return image_grid(pictures)


def compare(studio: actions.Studio, labels: list[str], seed: float, count: float) -> list:
    return actions.compare_runs(studio, labels or [], int(seed), int(count))


def walk(studio: actions.Studio, label: str, seeds: str, steps: float, mode: str) -> tuple:
    path, frames = actions.walk(studio, label, seeds, int(steps), mode)
    return gif_html(path, "latent walk"), str(path), f"{frames} frames"


def rate_start(
    studio: actions.Studio, label: str, n: float, question: str, seed: float, blind: bool
) -> tuple[Any, Any, str]:
    session = rating.start_session(studio, label, int(n), question, int(seed), bool(blind))
    return session, rating.current_picture(session), rating.progress_text(session)


def rate_answer(studio: actions.Studio, session: dict | None, yes: bool) -> tuple[Any, Any, str]:
    if not session:
        raise gr.Error("press Start first")
    session = rating.answer(studio, session, yes)
    return session, rating.current_picture(session), rating.progress_text(session)


def show_copies(studio: actions.Studio, label: str) -> tuple[Any, Any, str]:
    """The memorization pairs of a run, when `ganvas memorization` wrote them into it."""
    run = studio.run(label)
    for folder in (run.path / "memorization", run.eval_dir / "memorization"):
        report = read_json(folder / "memorization.json")
        if isinstance(report, dict):
            pairs, hist = folder / "nearest_pairs.png", folder / "distances.png"
            text = (f"copy rate {report.get('copy_rate', 0):.3f} · threshold "
                    f"{report.get('threshold', 0):.4g} · median distance ratio "
                    f"{report.get('distance_ratio', 0):.3f} (≈ 1 healthy, → 0 copying) · "
                    f"step {report.get('step', '?')}, {report.get('n', '?')} samples")  # fmt: skip
            return open_picture(pairs), open_picture(hist), text
    return None, None, (f"Not computed. Run: `ganvas memorization {label} --data DATA "
                        f"--out-dir {run.path / 'memorization'}`")  # fmt: skip


def restore(studio: actions.Studio, label: str, picture: Any) -> tuple[Any, Any, str, str]:
    restored, bicubic = actions.restore_picture(studio, label, picture)
    restorer = studio.restorer(label)
    h, w = restored.shape[:2]
    text = (f"{w}×{h} px: ×{restorer.factor} by {label} ({restorer.weights}, step "
            f"{restorer.step}), beside bicubic enlargement")  # fmt: skip
    return restored, bicubic, str(actions.save_png(studio, restored)), text


# --- The page ------------------------------------------------------------------------------


def build_app(studio: actions.Studio) -> gr.Blocks:
    """The studio's page (not yet launched)."""
    labels, generators, restore_runs = actions.run_choices(studio)
    first = labels[0] if labels else None
    first_generator = generators[0] if generators else None
    bind = functools.partial
    with gr.Blocks(title="ganvas studio", analytics_enabled=False) as app:
        gr.Markdown("# ganvas studio")
        with gr.Tabs() as tabs:
            with gr.Tab("Runs", id="runs"):
                table = gr.Dataframe(headers=COLUMNS, interactive=False, elem_id="runs-table",
                                     label="runs (click a row to open it)")  # fmt: skip
                thumbs = gr.Gallery(label="newest samples", columns=6, height=220, format="png",
                                    object_fit="contain",
                                    elem_classes="pixelated")  # fmt: skip
                refresh = gr.Button("Refresh")
                timer = gr.Timer(REFRESH_S)
            with gr.Tab("Run", id="run"):
                run_pick = _run_dropdown(labels, first, "run-pick")
                heading = gr.Markdown(elem_id="run-heading")
                step = gr.Slider(0, 1, step=1, value=0, label="sample grid (through training)")
                step_text = gr.Markdown()
                grid = gr.Image(label="fixed-noise samples", elem_classes="pixelated",
                                format="png", interactive=False, height=320)  # fmt: skip
                gif = gr.HTML(label="progress")
                charts = gr.Gallery(label="curves", columns=3, height=260, format="png",
                                    object_fit="contain")  # fmt: skip
                with gr.Accordion("config, dataset, evaluation", open=False):
                    config = gr.Code(language="yaml", label="config.yaml")
                    card = gr.JSON(label="dataset card")
                    preview = gr.Image(label="dataset preview", interactive=False, format="png")
                    evals = gr.JSON(label="evaluation")
                report_button = gr.Button("Make report page")
                report_file = gr.File(label="report.html (self-contained)")
            with gr.Tab("Generate", id="generate"):
                gen_pick = _run_dropdown(generators, first_generator, "gen-pick")
                with gr.Row():
                    seed = gr.Number(0, label="seed", precision=0, minimum=0)
                    count = gr.Slider(1, MAX_IMAGES, value=16, step=1, label="images")
                    class_pick = gr.Dropdown(["all"], value="all", label="class", visible=False)
                    use_trunc = gr.Checkbox(False, label="truncation", visible=False)
                    trunc = gr.Slider(0, 1, value=0.7, step=0.05, label="ψ", visible=False)
                gen_button = gr.Button("Generate", variant="primary", elem_id="generate")
                gallery = gr.Gallery(label="samples", columns=8, format="png",
                                     elem_id="gen-gallery", elem_classes="pixelated")  # fmt: skip
                with gr.Row():
                    png_file = gr.File(label="grid PNG")
                    zip_file = gr.File(label="ZIP of PNGs")
                gr.Markdown(f"### Same seeds, 2–{MAX_COMPARE} runs side by side")
                with gr.Row():
                    cmp_pick = gr.Dropdown(generators, multiselect=True, max_choices=MAX_COMPARE,
                                           label="runs")  # fmt: skip
                    cmp_count = gr.Slider(1, 16, value=8, step=1, label="images per run")
                cmp_button = gr.Button("Compare")
                cmp_gallery = gr.Gallery(label="comparison", columns=8, elem_classes="pixelated")
            with gr.Tab("Walk", id="walk"):
                walk_pick = _run_dropdown(generators, first_generator, "walk-pick")
                with gr.Row():
                    walk_seeds = gr.Textbox("0, 1, 2", label="seeds (keyframes)")
                    walk_steps = gr.Slider(1, MAX_WALK_STEPS, value=10, step=1, label="steps")
                    walk_mode = gr.Radio(["slerp", "lerp"], value="slerp", label="path")
                walk_button = gr.Button("Walk", elem_id="walk-go")
                walk_view = gr.HTML()
                walk_info = gr.Markdown()
                walk_file = gr.File(label="GIF")
            with gr.Tab("Rate", id="rate"):
                rate_pick = _run_dropdown(generators, first_generator, "rate-pick")
                with gr.Row():
                    question = gr.Textbox("Does this look like a real image from the data?",
                                          label="question")  # fmt: skip
                    rate_n = gr.Slider(1, MAX_IMAGES, value=10, step=1, label="images")
                    rate_seed = gr.Number(0, label="seed", precision=0, minimum=0)
                    blind = gr.Checkbox(False, label="blind: mix real images in")
                rate_start_button = gr.Button("Start", elem_id="rate-start")
                session = gr.State(None)
                rate_image = gr.Image(label="image", height=256, interactive=False,
                                      elem_id="rate-image", elem_classes="pixelated")  # fmt: skip
                with gr.Row():
                    yes = gr.Button("Yes (y)", elem_id="rate-yes", variant="primary")
                    no = gr.Button("No (n)", elem_id="rate-no")
                rate_text = gr.Markdown("Press Start to rate.", elem_id="rate-progress")
            with gr.Tab("Copies", id="copies"):
                copies_pick = _run_dropdown(generators, first_generator, "copies-pick")
                copies_button = gr.Button("Show")
                copies_text = gr.Markdown()
                pairs = gr.Image(label="sample | nearest training image", interactive=False,
                                 format="png")  # fmt: skip
                hist = gr.Image(label="distances", interactive=False, format="png")
            with gr.Tab("Restore", id="restore"):
                restore_pick = gr.Dropdown(restore_runs, label="restore run",
                                           value=restore_runs[0] if restore_runs else None,
                                           allow_custom_value=True, elem_id="restore-pick")  # fmt: skip
                gr.Markdown("Clean and enlarge a picture with a restore run "
                            f"(`--preset restore-x2-32to64`; at most {MAX_RESTORE_SIDE} px a side, "
                            "bigger ones in overlapping tiles).")  # fmt: skip
                restore_input = gr.Image(label="picture", type="pil", sources=["upload"],
                                         image_mode=None, height=200, elem_id="restore-input",
                                         elem_classes="pixelated")  # fmt: skip
                restore_button = gr.Button("Restore", variant="primary", elem_id="restore-go")
                restore_text = gr.Markdown(elem_id="restore-info")
                with gr.Row():
                    restored_view = gr.Image(label="restored", format="png", interactive=False,
                                             height=320, elem_id="restore-output",
                                             elem_classes="pixelated")  # fmt: skip
                    bicubic_view = gr.Image(label="bicubic", format="png", interactive=False,
                                            height=320, elem_classes="pixelated")  # fmt: skip
                restore_file = gr.File(label="restored PNG")

        picks = [run_pick, gen_pick, cmp_pick, walk_pick, rate_pick, copies_pick]
        run_outputs = [heading, step, grid, step_text, gif, charts, config, card, preview, evals]
        safe = {"concurrency_limit": CONCURRENCY}
        for trigger in (app.load, refresh.click, timer.tick):
            trigger(bind(refresh_runs, studio), None, [table, thumbs, *picks, restore_pick],
                    queue=False, show_progress="hidden")  # fmt: skip
        table.select(_open_row, [table], [run_pick, tabs], queue=False)
        run_pick.change(bind(show_run, studio), [run_pick], run_outputs, **safe)
        step.change(bind(show_grid, studio), [run_pick, step], [grid, step_text], queue=False)
        report_button.click(user_errors(bind(make_report, studio)), [run_pick], [report_file],
                            **safe)  # fmt: skip
        gen_pick.change(bind(generate_controls, studio), [gen_pick], [class_pick, use_trunc],
                        **safe)  # fmt: skip
        use_trunc.change(lambda on: gr.update(visible=on), [use_trunc], [trunc], queue=False)
        gen_button.click(user_errors(bind(generate, studio)),
                         [gen_pick, seed, count, class_pick, trunc, use_trunc],
                         [gallery, png_file, zip_file], api_name="generate", **safe)  # fmt: skip
        cmp_button.click(user_errors(bind(compare, studio)), [cmp_pick, seed, cmp_count],
                         [cmp_gallery], api_name="compare", **safe)  # fmt: skip
        walk_button.click(user_errors(bind(walk, studio)),
                          [walk_pick, walk_seeds, walk_steps, walk_mode],
                          [walk_view, walk_file, walk_info], api_name="walk", **safe)  # fmt: skip
        rate_start_button.click(user_errors(bind(rate_start, studio)),
                                [rate_pick, rate_n, question, rate_seed, blind],
                                [session, rate_image, rate_text], **safe)  # fmt: skip
        for button, value in ((yes, True), (no, False)):
            button.click(user_errors(bind(rate_answer, studio, yes=value)), [session],
                         [session, rate_image, rate_text], **safe)  # fmt: skip
        copies_button.click(user_errors(bind(show_copies, studio)), [copies_pick],
                            [pairs, hist, copies_text], **safe)  # fmt: skip
        restore_button.click(user_errors(bind(restore, studio)), [restore_pick, restore_input],
                             [restored_view, bicubic_view, restore_file, restore_text],
                             api_name="restore", **safe)  # fmt: skip
        app.load(bind(show_run, studio), [run_pick], run_outputs)
        app.load(bind(generate_controls, studio), [gen_pick], [class_pick, use_trunc])
    return app


def _run_dropdown(labels: list[str], value: str | None, elem_id: str) -> Any:
    # custom values are allowed so that runs appearing after start can be chosen; every
    # action checks the name against the catalog (RunRefused) whatever the page sent
    return gr.Dropdown(labels, value=value, label="run", allow_custom_value=True,
                       elem_id=elem_id)  # fmt: skip


def _open_row(table: Any, evt: gr.SelectData) -> tuple[Any, Any]:
    row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
    label = table.iloc[row, 0] if hasattr(table, "iloc") else table[row][0]
    return gr.update(value=label), gr.Tabs(selected="run")


def theme() -> Any:
    """The default look with system fonts: nothing is fetched from Google Fonts."""
    return gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])


def check_exposure(host: str, auth: tuple[str, str] | None) -> str | None:
    """A warning when the app listens beyond this machine without a password."""
    if host in ("127.0.0.1", "localhost", "::1") or auth is not None:
        return None
    return (
        f"ganvas studio listens on {host} without --auth: anyone who can reach this "
        "machine can open the runs and use its CPU/GPU; pass --auth user:password"
    )


def launch(
    app: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    block: bool = True,
    queue_size: int = QUEUE_SIZE,
) -> Any:
    """Serve the page (queue: CONCURRENCY at once per event, `queue_size` waiting)."""
    warning = check_exposure(host, auth)
    if warning:
        warnings.warn(warning, stacklevel=2)
    app.queue(max_size=queue_size, default_concurrency_limit=CONCURRENCY)
    return app.launch(server_name=host, server_port=port, auth=auth, prevent_thread_lock=not block,
                      quiet=True, ssr_mode=False, share=False, theme=theme(), css=CSS,
                      js=KEYS_JS, footer_links=[], mcp_server=False, max_file_size="1mb",
                      enable_monitoring=False)  # fmt: skip
