"""A change judged against the imported repository's baseline: a test that passed before and
fails now is a regression and fails the verdict; a test that already failed is not the
change's fault; anything else that fails still fails."""

from pipeline.regressions import Baseline, judge

BASELINE = Baseline(
    run_id=1,
    passed=frozenset(
        {"tests/test_a.py::test_one", "tests/test_a.py::test_two", "tests/test_b.py::test_b"}
    ),
    failing=frozenset({"tests/test_c.py::test_flaky"}),
)


def report(*failing: str, passed: bool = False, general: bool = False) -> dict:
    return {
        "passed": passed,
        "summary": "3 passed, 1 failed, 0 errors; 0 lint and 0 security findings",
        "failing_ids": list(failing),
        "general_failure": general,
        "failures": [f"{test_id}: assert 1 == 2" for test_id in failing],
    }


def test_a_baseline_test_that_fails_now_is_a_regression_and_fails_the_verdict():
    judged = judge(report("tests/test_a.py::test_two"), BASELINE)

    assert (judged["passed"], judged["regressions"], judged["known_failures"]) == (
        False,
        ["tests/test_a.py::test_two"],
        [],
    )
    assert judged["failures"] == [
        "Regression: tests/test_a.py::test_two passed before this change and fails now.",
        "tests/test_a.py::test_two: assert 1 == 2",
    ]
    assert judged["summary"].startswith("1 regression(s); ")


def test_a_module_that_can_no_longer_be_collected_regresses_each_of_its_passing_tests():
    judged = judge(report("tests/test_a.py"), BASELINE)

    assert judged["regressions"] == ["tests/test_a.py::test_one", "tests/test_a.py::test_two"]
    assert judged["passed"] is False


def test_a_test_that_already_failed_in_the_baseline_does_not_fail_the_change():
    judged = judge(report("tests/test_c.py::test_flaky"), BASELINE)

    assert (judged["passed"], judged["regressions"], judged["known_failures"]) == (
        True,
        [],
        ["tests/test_c.py::test_flaky"],
    )
    assert judged["failures"] == []


def test_a_new_failing_test_next_to_a_known_failure_still_fails():
    judged = judge(report("tests/test_c.py::test_flaky", "tests/test_new.py::test_new"), BASELINE)

    assert (judged["passed"], judged["regressions"]) == (False, [])
    assert judged["failures"] == ["tests/test_new.py::test_new: assert 1 == 2"]


def test_a_run_that_failed_as_a_whole_is_not_excused_by_the_baseline():
    judged = judge(report("tests/test_c.py::test_flaky", general=True), BASELINE)

    assert judged["passed"] is False


def test_a_green_report_stays_green():
    judged = judge(report(passed=True), BASELINE)

    assert (judged["passed"], judged["regressions"], judged["failures"]) == (True, [], [])
