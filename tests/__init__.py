"""ganvas tests (a package, so that `tests.conftest` is ours: torch-fidelity ships a top-level `tests`)."""
