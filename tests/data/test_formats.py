"""Dataset formats read by content: each built here in its real layout and read back exactly.

CIFAR's pickled batch dicts and meta file in a .tar.gz, MNIST idx files (gzipped and not),
an LMDB of JPEG values, zip and tar archives with class folders, a Hugging Face `datasets`
folder written by `datasets` itself and a parquet file. Each has a damaged entry, which is
reported while the rest is kept.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganvas.data.card import dataset_card
from ganvas.data.formats import detect
from ganvas.data.formats.cifar import PickleRefused, restricted_loads
from ganvas.data.prepare import prepare_dataset
from ganvas.data.store import DatasetError, load_dataset


def _images(n: int, size: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    shape = (n, size, size, channels) if channels == 3 else (n, size, size)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _prepare(source, out: Path, **settings):
    settings.setdefault("workers", 1)
    return prepare_dataset(source, out, progress=False, **settings)


def _labels_as_names(dataset) -> list[str]:
    return [dataset.classes[k] for k in dataset.labels]


# --- CIFAR ---------------------------------------------------------------------------------

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]  # fmt: skip


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """[N, 32, 32, 3] → CIFAR's [N, 3072]: the red plane, then green, then blue."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def make_cifar10(path: Path, batches: list[int], test: int = 6, damage: str | None = None):
    """A cifar-10-python.tar.gz as the real one is laid out; returns {batch: (images, labels)}."""
    made = {}
    with tarfile.open(path, "w:gz") as archive:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        meta = {"num_cases_per_batch": batches[0], "label_names": CIFAR10_NAMES, "num_vis": 3072}
        _add(archive, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        names = [f"data_batch_{k + 1}" for k in range(len(batches))] + ["test_batch"]
        for seed, (name, n) in enumerate(zip(names, [*batches, test])):
            images = _images(n, 32, seed)
            labels = [int(x) for x in np.random.default_rng(seed + 50).integers(0, 10, n)]
            batch = {"batch_label": f"{name} of the test set", "labels": labels,
                     "data": _cifar_rows(images),
                     "filenames": [f"img_{seed}_{i}.png" for i in range(n)]}  # fmt: skip
            data = pickle.dumps(batch, protocol=2)
            if damage == name:
                data = data[: len(data) // 2]
            _add(archive, f"cifar-10-batches-py/{name}", data)
            made[name] = (images, labels)
        _add(archive, "cifar-10-batches-py/readme.html", b"<html></html>")
    return made


def test_cifar10_tarball_reads_back_pixel_exact_with_its_classes(tmp_path):
    source = tmp_path / "cifar-10-python.tar.gz"
    made = make_cifar10(source, [10, 8])
    assert detect(source) == "cifar"
    report = _prepare(source, tmp_path / "out", size=32)
    data = load_dataset(report.out)
    expected = np.concatenate([made["data_batch_1"][0], made["data_batch_2"][0]])
    np.testing.assert_array_equal(np.asarray(data.images), expected)
    labels = made["data_batch_1"][1] + made["data_batch_2"][1]
    assert _labels_as_names(data) == [CIFAR10_NAMES[k] for k in labels]
    assert data.classes == sorted({CIFAR10_NAMES[k] for k in labels})
    assert "CIFAR-10" in report.source_notes[0] and report.dropped == []
    # A container's entries are listed as a range, not a name each (manifest version 2).
    assert data.manifest["files"] == [
        {"container": "0:cifar-10-python.tar.gz", "entries": [[0, 18]], "outputs": 1}
    ]
    assert next(data.file_names()) == "0:cifar-10-python.tar.gz#entry=0"

    test = load_dataset(_prepare(source, tmp_path / "test", size=32, source_split="test").out)
    np.testing.assert_array_equal(np.asarray(test.images), made["test_batch"][0])


def test_cifar_options_and_subsets_apply(tmp_path):
    """--classes, --max-per-class and the val split work on CIFAR as on class folders."""
    source = tmp_path / "download.bin"  # recognised by content, not by name
    made = make_cifar10(source, [12, 12])
    labels = made["data_batch_1"][1] + made["data_batch_2"][1]
    chosen = [CIFAR10_NAMES[labels[0]], CIFAR10_NAMES[labels[1]]]
    report = _prepare(source, tmp_path / "out", size=16, classes=chosen, max_per_class=2,
                      val_fraction=0.25)  # fmt: skip
    data = load_dataset(report.out)
    assert set(data.classes) == set(chosen) and np.bincount(data.labels).max() <= 2
    assert len(data.manifest["splits"]["val"]) >= 1
    reasons = {reason for _, reason in report.dropped}
    assert "class not chosen (--classes)" in reasons
    assert report.contact_sheets == {} or "class not chosen" not in report.contact_sheets


def make_cifar100(path: Path, n_train: int = 12, n_test: int = 4):
    fine = [f"fine{k:02d}" for k in range(100)]
    coarse = [f"coarse{k:02d}" for k in range(20)]
    made = {}
    with tarfile.open(path, "w:gz") as archive:
        _add(archive, "cifar-100-python/meta",
             pickle.dumps({"fine_label_names": fine, "coarse_label_names": coarse}, protocol=2))  # fmt: skip
        for seed, (name, n) in enumerate((("train", n_train), ("test", n_test))):
            images = _images(n, 32, seed + 10)
            fine_labels = [int(x) for x in np.random.default_rng(seed).integers(0, 100, n)]
            coarse_labels = [k // 5 for k in fine_labels]
            batch = {"filenames": [f"{name}{i}.png" for i in range(n)], "batch_label": name,
                     "fine_labels": fine_labels, "coarse_labels": coarse_labels,
                     "data": _cifar_rows(images)}  # fmt: skip
            _add(archive, f"cifar-100-python/{name}", pickle.dumps(batch, protocol=2))
            made[name] = (images, fine_labels, coarse_labels)
    return made, fine, coarse


def test_cifar100_fine_or_coarse_labels(tmp_path):
    source = tmp_path / "cifar-100-python.tar.gz"
    made, fine, coarse = make_cifar100(source)
    images, fine_labels, coarse_labels = made["train"]
    data = load_dataset(_prepare(source, tmp_path / "fine", size=32).out)
    np.testing.assert_array_equal(np.asarray(data.images), images)
    assert _labels_as_names(data) == [fine[k] for k in fine_labels]
    data = load_dataset(_prepare(source, tmp_path / "coarse", size=32, coarse_labels=True).out)
    assert _labels_as_names(data) == [coarse[k] for k in coarse_labels]


def test_a_damaged_cifar_batch_is_reported_and_the_rest_kept(tmp_path):
    source = tmp_path / "cifar-10-python.tar.gz"
    made = make_cifar10(source, [10, 8], damage="data_batch_2")
    report = _prepare(source, tmp_path / "out", size=32)
    np.testing.assert_array_equal(
        np.asarray(load_dataset(report.out).images), made["data_batch_1"][0]
    )
    assert len(report.dropped) == 1
    path, reason = report.dropped[0]
    assert path.endswith("#data_batch_2") and "cannot unpickle" in reason and "truncated" in reason


class _RunsCode:
    """Unpickling this calls os.system: what a malicious batch would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("member", ["batches.meta", "data_batch_1"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, member):
    marker = tmp_path / "code-ran"
    evil = pickle.dumps({"label_names": CIFAR10_NAMES, "data": [_RunsCode(marker)]}, protocol=2)
    with pytest.raises(PickleRefused, match="system"):
        restricted_loads(evil)
    source = tmp_path / "cifar-10-python.tar.gz"
    make_cifar10(source, [4])
    # Swap one member of the real layout for the malicious pickle.
    rebuilt = tmp_path / "evil.tar.gz"
    with tarfile.open(source) as good, tarfile.open(rebuilt, "w:gz") as bad:
        for info in good.getmembers():
            data = good.extractfile(info).read() if info.isfile() else None
            if info.name.endswith("/" + member):
                data = evil
            if data is None:
                bad.addfile(info)
            else:
                _add(bad, info.name, data)
    with pytest.raises(DatasetError, match=f"refusing to unpickle .*{member}.*posix.system|"
                       f"refusing to unpickle .*{member}.*os.system"):  # fmt: skip
        _prepare(rebuilt, tmp_path / "out", size=32)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_the_numpy_arrays_of_real_cifar_pickles_are_admitted():
    """What a CIFAR batch's array needs (protocol 2, as Python 2 wrote them) loads; the
    loader refuses code even when it hides inside an array of objects."""
    rows = _images(3, 32).reshape(3, 3072)
    loaded = restricted_loads(pickle.dumps({"data": rows}, protocol=2))
    np.testing.assert_array_equal(loaded["data"], rows)
    assert restricted_loads(pickle.dumps(rows, protocol=4)).dtype == np.uint8
    hidden = np.array([_RunsCode(Path("/nonexistent/x"))], dtype=object)
    with pytest.raises(PickleRefused):
        restricted_loads(pickle.dumps(hidden, protocol=2))


# --- idx (MNIST) ---------------------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    return (
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}i", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


@pytest.mark.parametrize("gzipped", [True, False])
def test_mnist_idx_files_read_back_with_their_labels(tmp_path, gzipped):
    images = _images(30, 28, channels=1)
    labels = np.random.default_rng(1).integers(0, 10, 30).astype(np.uint8)
    suffix = ".gz" if gzipped else ""
    write = gzip.compress if gzipped else (lambda b: b)
    image_file = tmp_path / f"train-images-idx3-ubyte{suffix}"
    image_file.write_bytes(write(_idx(images)))
    (tmp_path / f"train-labels-idx1-ubyte{suffix}").write_bytes(write(_idx(labels)))
    assert detect(image_file) == "idx"
    data = load_dataset(_prepare(image_file, tmp_path / "out", size=28, channels=1).out)
    np.testing.assert_array_equal(np.asarray(data.images)[..., 0], images)
    assert _labels_as_names(data) == [str(k) for k in labels]


def test_a_truncated_idx_file_keeps_the_images_before_the_cut(tmp_path):
    images = _images(12, 16, channels=1)
    raw = _idx(images)
    image_file = tmp_path / "t10k-images-idx3-ubyte.gz"
    image_file.write_bytes(gzip.compress(raw[: len(raw) - 16 * 16 * 2 - 100]))  # 9.6 of 12
    report = _prepare(image_file, tmp_path / "out", size=16, channels=1)
    data = load_dataset(report.out)
    np.testing.assert_array_equal(np.asarray(data.images)[..., 0], images[:9])
    assert [p.rsplit("#", 1)[1] for p, _ in report.dropped] == ["9", "10", "11"]
    assert all("idx file ends early" in reason for _, reason in report.dropped)
    assert data.labels is None


def test_emnist_is_turned_upright_and_named_by_its_mapping(tmp_path):
    images = _images(6, 28, channels=1)
    labels = np.array([0, 1, 2, 0, 1, 2], np.uint8)
    (tmp_path / "emnist-letters-train-images-idx3-ubyte").write_bytes(_idx(images))
    (tmp_path / "emnist-letters-train-labels-idx1-ubyte").write_bytes(_idx(labels))
    (tmp_path / "emnist-letters-mapping.txt").write_text("0 65\n1 66\n2 67\n")
    source = tmp_path / "emnist-letters-train-images-idx3-ubyte"
    data = load_dataset(_prepare(source, tmp_path / "out", size=28, channels=1).out)
    np.testing.assert_array_equal(np.asarray(data.images)[..., 0], images.transpose(0, 2, 1))
    assert _labels_as_names(data) == list("ABCABC")


def test_idx_label_file_mismatch_is_one_clear_error(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx(_images(5, 8, channels=1)))
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(_idx(np.zeros(4, np.uint8)))
    with pytest.raises(DatasetError, match=f"{labels} holds 4 labels but its image file holds 5"):
        _prepare(tmp_path / "train-images-idx3-ubyte", tmp_path / "out", size=8)
    with pytest.raises(DatasetError, match="is an idx label file"):
        _prepare(labels, tmp_path / "out", size=8)


# --- LMDB ----------------------------------------------------------------------------------


def make_lmdb(path: Path, n: int, size: int = 32, corrupt: int | None = None) -> list[bytes]:
    import lmdb

    values = [_jpeg(img) for img in _images(n, size, seed=3)]
    if corrupt is not None:
        values[corrupt] = values[corrupt][:200]  # cut short
    env = lmdb.open(str(path), map_size=64 * 2**20)
    with env.begin(write=True) as txn:
        for k, value in enumerate(values):
            txn.put(f"{k:040x}".encode(), value)
    env.close()
    return values


def test_lmdb_of_jpegs_reads_back_as_pil_decodes_them(tmp_path):
    source = tmp_path / "bedroom_train_lmdb"
    values = make_lmdb(source, 50, corrupt=17)
    assert detect(source) == "lmdb" and detect(source / "data.mdb") == "lmdb"
    report = _prepare(source, tmp_path / "out", size=32)
    data = load_dataset(report.out)
    expected = [np.asarray(Image.open(io.BytesIO(v)).convert("RGB")) for k, v in
                enumerate(values) if k != 17]  # fmt: skip
    np.testing.assert_array_equal(np.asarray(data.images), np.stack(expected))
    assert data.labels is None and len(report.dropped) == 1
    path, reason = report.dropped[0]
    assert path.endswith(f"#key={17:040x}") and "corrupt or truncated image" in reason
    # The corrupt entry splits the range; the dropped one is listed by its key.
    assert data.manifest["files"] == [
        {"container": "0:bedroom_train_lmdb", "entries": [[0, 17], [18, 50]], "outputs": 1}
    ]
    names = list(data.file_names())
    assert len(names) == 49 and names[17] == "0:bedroom_train_lmdb#entry=18"


def test_an_interrupted_lmdb_prepare_resumes(tmp_path, monkeypatch):
    """The journal keeps finished chunks: a rerun reads only what is left."""
    from ganvas.data import prepare as prepare_module

    source = tmp_path / "lmdb"
    make_lmdb(source, 40, size=16)
    monkeypatch.setattr(prepare_module, "_UNIT_BYTES", 16 * 16 * 3 * 10)  # chunks of 10
    calls = []
    original = prepare_module.scan_unit

    def flaky(unit, settings):
        calls.append(unit.chunk.start)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(unit, settings)

    monkeypatch.setattr(prepare_module, "scan_unit", flaky)
    with pytest.raises(KeyboardInterrupt):
        _prepare(source, tmp_path / "out", size=16)
    calls.clear()
    report = _prepare(source, tmp_path / "out", size=16)
    assert report.resumed == 2 and calls == [20, 30] and report.kept == 40


# --- zip and tar ---------------------------------------------------------------------------


def _class_members(n_per_class: int = 4, size: int = 16) -> dict[str, np.ndarray]:
    images = _images(2 * n_per_class, size, seed=5)
    return {f"photos/{c}/{k:02d}.png": images[i * n_per_class + k]
            for i, c in enumerate(("cat", "dog")) for k in range(n_per_class)}  # fmt: skip


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_archives_read_without_extracting_with_classes_from_their_folders(tmp_path, kind):
    members = _class_members()
    source = tmp_path / f"photos.{kind}"
    bad = "photos/dog/zz-broken.png"
    if kind == "zip":
        with zipfile.ZipFile(source, "w") as archive:
            for name, image in members.items():
                archive.writestr(name, _png(image))
            archive.writestr(bad, b"\x89PNG broken")
            archive.writestr("photos/.DS_Store", b"hidden")
    else:
        with tarfile.open(source, "w:gz" if kind.endswith("gz") else "w") as archive:
            for name, image in members.items():
                _add(archive, name, _png(image))
            _add(archive, bad, b"\x89PNG broken")
    assert detect(source) == ("zip" if kind == "zip" else "tar")
    assert not (tmp_path / "photos").exists()
    report = _prepare(source, tmp_path / "out", size=16)
    data = load_dataset(report.out)
    np.testing.assert_array_equal(np.asarray(data.images), np.stack(list(members.values())))
    assert data.classes == ["cat", "dog"]
    assert _labels_as_names(data) == [name.split("/")[1] for name in members]
    assert report.dropped == [(f"{source}/{bad}", report.dropped[0][1])]
    assert "not an image" in report.dropped[0][1] or "corrupt" in report.dropped[0][1]
    assert not (tmp_path / "photos").exists()  # nothing extracted


def test_a_zip_member_with_a_bad_crc_is_reported(tmp_path):
    members = _class_members(2)
    source = tmp_path / "a.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_STORED) as archive:
        for name, image in members.items():
            archive.writestr(name, _png(image))
    raw = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("photos/cat/01.png")
    # Flip a byte inside the member's data (after its local header).
    start = info.header_offset + 30 + len(info.filename) + 40
    raw[start] ^= 0xFF
    source.write_bytes(bytes(raw))
    report = _prepare(source, tmp_path / "out", size=16)
    assert report.kept == 3
    assert report.dropped[0][0].endswith("photos/cat/01.png")
    assert "Bad CRC" in report.dropped[0][1] or "corrupt" in report.dropped[0][1]


# --- Hugging Face datasets ---------------------------------------------------------------


def _hf_dataset(n: int = 10):
    datasets = pytest.importorskip("datasets")
    images = _images(n, 16, seed=7)
    labels = [k % 3 for k in range(n)]
    cells = [Image.fromarray(img) for img in images]
    cells[4] = {"bytes": b"definitely not a picture", "path": None}
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["ant", "bee", "cow"])}
    )
    table = datasets.Dataset.from_dict({"image": cells, "label": labels}, features=features)
    return datasets, table, images, labels


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet", "DatasetDict"])
def test_hugging_face_datasets_with_image_and_class_label(tmp_path, layout):
    datasets, table, images, labels = _hf_dataset()
    if layout == "save_to_disk":
        source = tmp_path / "hf"
        table.save_to_disk(str(source))
    elif layout == "parquet":
        source = tmp_path / "train-00000-of-00001.parquet"
        table.to_parquet(str(source))
    else:
        source = tmp_path / "hfdict"
        datasets.DatasetDict(train=table.select(range(2)), test=table).save_to_disk(str(source))
    assert detect(source) == "hf"
    split = "test" if layout == "DatasetDict" else "train"
    report = _prepare(source, tmp_path / "out", size=16, source_split=split)
    data = load_dataset(report.out)
    keep = [k for k in range(len(images)) if k != 4]
    np.testing.assert_array_equal(np.asarray(data.images), images[keep])
    assert _labels_as_names(data) == [["ant", "bee", "cow"][labels[k]] for k in keep]
    assert len(report.dropped) == 1 and report.dropped[0][0].endswith("#4")
    if layout == "DatasetDict":
        with pytest.raises(DatasetError, match="holds the splits train, test"):
            _prepare(source, tmp_path / "x", size=16, source_split="validation")


# --- across formats ------------------------------------------------------------------------


def test_containers_and_folders_mix_and_unlabelled_sources_say_why(tmp_path):
    lmdb_source = tmp_path / "lmdb"
    make_lmdb(lmdb_source, 5, size=16)
    folder = tmp_path / "folder"
    folder.mkdir()
    for k, image in enumerate(_images(3, 16, seed=9)):
        Image.fromarray(image).save(folder / f"{k}.png")
    report = _prepare([lmdb_source, folder], tmp_path / "out", size=16)
    assert report.kept == 8 and report.classes == []
    with pytest.raises(DatasetError, match="lmdb carries no labels"):
        _prepare(lmdb_source, tmp_path / "out2", size=16, classes=["a"])


def test_prepare_cli_reads_a_format_and_prints_what_it_found(tmp_path):
    from typer.testing import CliRunner

    from ganvas.cli import app

    source = tmp_path / "cifar-10-python.tar.gz"
    make_cifar10(source, [6])
    result = CliRunner().invoke(app, ["prepare", str(source), "--out", str(tmp_path / "o"),
                                      "--size", "32", "--workers", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "CIFAR-10 cifar-10-python.tar.gz: train batches" in result.output
    assert "wrote" in result.output
    result = CliRunner().invoke(app, ["prepare", str(source), "--out", str(tmp_path / "p"),
                                      "--source-split", "dev"])  # fmt: skip
    assert result.exit_code == 2 and "'train', 'test' or 'all'" in result.output


def test_chunks_read_in_worker_processes_give_the_same_dataset(tmp_path, monkeypatch):
    from ganvas.data import prepare as prepare_module

    source = tmp_path / "lmdb"
    make_lmdb(source, 30, size=16, corrupt=12)
    monkeypatch.setattr(prepare_module, "_UNIT_BYTES", 16 * 16 * 3 * 10)  # 3 chunks
    one = load_dataset(_prepare(source, tmp_path / "one", size=16).out)
    report = _prepare(source, tmp_path / "two", size=16, workers=2)
    two = load_dataset(report.out)
    np.testing.assert_array_equal(np.asarray(one.images), np.asarray(two.images))
    assert one.manifest["files"] == two.manifest["files"] and len(report.dropped) == 1


# --- compact bookkeeping ------------------------------------------------------------------


def test_near_duplicate_container_entries_are_dropped_by_name(tmp_path):
    """Names stay in the journal on disk; the dropped ones are read back for the report."""
    import lmdb

    source = tmp_path / "lmdb"
    images = _images(3, 32, seed=11)
    values = [_png(images[k % 3]) for k in range(6)]  # entries 3, 4, 5 repeat 0, 1, 2
    env = lmdb.open(str(source), map_size=16 * 2**20)
    with env.begin(write=True) as txn:
        for k, value in enumerate(values):
            txn.put(f"k{k}".encode(), value)
    env.close()
    report = _prepare(source, tmp_path / "out", size=32, dedupe=0)
    data = load_dataset(report.out)
    np.testing.assert_array_equal(np.asarray(data.images), images)
    assert [path for path, _ in report.dropped] == [f"{source}#key=k{k}" for k in (3, 4, 5)]
    assert "near-duplicate (of 0:lmdb#key=k0," in report.dropped[0][1]
    assert data.manifest["files"] == [{"container": "0:lmdb", "entries": [[0, 3]], "outputs": 1}]


def test_container_crops_and_class_caps_are_listed_as_ranges(tmp_path):
    """Each name a manifest's ranges expand to is the image at its row."""
    source = tmp_path / "cifar-10-python.tar.gz"
    make_cifar10(source, [10])
    every = load_dataset(_prepare(source, tmp_path / "all", size=16, random_crops=2).out)
    row_of = {name: k for k, name in enumerate(every.file_names())}
    assert len(row_of) == len(every) == 20
    assert list(row_of)[:2] == [
        "0:cifar-10-python.tar.gz#entry=0" + s for s in ("#crop=0", "#crop=1")
    ]
    capped = load_dataset(
        _prepare(source, tmp_path / "capped", size=16, random_crops=2, max_per_class=3).out
    )
    names = list(capped.file_names())
    assert len(names) == len(capped) == len(capped.labels) < 20
    assert np.bincount(capped.labels).max() <= 3
    rows = [row_of[name] for name in names]
    np.testing.assert_array_equal(np.asarray(capped.images), np.asarray(every.images)[rows])
    assert [capped.classes[k] for k in capped.labels] == [
        every.classes[every.labels[r]] for r in rows
    ]
    assert any(record["outputs"] == 1 for record in capped.manifest["files"])  # a cut picture
    assert sum(dataset_card(capped)["per_source"].values()) == len(capped)


def _long_tar(path: Path, images: np.ndarray, mode: str = "w:gz") -> list[str]:
    names = [
        f"photos/{'cat' if k % 2 else 'dog'}/{'x' * 120}-{k:02d}.png" for k in range(len(images))
    ]
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT) as archive:
        for name, image in zip(names, images):
            _add(archive, name, _png(image))
    return names


@pytest.mark.parametrize("workers", [1, 2])
def test_a_tar_in_many_chunks_reads_on_from_each_chunks_first_header(
    tmp_path, monkeypatch, workers
):
    from ganvas.data import prepare as prepare_module

    images = _images(25, 16, seed=9)
    source = tmp_path / "photos.tar.gz"
    names = _long_tar(source, images)  # names over 100 characters: GNU long-name headers
    monkeypatch.setattr(prepare_module, "_UNIT_BYTES", 16 * 16 * 3 * 4)  # chunks of 4
    report = _prepare(source, tmp_path / "out", size=16, workers=workers)
    data = load_dataset(report.out)
    np.testing.assert_array_equal(np.asarray(data.images), images)
    assert _labels_as_names(data) == [name.split("/")[1] for name in names]
    assert report.dropped == []


def test_a_tar_cut_short_keeps_the_members_before_the_damage(tmp_path, monkeypatch):
    from ganvas.data import prepare as prepare_module

    images = _images(12, 16, seed=4)
    whole = tmp_path / "whole.tar"
    _long_tar(whole, images, mode="w")
    raw = whole.read_bytes()
    source = tmp_path / "cut.tar"
    source.write_bytes(raw[: len(raw) * 2 // 3])
    monkeypatch.setattr(prepare_module, "_UNIT_BYTES", 16 * 16 * 3 * 5)  # chunks of 5
    report = _prepare(source, tmp_path / "out", size=16)
    data = load_dataset(report.out)
    kept = len(data)
    assert 0 < kept < 12
    np.testing.assert_array_equal(np.asarray(data.images), images[:kept])
    assert "damaged or cut short" in report.dropped[-1][1] or "cut short" in report.dropped[-1][1]
