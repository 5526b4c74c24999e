"""Compiled kernels (no model policy). Built from ``src/`` by meson."""
