"""Helpers shared by the benchmark scripts: machine description, table formatting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import threadpoolctl
from threadpoolctl import threadpool_info

import emx


def log(msg: str) -> None:
    """Progress line on stderr (the table goes to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), np.finfo(float).tiny)))


def blas_pools() -> list[dict]:
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]


def describe_source() -> str:
    """Commit of the emx checkout and its uncommitted changes to the library's sources."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(emx.__file__)))

    def git(*cmd: str) -> str:
        return subprocess.run(
            ["git", "-C", root, *cmd], capture_output=True, text=True, check=True
        ).stdout.rstrip("\n")

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "emx", "src", "meson.build").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    files = ", ".join(line[3:] for line in changed)
    return f"{head}" + (f" + uncommitted changes to {files}" if files else " (clean)")


def describe_machine(peer: str, blas_threads: int | None = None) -> list[str]:
    """Header lines: platform, CPU, versions (``peer`` names the compared library and its
    version), emx source, BLAS pools and, when given, the BLAS limit of the runs."""
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = sorted(
        {
            f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads, "
            f"{os.path.basename(i.get('filepath', '?'))})"
            for i in blas_pools()
        }
    )
    lines = [
        f"platform     : {platform.platform()}",
        f"cpu          : {cpu}; os.cpu_count() = {os.cpu_count()}",
        f"python       : {platform.python_version()}",
        f"versions     : numpy {np.__version__}, {peer}, "
        f"emx {emx.__version__} ({os.path.dirname(emx.__file__)}), "
        f"threadpoolctl {threadpoolctl.__version__}",
        f"emx source   : {describe_source()}",
        f"BLAS default : {'; '.join(blas) or 'none found'}",
    ]
    if blas_threads is not None:
        lines.append(
            "BLAS limit   : "
            + (f"{blas_threads} thread(s) for all runs" if blas_threads > 0 else "none (default)")
        )
    return lines


def format_row(columns, values) -> str:
    """One table row; ``columns`` are (name, width, format) and None prints as '-'."""
    return "  ".join(
        f"{'-' if v is None else format(v, f):>{w}}"
        for (_, w, f), v in zip(columns, values, strict=True)
    )


def format_header(columns) -> str:
    return "  ".join(f"{name:>{w}}" for name, w, _ in columns)
