"""The primitive bench runs and reports a positive cost for every primitive it documents."""

from bench.crypto_primitives import DESCRIPTIONS, primitive_costs


def test_primitive_costs_cover_every_documented_operation() -> None:
    costs = primitive_costs(min_time_s=0.001, batches=1)
    assert set(costs) == set(DESCRIPTIONS)
    assert all(us > 0 for us in costs.values())
