"""Which calibration parameter scales which part of a predicted step (see `validate.calibrate`).

This is the linearisation the fit uses (shares of the *uncalibrated* model's micro-batch time by op
kind); the estimator applies the fitted factors exactly (`cost.calibration`), and the reported
errors come from the estimator. Each parameter (`gemm[<family> <bits>]`, `expert_gemm`,
`attention`, `memory_bound`, `comm`, `fsdp`, `tp[<family>]`, `ep[<family>]`, `fsdp_overlap`,
`op_overhead`) and the mechanism it stands for: docs/accuracy.md, "Which parameter scales which term".
"""

from __future__ import annotations

from twofold.cost.calibration import EXPERT_GEMM_PREFIX, UNCALIBRATED, runs_eager
from twofold.cost.calibration import precision_bits as precision_bits
from twofold.validate.mapping import Case
from twofold.validate.predict import case_stack

__all__ = ["mechanism_groups", "op_kind_shares", "COMPUTE_TERMS", "COMM_TERMS", "precision_bits"]

COMPUTE_TERMS = ("compute_forward", "compute_backward", "compute_recompute", "bubble", "other")
COMM_TERMS = ("cp", "pp", "dp")


# Chips hold mappings (not hashable): shares are cached by the chip's id next to the other keys.
_CACHE: dict[tuple[object, ...], tuple[float, float, float, float, float]] = {}


def op_kind_shares(case: Case) -> tuple[float, float, float, float, float]:
    """(dense GEMM, routed-expert GEMM, attention, memory-bound, per-op overhead) fractions of one
    micro-batch's on-chip time for the case."""
    lay, work = case.layout, case.workload
    key = (
        case.model,
        case.chip.id,
        case_stack(case),
        lay.micro_batch,
        work.seq_len,
        work.precision,
        lay.recompute,
        lay.tp,
        lay.cp,
        lay.ep,
        lay.etp,
        lay.sequence_parallel,
    )
    if key not in _CACHE:
        _CACHE[key] = _compute_shares(case)
    return _CACHE[key]


def _compute_shares(case: Case) -> tuple[float, float, float, float, float]:
    from twofold.cost import op_time_terms, profile_for
    from twofold.workload.graph import training_ops

    lay = case.layout
    ops = training_ops(
        case.model,
        micro_batch=lay.micro_batch,
        seq_len=case.workload.seq_len,
        precision=case.workload.precision,
        recompute=lay.recompute,
        tp=lay.tp,
        cp=lay.cp,
        ep=lay.ep,
        etp=lay.etp,
        sequence_parallel=lay.sequence_parallel,
    )
    calibration = UNCALIBRATED.with_stack(case_stack(case))
    terms = op_time_terms(ops, case.chip, profile_for(case.chip, calibration))
    # The per-op overhead is its own mechanism where the stack runs eager kernels (`op_overhead`).
    split = runs_eager(case.chip, calibration)
    gemm = expert = attention = memory = overhead = 0.0
    for op, seconds, fixed in zip(ops, terms.time_s, terms.overhead_s, strict=True):
        fixed = float(fixed) if split else 0.0
        overhead += fixed * op.count
        total = (float(seconds) - fixed) * op.count
        if op.kind == "gemm" and op.name.startswith(EXPERT_GEMM_PREFIX):
            expert += total
        elif op.kind == "gemm":
            gemm += total
        elif op.kind == "attention":
            attention += total
        else:
            memory += total
    whole = gemm + expert + attention + memory + overhead
    if whole <= 0:
        return 1.0, 0.0, 0.0, 0.0, 0.0
    return gemm / whole, expert / whole, attention / whole, memory / whole, overhead / whole


def _hidden_fsdp(case: Case, prediction: object) -> float:
    hidden = getattr(prediction, "hidden", {}) or {}
    if case.layout.zero != 3:
        return 0.0
    return float(hidden.get("fsdp", 0.0)) + float(hidden.get("dp", 0.0))


def mechanism_groups(case: Case, prediction: object) -> dict[str, float]:
    """Seconds of the predicted step that each calibration parameter scales."""
    breakdown = getattr(prediction, "breakdown", {}) or {}
    compute = sum(float(breakdown.get(term, 0.0)) for term in COMPUTE_TERMS)
    comm = sum(float(breakdown.get(term, 0.0)) for term in COMM_TERMS)
    optimizer = float(breakdown.get("optimizer", 0.0))
    gemm_share, expert_share, attention_share, memory_share, overhead_share = op_kind_shares(case)
    gemm = f"gemm[{case.family} {precision_bits(case.workload.precision)}]"
    calibration = UNCALIBRATED.with_stack(case_stack(case))
    tp, ep = float(breakdown.get("tp", 0.0)), float(breakdown.get("ep", 0.0))
    # TP/EP overlap is fitted per family only for stacks that overlap; elsewhere the exposed
    # collectives are plain communication.
    stack = calibration.stack_for(case.chip)
    tp_overlaps = bool(stack.value("tp_comm_overlap", case.family))
    ep_overlaps = bool(stack.value("ep_comm_overlap", case.family))
    stack_id = stack.calibration_id
    candidates = {
        gemm: compute * gemm_share,
        f"{gemm}*expert_gemm": compute * expert_share,
        "attention": compute * attention_share,
        # Memory-bound kernels reach a fraction of the profile's bandwidth on every runtime: fused
        # (Transformer Engine, XLA, Inductor) or not, the unfused forms' extra traffic being the
        # graph's (`Op.unfused_traffic`), not this factor's.
        "memory_bound": (compute * memory_share + optimizer),
        comm_parameter(stack_id): comm + (0.0 if tp_overlaps else tp) + (0.0 if ep_overlaps else ep),
        fsdp_parameter(stack_id): float(breakdown.get("fsdp", 0.0)),
        f"tp[{case.family}]": tp if tp_overlaps else 0.0,
        f"ep[{case.family}]": ep if ep_overlaps else 0.0,
        "op_overhead": compute * overhead_share,
        fsdp_overlap_parameter(stack.fsdp_flavour(case.family)): _hidden_fsdp(case, prediction),
    }
    return {name: seconds for name, seconds in candidates.items() if seconds > 0}


# FSDP flavours whose overlap is the shared `fsdp_overlap` parameter: the bucketed ZeRO-3 of
# DeepSpeed and Megatron-FSDP, on whose rows it was first fitted (docs/accuracy.md). PyTorch FSDP1/2
# and XLA sharding prefetch differently and get their own parameter (`fsdp_overlap[<flavour>]`).
_SHARED_FSDP_FLAVOURS = frozenset({"megatron-fsdp", "deepspeed", "none"})


# The stack whose rows define the shared collective efficiency (most rows); others get their own
# factor on top of it (`cost.calibration.collective_efficiency_by_stack`).
REFERENCE_STACK = "megatron"


def comm_parameter(stack: str) -> str:
    """The calibration group of a stack's exposed communication: the shared `comm`, times the
    stack's own `comm_stack[<stack>]` except for the reference stack."""
    return "comm" if stack == REFERENCE_STACK else f"comm*comm_stack[{stack}]"


def fsdp_parameter(stack: str) -> str:
    """The group of exposed ZeRO-3 collectives: `fsdp`, times the stack's own communication factor."""
    return "fsdp" if stack == REFERENCE_STACK else f"fsdp*comm_stack[{stack}]"


def fsdp_overlap_parameter(flavour: str) -> str:
    """The calibration parameter of an FSDP flavour's overlap."""
    return "fsdp_overlap" if flavour in _SHARED_FSDP_FLAVOURS else f"fsdp_overlap[{flavour}]"
