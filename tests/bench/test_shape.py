"""The benchmark's reference times and hop analysis (pure logic, no stack)."""

import pytest

from bench.shape import (
    Shape,
    Span,
    Task,
    Trace,
    critical_chain,
    layered_shape,
    percentiles,
    trace_summary,
    uneven_shape,
)


def diamond() -> Shape:
    """a (fast) and b (slow) in layer 0; c needs a only, d needs b; 100 ms design calls."""
    return Shape(
        name="diamond",
        design_ms=(100, 100, 100),
        tasks=(
            Task("a", 0, (), 100, 100),
            Task("b", 0, (), 500, 500),
            Task("c", 1, ("a",), 900, 100),
            Task("d", 1, ("b",), 100, 100),
        ),
        integrate_ms=50,
    )


def test_the_critical_path_is_the_longest_dependent_chain() -> None:
    # design 300 + max(a 200 + c 1000, b 1000 + d 200) + integrate 50
    assert diamond().critical_path_ms() == 1550


def test_a_layer_barrier_waits_for_the_slowest_task_of_every_layer() -> None:
    # design 300 + layer 0 max(200, 1000) + layer 1 max(1000, 200) + integrate 50
    assert diamond().layered_ms() == 2350


def test_the_integrator_waits_for_every_task_and_first_coders_for_the_orchestrator() -> None:
    calls = {call.key: call.deps for call in diamond().calls()}

    assert calls["a:coder"] == ("orchestrator",)
    assert calls["c:coder"] == ("a:tester",)
    assert calls["c:tester"] == ("c:coder",)
    assert set(calls["integrator"]) == {"a:tester", "b:tester", "c:tester", "d:tester"}


def test_a_layered_shape_has_its_tasks_in_its_layers_each_feeding_the_next() -> None:
    shape = layered_shape(name="s", tasks=12, layers=3, latency_ms=200, spread=0.5, seed=7)

    layers = shape.layers
    assert [len(layer) for layer in layers] == [4, 4, 4]
    assert all(not t.depends_on for t in layers[0])
    for before, after in zip(layers, layers[1:], strict=False):
        keys = {t.key for t in before}
        assert all(t.depends_on and set(t.depends_on) <= keys for t in after)
        assert set().union(*(t.depends_on for t in after)) == keys


def test_a_layered_shape_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    def make(seed: int) -> Shape:
        return layered_shape(name="s", tasks=12, layers=3, latency_ms=200, spread=0.5, seed=seed)

    assert make(3) == make(3)
    assert make(3) != make(4)


def test_latencies_stay_within_the_spread() -> None:
    shape = layered_shape(name="s", tasks=30, layers=5, latency_ms=200, spread=1.0, seed=1)

    latencies = [ms for t in shape.tasks for ms in (t.coder_ms, t.tester_ms)]
    assert min(latencies) >= 100
    assert max(latencies) <= 400
    assert len(set(latencies)) > 1


def test_no_spread_gives_equal_latencies() -> None:
    shape = layered_shape(name="s", tasks=3, layers=2, latency_ms=200, spread=0.0, seed=1)

    assert {t.coder_ms for t in shape.tasks} | {t.tester_ms for t in shape.tasks} == {200}


def test_an_uneven_shape_makes_the_barrier_cost_the_gap_asked_for() -> None:
    shape = uneven_shape(name="u", tasks=12, layers=3, latency_ms=200, seed=14, min_gap=1.2)

    assert shape.layered_ms() >= 1.2 * shape.critical_path_ms()
    assert shape == uneven_shape(name="u", tasks=12, layers=3, latency_ms=200, seed=14, min_gap=1.2)


def test_more_layers_than_tasks_is_refused() -> None:
    with pytest.raises(ValueError, match="layers"):
        layered_shape(name="s", tasks=2, layers=3, latency_ms=1, spread=0, seed=1)


def test_the_critical_chain_follows_the_dependency_that_ended_last() -> None:
    trace = Trace(
        begin=0.0,
        end=10.0,
        spans=[
            Span("x", (), 1.0, 2.0),
            Span("y", (), 1.5, 5.0),
            Span("z", ("x", "y"), 5.25, 9.0),
        ],
    )

    chain = critical_chain(trace)

    assert [(span.key, hop) for span, hop in chain] == [("y", 1.5), ("z", 0.25)]


def test_the_summary_reports_hops_between_calls_and_the_ratios() -> None:
    shape = Shape(name="one", design_ms=(1000, 1000, 1000), tasks=(), integrate_ms=1000)
    trace = Trace(
        begin=0.0,
        end=4.5,
        spans=[
            Span("architect", (), 0.1, 1.1),
            Span("planner", ("architect",), 1.15, 2.15),
            Span("orchestrator", ("planner",), 2.25, 3.25),
            Span("integrator", ("orchestrator",), 3.25, 4.25),
        ],
    )

    summary = trace_summary(trace, shape)

    assert summary["hops_ms"]["n"] == 3
    assert summary["hops_ms"]["max"] == pytest.approx(100)
    assert summary["hops_ms"]["p50"] == pytest.approx(50)
    assert summary["start_ms"] == pytest.approx(100)
    assert summary["finish_ms"] == pytest.approx(250)
    assert summary["wall_over_critical_path"] == pytest.approx(4.5 / 4)


def test_percentiles_take_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentiles(values) == {"p50": 50.5, "p99": 99.0, "max": 100.0, "n": 100}
    assert percentiles([]) == {"p50": None, "p99": None, "max": None, "n": 0}
