"""A published row's layout in chips (`layout_for`), its batch where the source implies it, and its
scale-out network where its notes state one (`row_network`), for `validate.mapping`.

Layout conventions applied here (each documented where it is applied):
- `dp` empty: chips / (tp * pp * cp), as the dataset's `dp derived` note says.
- AWS Neuron rows count NeuronCores in tp/dp/pp; they are converted to chips (`cores_per_chip`).
- MaxText (JAX) rows give a per-device batch and run without gradient accumulation: each data-parallel
  rank processes global_batch / dp sequences in one micro-batch.
- `zero_or_fsdp`: FSDP or ZeRO-3 -> zero=3; an explicit ZeRO-0/1/2 -> that stage; otherwise the source's
  default (Megatron's distributed optimizer, ZeRO-1, unless the source says it predates it).
- `recompute`: a spelling maps to a mode, or to a rule that reads the mode from the notes (tpu-recipes
  "see notes": the MaxText remat policy), or to the reason it is not modelled (host offload).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from twofold.validate.dataset import PublishedRow
from twofold.validate.mapping_rules import NotExpressible, hardware_entry, mapping_data, source_convention
from twofold.validate.reading import read_recompute

_NODE_NETWORK = re.compile(r"(\d+(?:\.\d+)?) ?Gbps inter-node", re.IGNORECASE)


def row_network(row: PublishedRow, system: Any, caveats: list[str]) -> Any:
    """The catalog system with its scale-out network set to what the row's notes state
    ("400 Gbps inter-node": per node, shared by the node's chips), where they state it. The
    catalog's systems carry the vendor reference network (e.g. one 200-400 Gb/s NIC per GPU);
    clusters with fewer NICs per node run the same collectives over less bandwidth."""
    from dataclasses import replace

    match = _NODE_NETWORK.search(row.notes)
    if match is None or not system.levels or system.levels[-1].kind != "network":
        return system
    per_chip = float(match.group(1)) / 8.0 / max(system.node_chips, 1)  # Gb/s per node -> GB/s per chip
    outer = system.levels[-1]
    caveats.append(
        f"scale-out network from the row's notes: {match.group(1)} Gb/s per node = {per_chip:.2f} GB/s "
        f"per chip (catalog {system.id}: {outer.bandwidth_gb_s_per_chip:g})"
    )
    levels = (*system.levels[:-1], replace(outer, bandwidth_gb_s_per_chip=per_chip))
    return replace(system, levels=levels)


# Rates a row from elsewhere may publish without its global batch and still be predicted at one
# micro-batch per step when it has no pipeline (`_one_microbatch_batch`); a step time may not.
_RATES_WITHOUT_BATCH = ("tokens_per_s_per_chip", "tokens_per_s", "sequences_per_s", "tflops_per_chip", "mfu")


def _one_microbatch_batch(row: PublishedRow, caveats: list[str]) -> PublishedRow:
    """A row without a global batch, predicted at one micro-batch per rank per step (global batch =
    micro_batch x dp): where its source trains so (`one_microbatch_per_step` in mapping.yaml cites
    where it says so), or, for a source the mapping does not know, where the row has no pipeline
    and publishes a rate (`_RATES_WITHOUT_BATCH`): without a pipeline, gradient accumulation only
    amortises the data-parallel reduction, so the assumption, stated as a caveat, can only make the
    prediction slower. Other rows are returned as they are."""
    from dataclasses import replace

    if row.global_batch is not None or row.micro_batch is None or row.chips is None:
        return row
    stated = bool(source_convention(row).get("one_microbatch_per_step"))
    unknown_source = not source_convention(row)
    assumed = unknown_source and (row.pp or 1) == 1 and row.metric in _RATES_WITHOUT_BATCH
    if not (stated or assumed):
        return row
    model_parallel = (row.tp or 1) * (row.pp or 1) * (row.cp or 1)
    if row.chips % model_parallel:
        return row
    batch = row.micro_batch * (row.chips // model_parallel)
    why = (
        "the source's training loop has no gradient accumulation"
        if stated
        else "assumed: one micro-batch per step; accumulation would amortise the data-parallel reduction"
    )
    caveats.append(
        f"global batch not published: {batch} = micro batch {row.micro_batch} x dp "
        f"{row.chips // model_parallel} ({why})"
    )
    return replace(row, global_batch=batch)


def _hybrid_shard(
    row: PublishedRow, system: Any, tp: int, cp: int, dp: int, caveats: list[str]
) -> int | None:
    """The shard group of a hybrid-sharded (HSDP) row: the data-parallel ranks of one scale-up
    domain (PyTorch FSDP HYBRID_SHARD shards within a node and replicates across nodes)."""
    if system is None or not re.search(r"HSDP|hybrid", row.zero_or_fsdp, re.IGNORECASE):
        return None
    domain = system.levels[0].domain_chips if system.levels else None
    if not domain or domain % (tp * cp) or dp % (domain // (tp * cp)):
        return None
    shard = domain // (tp * cp)
    caveats.append(f"hybrid sharding: states sharded within each {domain}-chip node ({shard} dp ranks)")
    return shard if shard < dp else None


def layout_for(row: PublishedRow, caveats: list[str] | None = None, system: Any = None) -> Any:
    """The row's `Layout` in chips (conventions in the module docstring); raises NotExpressible.
    Conversions taken on the way are appended to `caveats`."""
    from twofold.parallel.layout import Layout

    caveats = [] if caveats is None else caveats
    if row.global_batch is None:
        raise NotExpressible("global batch not published")
    convention = source_convention(row)
    chips = row.chips
    if chips is None:
        raise NotExpressible("chip count not published")
    entry = hardware_entry(row) or {}
    cores = int(entry.get("cores_per_chip", 1))
    tp, pp, cp = row.tp or 1, row.pp or 1, row.cp or 1
    dp = row.dp
    if entry.get("read") and cores > 1 and dp is not None and dp * tp * pp * cp == chips:
        cores = 1  # a row read from its text that counts chips, not NeuronCores
    micro_batch = row.micro_batch or 1
    fsdp = bool(re.search(r"fsdp|zero[-_ ]?(stage[-_ ]?)?3|hybrid shard", row.zero_or_fsdp, re.IGNORECASE))
    if cores > 1:
        # NeuronCore counts -> chips: fold the cores of a chip into tensor parallelism when it is a
        # multiple of the cores per chip, otherwise into data parallelism (micro-batches merge).
        dp_cores = dp if dp is not None else chips * cores // (tp * pp * cp)
        if tp % cores == 0:
            tp //= cores
            dp = dp_cores
        elif dp_cores % cores == 0:
            dp = dp_cores // cores
            micro_batch *= cores
        else:
            raise NotExpressible(
                f"NeuronCore layout tp={tp} dp={dp_cores} does not fold onto {cores}-core chips"
            )
        caveats.append(f"layout given in NeuronCores; converted to chips ({cores} cores per chip)")
    if dp is None or dp * tp * pp * cp != chips:
        if dp is not None and not fsdp:
            raise NotExpressible(f"dp*tp*pp*cp = {dp * tp * pp * cp} does not equal chips = {chips}")
        if chips % (tp * pp * cp):
            raise NotExpressible(f"chips={chips} is not a multiple of tp*pp*cp={tp * pp * cp}")
        dp = chips // (tp * pp * cp)
    if row.source.startswith("MaxText") or "framework: maxtext" in row.notes:
        # JAX/MaxText: per-device batch, no gradient accumulation (one micro-batch per step).
        if row.global_batch % dp:
            raise NotExpressible(f"global batch {row.global_batch} does not split over dp={dp}")
        micro_batch = row.global_batch // dp
    if fsdp and row.micro_batch is None and convention.get("fsdp_one_microbatch"):
        # The source ran ZeRO-3 without gradient accumulation (mapping.yaml cites where it says so).
        if row.global_batch % dp:
            raise NotExpressible(f"global batch {row.global_batch} does not split over dp={dp}")
        micro_batch = row.global_batch // dp
    if row.global_batch % (dp * micro_batch):
        raise NotExpressible(
            f"global batch {row.global_batch} is not a multiple of dp*micro_batch={dp * micro_batch}"
        )
    stage = re.search(r"zero[-_ ]?(?:stage[-_ ]?)?([0-2])\b", row.zero_or_fsdp, re.IGNORECASE)
    zero = 3 if fsdp else int(stage.group(1)) if stage else int(convention.get("zero", 1))
    recompute = _recompute(row)
    sequence_parallel = bool(convention.get("sequence_parallel", True)) and tp > 1
    ep = row.ep or 1
    vp = row.vp or 1
    # An ep that does not fit in dp*cp can only have run with expert tensor parallelism 1 (EP
    # folded over the TP ranks, Megatron-Core `--expert-tensor-parallel-size 1`); otherwise
    # Megatron's default etp = tp.
    etp = 1 if tp > 1 and (dp * cp) % ep and (tp * dp * cp) % ep == 0 else None
    if etp == 1:
        caveats.append("ep exceeds dp*cp: expert tensor parallelism 1 assumed (EP over the TP ranks)")
    return Layout(
        dp=dp,
        tp=tp,
        pp=pp,
        vp=vp,
        cp=cp,
        ep=ep,
        zero=zero,
        micro_batch=micro_batch,
        recompute=recompute,
        sequence_parallel=sequence_parallel,
        etp=etp,
        shard=_hybrid_shard(row, system, tp, cp, dp, caveats) if zero == 3 else None,
    )


def _recompute(row: PublishedRow) -> Any:  # a RECOMPUTE_MODES entry, checked by Layout
    """The row's recompute mode (mapping.yaml `recompute`); raises NotExpressible."""
    entry = mapping_data()["recompute"].get(row.recompute)
    if entry is None:
        entry = read_recompute(row.recompute)
    if entry is None:
        raise NotExpressible(f"recompute mode {row.recompute!r}: not none/selective/full (or offloads)")
    if not isinstance(entry, Mapping):
        return str(entry)
    if entry.get("reason"):
        raise NotExpressible(str(entry["reason"]))
    match = re.search(str(entry["notes"]), row.notes)
    if match is None and entry.get("default"):
        return str(entry["default"])  # the framework's documented default (cited in mapping.yaml)
    if match is None:
        raise NotExpressible(str(entry["missing"]))
    mode = entry.get("values", {}).get(match.group(1))
    if mode is None:
        raise NotExpressible(str(entry["unmodelled"]).format(match.group(1)))
    return str(mode)
