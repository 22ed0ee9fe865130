"""Conditional families draw the class they are asked for (issue: conditional art).

A simple classifier trained on the real images (nearest mean blob colour) names the class of
100 samples per class after a short CPU training; see benchmarks/bench_conditional.py for the
full table and its figures."""

import pytest
from benchmarks.bench_conditional import class_accuracy, colour_classes


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    return colour_classes(tmp_path_factory.mktemp("colours") / "data")


@pytest.mark.slow
def test_conditional_families_beat_chance_and_the_unconditional_control(colour_data, tmp_path):
    steps = {"acgan": 600, "cdcgan": 600, "projection": 600, "biggan": 300, "dcgan": 300}
    accuracy = {
        family: class_accuracy(family, colour_data, tmp_path / family, n)[0]
        for family, n in steps.items()
    }
    control = accuracy.pop("dcgan")
    assert control < 0.4, f"an unconditional GAN cannot follow labels: {control}"
    assert max(accuracy.values()) >= 0.9, accuracy
    for family, value in accuracy.items():
        assert value >= 0.6, f"{family}: class accuracy {value:.2f} (chance 0.25)"
