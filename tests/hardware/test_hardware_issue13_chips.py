"""The chips added for issue #13 (the parts the published rows name): each loads with its cited
figures, hand-derived checks of their peaks and topology, the rows' hardware strings reach them, and
a chip of a family without fitted rows (Intel Gaudi) is estimated from specifications only, with a
wider interval than a measured family."""

from __future__ import annotations

import pytest

from twofold.estimate import estimate_training
from twofold.hardware import get_chip, system_for
from twofold.parallel.layout import Layout, TrainingWorkload
from twofold.validate.mapping import hardware_entry, row_hardware
from twofold.validate.reading import read_hardware
from twofold.workload.registry import get_model

# chip id -> (BF16 dense TFLOPS, capacity GiB, HBM TB/s, default system, calibration family)
NEW_CHIPS = {
    "gh200": (989, 141, 4.9, "lambda-1x-gh200", "NVIDIA Hopper"),
    "a100-pcie": (312, 80, 1.935, "a100-pcie-single", "NVIDIA Ampere"),
    "a800": (312, 80, 2.039, "hgx-a800", "NVIDIA Ampere"),
    "rtx-4090": (165.2, 24, 1.008, "rtx-4090-workstation", "NVIDIA Ada"),
    "rtx-a6000": (154.8, 48, 0.768, "rtx-a6000-workstation", "NVIDIA Ampere"),
    "mi250x": (191.5, 64, 1.6384, "frontier-node", "AMD Instinct"),
    "gaudi2": (432, 96, 2.45, "hls-gaudi2", "Intel Gaudi"),
    "gaudi3": (1677, 128, 3.7, "hls-gaudi3", "Intel Gaudi"),
}
CITED = ("bf16_dense_tflops", "hbm_capacity_gib", "hbm_bandwidth_tb_s", "tdp_w")


@pytest.mark.parametrize("chip_id", sorted(NEW_CHIPS))
def test_new_chip_loads_with_cited_fields(chip_id: str) -> None:
    from twofold.cost.calibration import shipped_calibration

    bf16, gib, tb_s, system_id, family = NEW_CHIPS[chip_id]
    chip = get_chip(chip_id)
    assert chip.bf16_dense_tflops == pytest.approx(bf16)
    assert chip.hbm_capacity_gib == gib and chip.hbm_bandwidth_tb_s == pytest.approx(tb_s)
    assert system_for(chip).id == system_id
    assert shipped_calibration().family(chip_id) == family
    keys = {s.key: s for s in chip.sources}
    for name in CITED:
        figure = chip.figures[name]
        assert figure.value is not None and figure.sources, name
        assert all(k in keys and keys[k].title for k in figure.sources), name
    # A figure from outside the shared research says so in its source's title.
    cited = {k for name in CITED for k in chip.figures[name].sources}
    outside = [keys[k] for k in cited if "NOT RETRIEVED" in keys[k].title]
    for source in outside:
        assert "to be checked" in source.title and source.url


def test_peaks_from_units_and_clocks() -> None:
    """Hand derivations: MI250X GCD 1.7 GHz x 440 matrix cores x 256 FLOP/clk (BF16); Gaudi 3 8 MMEs x
    256x256 MACs x 2 x 1.6 GHz (the MAMF table's 1,677); RTX A6000 336 tensor cores x 256 x 1.8 GHz;
    RTX 4090 512 tensor cores x 128 x 2.52 GHz (FP32 accumulate: half the FP16-accumulate rate)."""
    mi250x = get_chip("mi250x")
    assert 1.7e9 * 440 * 256 / 1e12 == pytest.approx(mi250x.bf16_dense_tflops, rel=1e-3)
    assert 1.6e9 * 8 * 256 * 256 * 2 / 1e12 == pytest.approx(get_chip("gaudi3").bf16_dense_tflops, rel=1e-3)
    assert 1.8e9 * 336 * 256 / 1e12 == pytest.approx(get_chip("rtx-a6000").bf16_dense_tflops, rel=1e-3)
    assert 2.52e9 * 512 * 128 / 1e12 == pytest.approx(get_chip("rtx-4090").bf16_dense_tflops, rel=1e-3)
    # One GCD is half an MI250X package: 383 TF, 128 GB and 3.2768 TB/s per package.
    assert 2 * mi250x.bf16_dense_tflops == pytest.approx(383, rel=1e-3)
    assert 2 * mi250x.hbm_capacity_gib == 128 and 2 * mi250x.hbm_bandwidth_tb_s == pytest.approx(3.2768)
    # CDNA2 has no FP8: an FP8 estimate on it is refused, not priced at some other rate.
    with pytest.raises(ValueError):
        mi250x.peak_tflops("fp8")


def test_frontier_node_per_gcd_bandwidths() -> None:
    """Frontier: 4 Slingshot-11 NICs of 25 GB/s per node of 8 GCDs -> 12.5 GB/s per GCD."""
    levels = system_for(get_chip("mi250x")).levels
    assert [lv.name for lv in levels] == ["in-package-if", "xgmi", "slingshot"]
    assert [lv.domain_chips for lv in levels] == [2, 8, None]
    assert levels[-1].bandwidth_gb_s_per_chip == pytest.approx(4 * 25 / 8)
    assert levels[0].bandwidth_gb_s_per_chip == pytest.approx(4 * 50)  # 4 IF links x 50 GB/s


@pytest.mark.parametrize(("chip_id", "port_gb_s"), [("gaudi2", 100 / 8), ("gaudi3", 200 / 8)])
def test_gaudi_servers_split_their_roce_ports(chip_id: str, port_gb_s: float) -> None:
    """24 RoCE ports per card: 21 wire the 8 cards all-to-all (3 per peer), 3 go to scale-out."""
    scale_up, scale_out = system_for(get_chip(chip_id)).levels
    assert scale_up.kind == "mesh" and scale_up.domain_chips == 8
    assert scale_up.bandwidth_gb_s_per_chip == pytest.approx(21 * port_gb_s)
    assert scale_out.bandwidth_gb_s_per_chip == pytest.approx(3 * port_gb_s)


def test_a800_nvlink_is_two_thirds_of_the_a100s() -> None:
    a800, a100 = (system_for(get_chip(c)).levels[0] for c in ("a800", "a100"))
    assert a800.bandwidth_gb_s_per_chip == pytest.approx(400 / 2)
    assert a800.bandwidth_gb_s_per_chip == pytest.approx(a100.bandwidth_gb_s_per_chip * 2 / 3)
    assert system_for(get_chip("a800")).levels[-1].assumed  # the rows' "RDMA" NICs are not described


@pytest.mark.parametrize(
    ("text", "chip_id"),
    [
        ("NVIDIA GH200 SXM (900W, 141GiB)", "gh200"),
        ("NVIDIA A100 PCIe", "a100-pcie"),
        ("NVIDIA A800 80GB (4 nodes, RDMA, NVLink within node)", "a800"),
        ("NVIDIA GeForce RTX 4090 24GB", "rtx-4090"),
        ("NVIDIA RTX A6000 48GB", "rtx-a6000"),
        ("AMD Instinct MI250X (per GCD; Frontier)", "mi250x"),
        ("Intel Gaudi 2", "gaudi2"),
        ("Intel(R) Gaudi(R) 2 AI Accelerator", "gaudi2"),
        ("Intel Gaudi 3", "gaudi3"),
        ("Intel Gaudi 2 (HL-225H, 96GB HBM2e; HLS-Gaudi2 8 cards/server)", "gaudi2"),
    ],
)
def test_the_rows_hardware_strings_reach_the_new_chips(text: str, chip_id: str) -> None:
    """Both the curated mapping.yaml entry and the text reader name the chip."""
    from types import SimpleNamespace

    row = SimpleNamespace(hardware=text)
    entry = hardware_entry(row)  # type: ignore[arg-type]
    assert entry is not None and get_chip(entry["chip"]).id == chip_id
    chip, _ = row_hardware(row)  # type: ignore[arg-type]
    assert chip.id == chip_id
    reading = read_hardware(text)
    assert reading is not None and reading.chip == chip_id


def _estimate(chip_id: str):  # noqa: ANN202
    chip = get_chip(chip_id)
    workload = TrainingWorkload(global_batch=8, seq_len=1024, precision="bf16")
    return estimate_training(get_model("llama-3-8b"), system_for(chip), Layout(dp=1), workload, chip=chip)


@pytest.mark.parametrize("chip_id", ["gaudi2", "gaudi3"])
def test_a_new_family_is_estimated_from_specifications_only(chip_id: str) -> None:
    """Intel Gaudi has no fitted training rows: cross-family prior, basis 'specifications only', and a
    wider interval (relative to the point estimate) than a chip of a measured family."""
    from twofold.cost.calibration import shipped_calibration

    calibration = shipped_calibration()
    assert not any(key.startswith("Intel Gaudi") for key in calibration.gemm_efficiency_factor)
    new, measured = _estimate(chip_id), _estimate("h100")
    assert new.uncertainty.evidence.basis == "specifications only"
    assert new.uncertainty.evidence.rows_family == 0
    assert measured.uncertainty.evidence.basis == "measured family"
    assert new.uncertainty.log_half_width > measured.uncertainty.log_half_width
    low, high = new.uncertainty.intervals["tokens_per_s_per_chip"]
    m_low, m_high = measured.uncertainty.intervals["tokens_per_s_per_chip"]
    assert low / new.tokens_per_s_per_chip <= m_low / measured.tokens_per_s_per_chip
    assert high / new.tokens_per_s_per_chip > m_high / measured.tokens_per_s_per_chip
