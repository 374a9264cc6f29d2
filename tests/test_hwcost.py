from pathlib import Path

import pytest

from lpbench.hwcost import energy_pj, load_costs

COSTS = Path(__file__).parents[1] / "config" / "hw_costs.yaml"


def test_constants_are_horowitz_45nm():
    c = load_costs(COSTS)["energy_pj"]
    expected = {"int8_add": 0.03, "int8_mult": 0.2, "int32_add": 0.1, "int32_mult": 3.1, "fp16_add": 0.4,
                "fp16_mult": 1.1, "fp32_add": 0.9, "fp32_mult": 3.7}
    assert {k: v["value"] for k, v in c.items()} == expected
    assert all("Horowitz" in v["source"] for v in c.values())


def test_energy_by_hand():
    e = energy_pj({"int8_mult": 10, "int32_add": 10, "fp32_mult": 2}, load_costs(COSTS))
    assert e["total"] == pytest.approx(10 * 0.2 + 10 * 0.1 + 2 * 3.7)


def test_unknown_op_is_an_error():
    with pytest.raises(KeyError, match="int4_mult.*known"):
        energy_pj({"int4_mult": 1}, load_costs(COSTS))
