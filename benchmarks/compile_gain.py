"""What torch.compile buys, published against predicted, on the shipped rows that measure the same
run with and without it (fms-fsdp's README tables before and after "update numbers with compile",
torchtune's optimisation-flags table).

    python benchmarks/compile_gain.py            # in-sample (the shipped calibration)
    python benchmarks/compile_gain.py --held-out # each source left out of the fit (leave-source-out)

A pair is two rows of one source on the same hardware and model, one run by an eager stack and one
by a compiled one (`cost.stack` runtime), with the same layout (chips, micro-batch, recompute).
Their ratio is a mechanism-level check of the runtime part of the stack model (per-op launch overhead and the
unfused eager forms of norms, rotary embeddings and activations, `workload.layers`) that no
per-source constant can fit: the calibration has no factor per row or per pair.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict

from twofold.cost.stack import get_stack
from twofold.validate import validate
from twofold.validate.run import RowResult


def _key(row: RowResult) -> tuple[str, ...]:
    return (row.source, row.hardware, row.model, row.unit, str(row.layout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", action="store_true", help="use leave-source-out predictions")
    args = parser.parse_args()
    result = validate(losrc=args.held_out)
    groups: dict[tuple[str, ...], dict[str, list[RowResult]]] = defaultdict(lambda: defaultdict(list))
    for row in result.rows:
        if not row.throughput or not row.stack:
            continue
        runtime = "eager" if get_stack(row.stack).eager(row.family) else "compiled"
        groups[_key(row)][runtime].append(row)
    print("| source | hardware | model | published gain | predicted gain |")
    print("|---|---|---|---:|---:|")
    logs = []
    for key, by in sorted(groups.items()):
        if not by["eager"] or not by["compiled"]:
            continue
        for eager in by["eager"]:
            for compiled in by["compiled"]:
                pred_e = eager.losrc_predicted if args.held_out else eager.predicted
                pred_c = compiled.losrc_predicted if args.held_out else compiled.predicted
                if pred_e is None or pred_c is None:
                    continue
                published = compiled.published / eager.published
                predicted = pred_c / pred_e
                logs.append(math.log(predicted / published))
                names = f"| {key[0][:40]} | {key[1][:24]} | {key[2][:28]} |"
                print(f"{names} {published:.2f}x | {predicted:.2f}x |")
    if logs:
        mean = sum(abs(v) for v in logs) / len(logs)
        bias = math.exp(sum(logs) / len(logs))
        print(f"\n{len(logs)} pairs; mean |log(predicted gain / published gain)| = {mean:.3f}; "
              f"geometric-mean predicted / published gain = {bias:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
