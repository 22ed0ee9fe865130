"""Moved to `ganvas.checkpoint` (sampling must not import the training package); this name
stays until trainer.py imports the new one."""

import sys

from ganvas import checkpoint

# An alias of the module itself, not a copy of its names, so that patching an attribute here
# (tests/training/test_checkpoint.py patches `save_file`) patches the code that runs.
sys.modules[__name__] = checkpoint
