"""What each of the platform's steps waits for, from the step keys of a run."""

from bench.platform_trace import step_deps


def test_steps_wait_for_what_the_pipeline_makes_them_wait_for() -> None:
    keys = [
        "design:1:architect",
        "design:1:planner",
        "design:2:architect",
        "design:2:planner",
        "orchestrate",
        "task:core:coder:1",
        "task:storage:coder:1",
        "task:core:tester:1",
        "task:storage:tester:1",
        "task:core:coder:2",
        "task:core:tester:2",
        "task:cli:coder:1",
        "task:cli:tester:1",
        "integrate:suite:1",
        "integrate:integrator",
    ]
    depends_on = {"core": [], "storage": [], "cli": ["core", "storage"]}

    deps = step_deps(keys, depends_on)

    assert deps == {
        "design:1:architect": (),
        "design:1:planner": ("design:1:architect",),
        "design:2:architect": ("design:1:planner",),
        "design:2:planner": ("design:2:architect",),
        "orchestrate": ("design:2:planner",),
        "task:core:coder:1": ("orchestrate",),
        "task:storage:coder:1": ("orchestrate",),
        "task:core:tester:1": ("task:core:coder:1",),
        "task:storage:tester:1": ("task:storage:coder:1",),
        "task:core:coder:2": ("task:core:tester:1",),
        "task:core:tester:2": ("task:core:coder:2",),
        "task:cli:coder:1": ("task:core:tester:2", "task:storage:tester:1"),
        "task:cli:tester:1": ("task:cli:coder:1",),
        "integrate:suite:1": (
            "task:cli:tester:1",
            "task:core:tester:2",
            "task:storage:tester:1",
        ),
        "integrate:integrator": ("integrate:suite:1",),
    }
