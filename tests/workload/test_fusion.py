"""The fusion pass (`workload.fusion`): hand-built traces with hand-counted bytes, invariants over
random traces (hypothesis), and a traced PyTorch model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from twofold.workload.fusion import TensorRef, TracedOp, fuse_memory_chains, fuse_sibling_gemms, fuse_trace
from twofold.workload.ops import Op

MB = 1e6


def ref(buffer: str, nbytes: float, view: object = None) -> TensorRef:
    return TensorRef(buffer=buffer, view=view, nbytes=nbytes, buffer_nbytes=nbytes)


def mem(name: str, ins: list[TensorRef], outs: list[TensorRef], phase: str = "forward") -> TracedOp:
    op = Op(
        name=name,
        kind="elementwise",
        phase=phase,  # type: ignore[arg-type]
        flops=0.0,
        bytes_read=sum(r.nbytes for r in ins),
        bytes_written=sum(r.nbytes for r in outs),
        dims={"elements": 1},
    )
    return TracedOp(op=op, inputs=tuple(ins), outputs=tuple(outs))


def mm(name: str, a: TensorRef, b: TensorRef, out: TensorRef, m: int, n: int, k: int) -> TracedOp:
    op = Op(
        name=name,
        kind="gemm",
        phase="forward",
        flops=2.0 * m * n * k,
        bytes_read=a.nbytes + b.nbytes,
        bytes_written=out.nbytes,
        dims={"m": m, "n": n, "k": k},
    )
    return TracedOp(op=op, inputs=(a, b), outputs=(out,))


def test_rmsnorm_chain_reads_its_input_once_and_writes_its_output_once() -> None:
    # Eager RMSNorm of x (16 MB): pow, mean, add eps, rsqrt, x * r, * weight. Fused, it reads x
    # and the weight (8 kB) and writes y (16 MB), which the next GEMM reads; the row statistics
    # (4 kB buffers) stay on chip.
    x, w, y = ref("x", 16 * MB), ref("w", 8e3), ref("y", 16 * MB)
    sq, ms, eps, r, xr = (
        ref("sq", 16 * MB),
        ref("ms", 4e3),
        ref("eps", 4e3),
        ref("r", 4e3),
        ref("xr", 16 * MB),
    )
    trace = [
        mem("pow", [x], [sq]),
        mem("mean", [sq], [ms]),
        mem("add", [ms], [eps]),
        mem("rsqrt", [eps], [r]),
        mem("mul", [x, r], [xr]),
        mem("mul", [xr, w], [y]),
        mm("proj", y, ref("W", 32 * MB), ref("out", 16 * MB), 2048, 4096, 4096),
    ]
    fused = fuse_trace(trace)
    assert [op.kind for op in fused] == ["elementwise", "gemm"]
    assert fused[0].bytes_read == 16 * MB + 8e3
    assert fused[0].bytes_written == 16 * MB
    assert fused[0].dims["fused_ops"] == 6


def test_an_output_read_only_by_the_backward_is_rematerialised() -> None:
    # silu(g) * u: the silu output is saved for the backward only, the product feeds the next
    # GEMM. Fused (min-cut rematerialisation), only the product is written.
    g, u, s, p = ref("g", 58 * MB), ref("u", 58 * MB), ref("s", 58 * MB), ref("p", 58 * MB)
    trace = [
        mem("silu", [g], [s]),
        mem("mul", [s, u], [p]),
        mm("down", p, ref("W", 100 * MB), ref("o", 16 * MB), 2048, 4096, 14336),
        mem("grad", [s, ref("dp", 58 * MB)], [ref("du", 58 * MB)], phase="backward"),
    ]
    fused = fuse_trace(trace)
    assert (fused[0].bytes_read, fused[0].bytes_written) == (116 * MB, 58 * MB)


def test_the_backward_recomputes_an_upcast_it_was_not_saved() -> None:
    # RMSNorm of a bf16 x (16 MB) in fp32: the upcast xf (32 MB) is saved for the backward only,
    # so the forward does not write it; a two-op backward group that needs it recomputes it from
    # x, reading 16 MB rather than the 32 MB buffer that never reached memory. Its other input,
    # the output gradient dy (16 MB), is read as it is.
    x, xf, y, dy = ref("x", 16 * MB), ref("xf", 32 * MB), ref("y", 16 * MB), ref("dy", 16 * MB)
    trace = [
        mem("to_fp32", [x], [xf]),
        mem("scale", [xf], [y]),
        mm("proj", y, ref("W", 32 * MB), ref("out", 16 * MB), 2048, 4096, 4096),
        mem("mul", [xf, dy], [ref("t", 32 * MB)], phase="backward"),
        mem("cast", [ref("t", 32 * MB)], [ref("dx", 16 * MB)], phase="backward"),
    ]
    fused = fuse_trace(trace)
    assert (fused[0].bytes_read, fused[0].bytes_written) == (16 * MB, 16 * MB)
    assert fused[2].phase == "backward" and fused[2].bytes_read == 32 * MB


def test_ops_kept_as_traced_are_neither_fused_nor_fused_across() -> None:
    # Megatron's in-place fp32 loss (a custom autograd.Function, marked fusible=False by the
    # importer) between two plain elementwise ops: every op stays as traced, bytes unchanged.
    a, b, c, d = ref("a", MB), ref("b", 2 * MB), ref("c", 2 * MB), ref("d", MB)
    kept = [
        TracedOp(op=t.op, inputs=t.inputs, outputs=t.outputs, fusible=False)
        for t in (mem("float", [a], [b]), mem("exp", [b], [c]))
    ]
    trace = [mem("neg", [ref("z", MB)], [a]), *kept, mem("half", [c], [d])]
    fused = fuse_memory_chains(trace)
    assert [t.op.name for t in fused] == ["neg", "float", "exp", "half"]
    assert [t.op.total_bytes for t in fused] == [t.op.total_bytes for t in trace]


def test_memory_op_joins_its_producer_across_an_independent_gemm() -> None:
    # a -> neg -> b; an unrelated GEMM; then b -> exp -> c. The exp depends only on the first
    # chain: a compiler's scheduler fuses it there, so b never reaches memory.
    a, b, c = ref("a", MB), ref("b", MB), ref("c", MB)
    trace = [
        mem("neg", [a], [b]),
        mm("other", ref("x", MB), ref("W", MB), ref("y", MB), 64, 64, 64),
        mem("exp", [b], [c]),
    ]
    fused = fuse_memory_chains(trace)
    assert [t.op.name for t in fused] == ["neg..exp(2 fused)", "other"]
    assert (fused[0].op.bytes_read, fused[0].op.bytes_written) == (MB, MB)


def test_sibling_gemms_share_their_input_and_dependent_ones_do_not() -> None:
    h = ref("h", 16 * MB)
    q = mm("q", h, ref("Wq", 32 * MB), ref("q", 16 * MB), 2048, 4096, 4096)
    k = mm("k", h, ref("Wk", 8 * MB), ref("k", 4 * MB), 2048, 1024, 4096)
    dependent = mm("qq", ref("q", 16 * MB), ref("W2", 32 * MB), ref("z", 16 * MB), 2048, 4096, 4096)
    fused = [t.op for t in fuse_sibling_gemms([q, mem("rope", [ref("q", 16 * MB)], [ref("qr", 16 * MB)]), k])]
    assert [op.name for op in fused] == ["q(+1 siblings)", "rope"]
    assert fused[0].dims == {"m": 2048, "n": 5120, "k": 4096}
    assert fused[0].flops == q.op.flops + k.op.flops
    assert fused[0].bytes_read == 16 * MB + 32 * MB + 8 * MB  # h once, both weights
    assert fused[0].bytes_written == 20 * MB
    # A GEMM reading the first one's output is not its sibling even on a shared left operand.
    chained = mm("c", h, ref("Wc", 32 * MB), ref("c", 16 * MB), 2048, 4096, 4096)
    after = mm("d", h, ref("q2", 16 * MB), ref("d", 16 * MB), 2048, 4096, 4096)
    after = TracedOp(op=after.op, inputs=(h, ref("c", 16 * MB)), outputs=after.outputs)
    assert len(fuse_sibling_gemms([chained, after])) == 2
    assert len(fuse_sibling_gemms([q, dependent])) == 2


@st.composite
def traces(draw: st.DrawFn) -> list[TracedOp]:
    buffers: list[TensorRef] = [ref("in0", float(draw(st.integers(1, 64)))) for _ in range(1)]
    out: list[TracedOp] = []
    for i in range(draw(st.integers(1, 25))):
        phase = "forward" if i < 15 else "backward"
        ins = draw(st.lists(st.sampled_from(buffers), min_size=1, max_size=3))
        size = float(draw(st.integers(1, 64)))
        new = ref(f"b{i}", size)
        if draw(st.booleans()):
            a, b = ins[0], draw(st.sampled_from(buffers))
            op = Op(
                name=f"mm{i}",
                kind="gemm",
                phase=phase,  # type: ignore[arg-type]
                flops=float(draw(st.integers(1, 1000))),
                bytes_read=a.nbytes + b.nbytes,
                bytes_written=size,
                dims={"m": draw(st.sampled_from([4, 8])), "n": draw(st.sampled_from([4, 8])), "k": 8},
            )
            out.append(TracedOp(op=op, inputs=(a, b), outputs=(new,)))
        else:
            out.append(mem(f"e{i}", ins, [new], phase=phase))
        buffers.append(new)
    return out


@settings(max_examples=200, deadline=None)
@given(trace=traces(), siblings=st.booleans())
def test_fusion_keeps_flops_and_never_adds_bytes(trace: list[TracedOp], siblings: bool) -> None:
    fused = fuse_trace(trace, siblings=siblings)
    before = [t.op for t in trace]
    assert sum(op.total_flops for op in fused) == sum(op.total_flops for op in before)
    assert sum(op.total_bytes for op in fused) <= sum(op.total_bytes for op in before) + 1e-9
    assert len(fused) <= len(before)
    assert all(op.bytes_read >= 0 and op.bytes_written >= 0 for op in fused)


def test_traced_llama_fused_keeps_flops_and_moves_fewer_bytes() -> None:
    import pytest

    torch = pytest.importorskip("torch")
    from twofold.frontends import from_torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = torch.nn.RMSNorm(32)
            self.q, self.k = torch.nn.Linear(32, 32, bias=False), torch.nn.Linear(32, 16, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.norm(x)
            return torch.nn.functional.silu(self.q(h)).sum() + self.k(h).sum()

    torch.manual_seed(0)
    imported = from_torch(Tiny(), torch.randn(4, 8, 32))
    fwd, bwd = imported.step_ops(fused=True)
    eager = imported.training_ops()
    assert sum(op.total_flops for op in (*fwd, *bwd)) == sum(op.total_flops for op in eager)
    assert sum(op.total_bytes for op in (*fwd, *bwd)) < sum(op.total_bytes for op in eager)
    assert sum(op.count for op in (*fwd, *bwd)) < sum(op.count for op in eager)
    # q and k read the same normalised input: one GEMM of n = 32 + 16.
    assert [dict(op.dims) for op in fwd if op.kind == "gemm"] == [{"m": 32, "n": 48, "k": 32}]
