"""Record what the README's commands print, so a refactor can be checked by a diff.

    python benchmarks/record_outputs.py --out before.txt        # on the tree before the change
    python benchmarks/record_outputs.py --out after.txt         # on the tree after it
    diff before.txt after.txt                                    # a refactor changes nothing here

Each command is the README's (estimate, plan, compare, claim, serving with `--infer`, fine-tuning
with a deadline, validate with `--loso`), run as `python -m twofold ...` with this interpreter and
environment, so `PYTHONPATH=/other/tree/src python benchmarks/record_outputs.py` records another
tree with the same list. For each: the command, its exit code, stdout and stderr (a user error's
message is output too). The terminal width is fixed (`COLUMNS`), and the wall-clock figures some
commands print ("simulated in 0.09 s", "evaluated ...; 0.21 s") are masked, since they change from
run to run; every other figure is recorded as printed. Takes a few minutes on two cores
(`validate --loso` refits the calibration once per stack).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The README's example commands, in its order (README.md: quick start, errors, verbs, --infer,
# fine-tuning, deadlines, accuracy), with --json where a table rounds the figures a refactor could move.
COMMANDS: tuple[str, ...] = (
    "compare llama3.1-70b --on trn2,h100,tpu-v5p",
    "compare llama3.1-70b --on trn2,h100,tpu-v5p --json",
    "compare llama3.1-70b --on trn2,h100 --same-cost --json",
    "estimate --model llama3.1-70b --chip h100 --chips 48 --tp 3",
    "chips h10",
    "plan --model llama3.1-405b --chip l4 --chips 1 --json",
    "claim 'trn2 is 4x trn1'",
    "estimate --model llama3.1-70b --chip h100 --chips 64 --tp 8 --pp 2 --seq-len 8192 --global-batch 512",
    "estimate --model llama3.1-70b --chip h100 --chips 64 --tp 8 --pp 2 --seq-len 8192 --global-batch 512"
    " --stack fsdp --json",
    "plan --model llama3.1-405b --chip h100 --chips 16384 --global-batch 2048 --seq-len 8192 --top 3",
    "estimate --infer --model llama3-8b --chip trn1 --tp 16 --batch 8 --input-tokens 128 --output-tokens 3968"
    " --weight-precision int8",
    "estimate --infer --model llama3.1-70b --chip h100 --tp 8 --input-tokens 1024 --output-tokens 256"
    " --input-std 256 --output-std 64 --max-batch 64 --request-rate 5 --num-requests 2000",
    "plan --infer --model llama3.1-70b --chip h100 --chips 8 --max-ttft-ms 3000 --max-tpot-ms 30",
    "plan --infer --model llama3.1-70b --chip h100 --chips 8 --request-rate 10 --p99-ttft-ms 2000",
    "compare llama3.1-70b --on inf2,trn2,h100,h200 --infer --request-rate 10 --p99-ttft-ms 2000",
    "estimate --model llama3.1-8b --chip h100 --chips 1 --global-batch 2 --micro-batch 2 --seq-len 2048"
    " --zero 0 --finetune qlora",
    "plan --finetune lora --model llama3.1-8b --tokens 1e8 --deadline 72h --objective cost"
    " --on trn1,trn2,l4,a100,h100,tpu-v5e",
    "claim 'trn2 is 2x cheaper than h100' --tokens 1e9 --deadline 48h",
    "models llama3.1-70b",
    "validate",
    "validate --loso",
)

# Wall-clock figures: "simulated in 0.09 s", "... on the Pareto front; 0.39 s", `"elapsed_s": 0.21`.
_CLOCK = (
    (re.compile(r"\bin \d+(?:\.\d+)? s\b"), "in <time> s"),
    (re.compile(r"; \d+(?:\.\d+)? s$", re.MULTILINE), "; <time> s"),
    (re.compile(r'("(?:elapsed_s|enumerate_s|evaluate_s|simulation_wall_s)": )[0-9.eE+-]+'), r"\1<time>"),
)


def _mask(text: str) -> str:
    for pattern, replacement in _CLOCK:
        text = pattern.sub(replacement, text)
    return text


def record(commands: tuple[str, ...] = COMMANDS) -> str:
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1", "PYTHONHASHSEED": "0"}
    parts = []
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "twofold", *shlex.split(command)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
        parts.append(
            f"$ twofold {command}\n[exit {done.returncode}]\n{_mask(done.stdout)}"
            + (f"[stderr]\n{_mask(done.stderr)}" if done.stderr else "")
        )
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the record here (default: stdout)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    text = record()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    print(f"{len(COMMANDS)} commands recorded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
