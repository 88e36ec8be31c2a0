"""HTSC reproducibility study: core library."""
import os

__version__ = "0.1.0"

# oneDNN (PyTorch's CPU convolutions) keeps compiled kernels in an LRU cache of 1024 primitives by default.
# A process that runs several networks or precisions in turn (``htsc bench train``, ``htsc bench precision``,
# a notebook training more than one stage) overflows it and recompiles kernels on every step: measured with
# ``htsc bench train --stages spatial,motion``, MotionNet's bf16 step went from 65 to 78 ms after the spatial
# stage's variants, and back to 66 ms with room for 4096. oneDNN reads the variable when it builds its first
# primitive, so it takes effect when htsc_core is imported before any convolution runs; a value set by the user
# is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "4096")
