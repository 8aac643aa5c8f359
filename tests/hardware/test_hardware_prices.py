"""Published prices by kind (on-demand, capacity-block, spot) on catalog systems.

Reference: shared/data/hardware_research.yaml, `price` of each chip. Capacity Blocks for ML rates
(source `aws-capacity-blocks-mirror`, a mirror of the AWS pricing page, 2024-12, valid until
2025-01-01): trn1.32xlarge $15.49/h in ap-southeast-4, p4d.24xlarge (8x A100 40GB) $14.75/h,
p5.48xlarge $39.33/h in us-east-1, p5e.48xlarge (8x H200) $43.26/h in us-east-2. Spot: trn2.48xlarge
$23.06/h in us-east-2 (SkyPilot AWS catalog snapshot, noted under Trainium2's on-demand price).
Per chip = instance price / chips in the instance, computed here by hand.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from twofold.errors import InputError
from twofold.hardware._schema import parse_catalog_document
from twofold.hardware.catalog import get_system, list_systems, load_catalog, system_to_dict
from twofold.hardware.types import PRICE_KINDS, PRICE_QUALITIES, System

# (system, kind) -> (USD per instance-hour, chips in the instance, instance, region, valid until)
PUBLISHED = {
    ("trn1.32xlarge", "capacity-block"): (15.49, 16, "trn1.32xlarge", "ap-southeast-4", "2025-01-01"),
    ("hgx-a100-40gb", "capacity-block"): (14.75, 8, "p4d.24xlarge", "us-east-2 / us-west-2", "2025-01-01"),
    ("p5.48xlarge", "capacity-block"): (39.33, 8, "p5.48xlarge", "us-east-1", "2025-01-01"),
    ("hgx-h100", "capacity-block"): (39.33, 8, "p5.48xlarge", "us-east-1", "2025-01-01"),
    ("hgx-h200", "capacity-block"): (43.26, 8, "p5e.48xlarge", "us-east-2", "2025-01-01"),
    ("trn2.48xlarge", "spot"): (23.06, 16, "trn2.48xlarge", "us-east-2", ""),
}


@pytest.mark.parametrize(("key", "want"), sorted(PUBLISHED.items()))
def test_committed_and_spot_prices_equal_the_research_file(
    key: tuple[str, str], want: tuple[float, int, str, str, str]
) -> None:
    system_id, kind = key
    usd_instance, chips, instance, region, valid_until = want
    quote = get_system(system_id).price(kind)
    assert quote.kind == kind
    assert quote.usd_per_chip_hour == pytest.approx(usd_instance / chips, rel=1e-12)
    assert quote.usd_per_instance_hour == usd_instance and quote.instance_chips == chips
    assert (quote.instance, quote.region, quote.valid_until) == (instance, region, valid_until)


def test_every_price_resolves_to_a_source_of_its_system() -> None:
    for system in list_systems():
        by_key = {s.key: s for s in system.sources}
        for kind in PRICE_KINDS:
            quote = system.price(kind)
            if quote.usd_per_chip_hour is None:
                assert quote.note.strip(), (system.id, kind)  # unknown says why
                continue
            assert quote.sources and set(quote.sources) <= set(by_key), (system.id, kind)
            assert all(by_key[k].url for k in quote.sources), (system.id, kind)
    mirror = {s.key: s for s in get_system("p5.48xlarge").sources}["aws-capacity-blocks-mirror"]
    assert mirror.date == "2024-12" and get_system("p5.48xlarge").price("capacity-block").as_of == "2024-12"


def test_unpublished_kinds_stay_unknown_without_falling_back() -> None:
    trn2 = get_system("trn2.48xlarge")
    assert trn2.price("capacity-block").usd_per_chip_hour is None  # not the spot price
    assert trn2.price("committed-1y").usd_per_chip_hour is None
    assert get_system("trn2-ultraserver").price().usd_per_chip_hour is None  # not the trn2.48xlarge one
    # The only A100 capacity block is p4d (A100 40GB): not given to the 80 GB part.
    a100 = get_system("hgx-a100").price("capacity-block")
    assert a100.usd_per_chip_hour is None and "40GB" in a100.note
    # v6e has Google's committed-use prices; v5p has none, and v6e's discount is never lent to it.
    assert get_system("tpu-v6e-pod").price("committed-1y").usd_per_chip_hour == pytest.approx(1.89)
    assert get_system("tpu-v5p-pod").price("committed-1y").usd_per_chip_hour is None
    assert get_system("tpu-v7-pod").price("spot").usd_per_chip_hour is None
    with pytest.raises(InputError):
        get_system("p5.48xlarge").price("reserved")


def test_on_demand_field_and_quote_agree() -> None:
    for system in list_systems():
        assert system.price("on-demand").usd_per_chip_hour == system.price_usd_per_chip_hour, system.id
    # SkyPilot snapshot: p5en.48xlarge $63.296/h for 8 H200 in us-east-1.
    h200 = get_system("hgx-h200").price("on-demand")
    assert h200.usd_per_chip_hour == pytest.approx(63.296 / 8) and h200.region == "us-east-1"


def test_a_system_without_price_table_has_its_on_demand_price() -> None:
    system = System(id="s", name="S", chip_id="c", node_chips=1, levels=(), price_usd_per_chip_hour=2.0)
    assert system.price().usd_per_chip_hour == 2.0
    assert system.price("spot").usd_per_chip_hour is None


def test_system_records_carry_every_kind() -> None:
    d = system_to_dict(get_system("hgx-h100"))
    assert set(d["prices"]) == set(PRICE_KINDS)
    assert d["prices"]["capacity-block"]["usd_per_chip_hour"] == pytest.approx(39.33 / 8, rel=1e-12)
    assert d["prices"]["spot"]["usd_per_chip_hour"] is None and d["prices"]["spot"]["note"]
    json.dumps([system_to_dict(s) for s in list_systems()])


def _doc(prices: dict[str, Any]) -> dict[str, Any]:
    fig = {"value": 100.0, "src": ["s1"]}
    return {
        "sources": {"s1": {"title": "A source", "url": "https://example.org/s1"}},
        "chips": [
            {
                "id": "x1",
                "name": "X1",
                "vendor": "V",
                "family": "f",
                "architecture": "gpu",
                "default_system": "x1-box",
                "sources": ["s1"],
                "bf16_dense_tflops": dict(fig),
                "hbm_capacity_gib": dict(fig),
                "hbm_bandwidth_tb_s": {"value": 1.0, "src": ["s1"]},
            }
        ],
        "systems": [
            {
                "id": "x1-box",
                "name": "X1 box",
                "chip": "x1",
                "node_chips": 4,
                "max_chips": 4,
                "sources": ["s1"],
                "prices": prices,
                "levels": [
                    {
                        "name": "l",
                        "kind": "switched",
                        "domain_chips": 4,
                        "bandwidth_gb_s_per_chip": 1,
                        "latency_us": 1,
                        "sources": ["s1"],
                    },
                ],
            }
        ],
    }


_OK = {
    "on_demand": {
        "usd_per_chip_hour": 2.5, "usd_per_instance_hour": 10.0, "region": "r1", "src": ["s1"],
        "provider": "aws", "quality": "A",
    },
    "spot": {"usd_per_chip_hour": None, "note": "not published"},
}


def _load(tmp_path: Path, prices: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
    doc = _doc(prices)
    doc["systems"][0].update(extra or {})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_catalog([path])


def test_a_price_table_loads(tmp_path: Path) -> None:
    system = _load(tmp_path, _OK).systems[0]
    assert system.price_usd_per_chip_hour == 2.5 and "r1" in system.price_note
    assert system.price("spot").note == "not published"
    assert system.price("capacity-block").usd_per_chip_hour is None


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        (
            {"on_demand": {"usd_per_chip_hour": 2.5, "provider": "p", "quality": "A"}},
            "prices.on_demand.src",
            "source",
        ),
        (
            {
                "on_demand": {
                    "usd_per_chip_hour": 2.6, "usd_per_instance_hour": 10.0, "src": ["s1"],
                    "provider": "p", "quality": "A",
                }
            },  # fmt: skip
            "prices.on_demand.usd_per_chip_hour",
            "instance_chips",
        ),
        ({"spot": {"usd_per_chip_hour": None}}, "prices.spot.note", "why"),
        ({"spot": {"usd_per_chip_hour": 0, "src": ["s1"]}}, "prices.spot.usd_per_chip_hour", "positive"),
        (
            {"spot": {"usd_per_chip_hour": 1.0, "src": ["nope"], "provider": "p", "quality": "A"}},
            "prices.spot.src",
            "unknown source",
        ),
        (
            {"spot": {"usd_per_chip_hour": 1.0, "src": ["s1"], "provider": "p", "quality": "D"}},
            "prices.spot.quality",
            "grade",
        ),
        ({"reserved": {"usd_per_chip_hour": None, "note": "x"}}, "prices", "unknown key"),
    ],
)
def test_a_malformed_price_names_its_field(
    tmp_path: Path, change: dict[str, Any], field: str, rule: str
) -> None:
    prices = copy.deepcopy(_OK) | change
    with pytest.raises(InputError) as info:
        _load(tmp_path, prices)
    assert info.value.field == f"p.yaml:systems[x1-box].{field}" and rule in info.value.rule


def test_on_demand_price_is_required_and_given_only_in_prices(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        _load(tmp_path, {"spot": _OK["spot"]})
    assert info.value.field == "p.yaml:systems[x1-box].prices.on_demand" and "required" in info.value.rule
    with pytest.raises(InputError) as info:
        _load(tmp_path, _OK, {"price_usd_per_chip_hour": 2.5})
    assert info.value.value == "price_usd_per_chip_hour" and "unknown key" in info.value.rule


def test_every_price_has_a_grade_and_provider() -> None:
    """shared/data/prices_power.yaml grades: A vendor-derived, B secondary, C single third-party."""
    for system in list_systems():
        for kind in PRICE_KINDS:
            quote = system.price(kind)
            if quote.usd_per_chip_hour is None:
                assert quote.quality == "", (system.id, kind)
            else:
                assert quote.quality in PRICE_QUALITIES and quote.provider, (system.id, kind)


def test_tpu_and_trainium_prices_from_the_price_book() -> None:
    """prices_power.yaml: SkyPilot GCP (billing API, grade A) per chip-hour v4 3.22, v5e 1.20, v5p 4.20
    (33.6 per v5p-16 = 8 chips), v6e 2.70; Trainium2 $35.76 / 16 from one hand-entered page (C)."""
    expected = {"tpu-v4-pod": 3.22, "tpu-v5e-pod": 1.20, "tpu-v5p-pod": 4.20, "tpu-v6e-pod": 2.70}
    for system_id, usd in expected.items():
        quote = get_system(system_id).price()
        assert quote.usd_per_chip_hour == pytest.approx(usd) and quote.quality == "A", system_id
        assert quote.provider == "gcp"
    assert get_system("tpu-v5p-pod").price().usd_per_instance_hour == pytest.approx(33.6)
    trn2 = get_system("trn2.48xlarge").price()
    assert (trn2.usd_per_chip_hour, trn2.quality, trn2.provider) == (pytest.approx(2.235), "C", "aws")
    assert "grade C" in trn2.describe()


def test_a_price_without_a_grade_is_refused(tmp_path: Path) -> None:
    doc = {
        "sources": {"s": {"title": "T", "url": "https://example.com"}},
        "systems": [
            {
                "id": "x", "name": "X", "chip": "h100", "node_chips": 1, "max_chips": 1,
                "sources": ["s"], "levels": [],
                "prices": {"on_demand": {"usd_per_chip_hour": 1.0, "provider": "p", "src": ["s"]}},
            }
        ],
    }  # fmt: skip
    with pytest.raises(InputError, match="quality"):
        parse_catalog_document(tmp_path / "x.yaml", doc)
