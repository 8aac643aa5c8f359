"""CLI cold start: time `twofold --help` and `twofold estimate` in fresh interpreters.

Target (DESIGN.md): under half a second, with no heavy imports at start-up.
Run: python benchmarks/cold_start.py
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "twofold --help": ["--help"],
    "twofold chips --json": ["chips", "--json"],
    "twofold estimate (llama3.1-8b, 8x h100)": [
        "estimate",
        "--model",
        "llama3.1-8b",
        "--chip",
        "h100",
        "--chips",
        "8",
        "--json",
    ],
}


def time_command(args: list[str], repeats: int = 5) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "twofold", *args], capture_output=True, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()} ({platform.processor() or 'cpu'})")
    for label, args in COMMANDS.items():
        print(f"{label:45s} {time_command(args) * 1000:8.0f} ms (median of 5)")


if __name__ == "__main__":
    main()
