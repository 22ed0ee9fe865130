#!/usr/bin/env bash
# The test suite on the oldest torch ganvas supports (2.4.1, torchvision 0.19.1), in its own
# virtual environment (.venv-torch24; a CUDA build of several GB from the registry). CI runs
# the newest torch; run this before a release or after touching autograd, export or
# distributed code. Arguments go to pytest:
#
#     bash scripts/test_oldest_torch.sh -m "not slow"      # the fast tests, ~7 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-torch24/bin/python ]; then
    python3 -m venv .venv-torch24
    .venv-torch24/bin/python -m pip install --quiet --upgrade pip
fi
.venv-torch24/bin/python -m pip install --quiet -e ".[test]" torch==2.4.1 torchvision==0.19.1
.venv-torch24/bin/python -c "import torch; print('torch', torch.__version__)"
.venv-torch24/bin/python -m pytest -p no:cacheprovider "$@"
