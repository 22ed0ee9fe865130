import numpy as np
import pytest
import torch

from ganvas.data.loader import BatchSampler


def _images(n=20, size=4):
    # Image i is filled with the value i, so a batch tells which images it holds.
    return np.repeat(np.arange(n, dtype=np.uint8)[:, None, None, None], size * size * 3).reshape(
        n, size, size, 3
    )


def _ids(batch: torch.Tensor) -> list[int]:
    return ((batch[:, 0, 0, 0] + 1) * 127.5).round().int().tolist()


def test_batches_are_float_nchw_in_minus_one_to_one():
    images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    images[0] = 0
    images[1] = 255
    sampler = BatchSampler(images, None, batch_size=10, seed=0)
    batch, labels = sampler.next()
    assert batch.shape == (10, 3, 8, 8) and batch.dtype == torch.float32 and labels is None
    assert batch.min() == -1 and batch.max() == 1


def test_an_epoch_visits_every_image_once_and_epochs_differ():
    sampler = BatchSampler(_images(20), None, batch_size=5, seed=3)
    epoch0 = sum((_ids(sampler.next()[0]) for _ in range(4)), [])
    epoch1 = sum((_ids(sampler.next()[0]) for _ in range(4)), [])
    assert sorted(epoch0) == list(range(20)) and sorted(epoch1) == list(range(20))
    assert epoch0 != epoch1


def test_state_dict_resumes_the_same_batches():
    a = BatchSampler(_images(20), np.arange(20), batch_size=6, seed=1, hflip=True)
    for _ in range(5):
        a.next()
    state = a.state_dict()
    expected = [a.next() for _ in range(4)]
    b = BatchSampler(_images(20), np.arange(20), batch_size=6, seed=1, hflip=True)
    b.load_state_dict(state)
    for (img_a, lab_a), (img_b, lab_b) in zip(expected, [b.next() for _ in range(4)]):
        assert torch.equal(img_a, img_b) and torch.equal(lab_a, lab_b)


def test_hflip_mirrors_some_images():
    images = np.zeros((16, 4, 4, 3), np.uint8)
    images[:, :, 0] = 255  # left column white
    batch, _ = BatchSampler(images, None, batch_size=16, seed=0, hflip=True).next()
    left_white = (batch[:, 0, :, 0] == 1).all(1)
    right_white = (batch[:, 0, :, 3] == 1).all(1)
    assert left_white.any() and right_white.any()
    assert torch.equal(left_white, ~right_white)


def test_batch_bigger_than_dataset_is_refused():
    with pytest.raises(ValueError, match="larger than the dataset"):
        BatchSampler(_images(3), None, batch_size=4, seed=0)
