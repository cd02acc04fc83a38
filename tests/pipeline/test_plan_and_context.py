"""Pure parts of the pipeline: DAG layers, merge conflicts, context trimming, offline answers."""

import json
from typing import Any

import pytest

from pipeline import context
from pipeline.models import PlanTask
from pipeline.roles import ROLES, CoderFiles, Design, PlannerReview, parse_context
from pipeline.services.stages import find_conflicts, plan_layers
from providers.offline import answers


def tasks(*specs: tuple[str, list[str]]) -> list[dict[str, Any]]:
    return [{"key": key, "title": key, "depends_on": deps} for key, deps in specs]


def test_plan_layers_are_the_topological_levels_of_the_dag() -> None:
    layers = plan_layers(tasks(("a", []), ("b", []), ("c", ["a", "b"]), ("d", ["c"])))

    assert layers == {"a": 0, "b": 0, "c": 1, "d": 2}


def test_a_cyclic_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        plan_layers(tasks(("a", ["b"]), ("b", ["a"])))


def test_a_plan_naming_an_unknown_dependency_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        plan_layers(tasks(("a", ["ghost"])))


def test_an_empty_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        plan_layers([])


def plan_task(key: str, files: dict[str, str], owns: list[str]) -> PlanTask:
    return PlanTask(key=key, title=key, files=owns, result={"files": files})


def test_two_tasks_writing_one_path_differently_conflict_and_the_owner_wins_the_tree() -> None:
    owner = plan_task("core", {"pkg/core.py": "def f():\n    return 1\n"}, ["pkg/core.py"])
    intruder = plan_task("cli", {"pkg/core.py": "def g():\n    return 2\n"}, ["pkg/cli.py"])

    tree, conflicts = find_conflicts([intruder, owner], {})

    assert tree == {"pkg/core.py": "def f():\n    return 1\n"}
    assert [(c["type"], c["path"]) for c in conflicts] == [("path", "pkg/core.py")]


def test_identical_shared_files_do_not_conflict() -> None:
    one = plan_task("a", {"conftest.py": "x\n"}, ["conftest.py"])
    two = plan_task("b", {"conftest.py": "x\n"}, ["conftest.py"])

    assert find_conflicts([one, two], {})[1] == []


def test_a_file_missing_a_designed_interface_is_a_conflict() -> None:
    core = plan_task("core", {"pkg/core.py": "def other():\n    pass\n"}, ["pkg/core.py"])
    design = {"interfaces": [{"path": "pkg/core.py", "name": "parse", "signature": "def parse()"}]}

    conflicts = find_conflicts([core], design)[1]

    assert [(c["type"], c["name"]) for c in conflicts] == [("interface", "parse")]


def test_trimmed_files_fit_the_budget_keeping_small_files_whole(settings: Any) -> None:
    files = {
        "small.py": "def small():\n    return 1\n",
        "big.py": "def big():\n" + "    x = 1\n" * 2000,
    }

    trimmed = context.trim_files(files, budget=400)

    assert trimmed["small.py"] == files["small.py"]
    assert trimmed["big.py"].startswith("# (trimmed to signatures)\ndef big():")
    assert sum(len(v) for v in trimmed.values()) < 400


def test_fit_shrinks_file_maps_to_the_context_budget(settings: Any) -> None:
    settings.PIPELINE_CONTEXT_BUDGET_TOKENS = 500
    deps = {f"m{i:02}.py": "y = 1\n" * 300 for i in range(30)}

    fitted = context.fit(
        {"task": {"key": "a"}, "dependencies": dict(deps)}, files_keys=("dependencies",)
    )

    kept = set(fitted["dependencies"]) - {"(omitted)"}
    assert context.size_of(fitted) <= 500 * context.CHARS_PER_TOKEN
    assert kept and kept < set(deps)
    assert "30 file(s)" not in fitted["dependencies"]["(omitted)"]


def test_design_brief_carries_only_the_interfaces_of_the_given_paths() -> None:
    design = {
        "summary": "s",
        "interfaces": [{"path": "a.py", "name": "f"}, {"path": "b.py", "name": "g"}],
    }

    assert context.design_brief(design, paths={"a.py"})["interfaces"] == [
        {"path": "a.py", "name": "f"}
    ]


def test_every_role_has_a_prompt_whose_context_round_trips() -> None:
    for role, prompt in ROLES.items():
        messages = prompt.messages({"kind": role, "step": "k"})

        assert parse_context(messages) == {"kind": role, "step": "k"}
        assert prompt.schema.__name__ in json.dumps(prompt.schema.model_json_schema())


def test_offline_answers_are_valid_design_plan_and_code(settings: Any) -> None:
    design_messages = ROLES["architect"].messages({"kind": "design", "prompt": "A dice roller"})
    design = Design.model_validate_json(
        answers.answer(role="architect", messages=design_messages, schema={})
    )
    plan_messages = ROLES["planner"].messages(
        {"kind": "plan_review", "design": design.model_dump()}
    )
    plan = PlannerReview.model_validate_json(
        answers.answer(role="planner", messages=plan_messages, schema={})
    )
    task = plan.tasks[0].model_dump()
    code_messages = ROLES["coder"].messages(
        {"kind": "code", "task": task, "design": design.model_dump()}
    )
    files = CoderFiles.model_validate_json(
        answers.answer(role="coder", messages=code_messages, schema={})
    )

    assert design.package == "dice_roller"
    assert plan.approved
    assert set(plan_layers([t.model_dump() for t in plan.tasks]).values()) == {0, 1}
    assert {f.path for f in files.files} == set(task["files"])


@pytest.mark.django_db
def test_a_coder_of_a_30_task_plan_sees_only_its_dependencies_within_the_budget(
    project: Any, settings: Any
) -> None:
    from pipeline.models import Run
    from pipeline.services.stages.coding import coder_context

    settings.PIPELINE_CONTEXT_BUDGET_TOKENS = 3000
    interfaces = [
        {"path": f"pkg/m{i}.py", "name": f"f{i}", "signature": f"def f{i}()"} for i in range(30)
    ]
    run = Run.objects.create(
        project=project, prompt="p", design={"summary": "s", "interfaces": interfaces}
    )
    for i in range(30):
        PlanTask.objects.create(
            run=run,
            key=f"t{i}",
            title=f"T{i}",
            files=[f"pkg/m{i}.py", f"tests/test_m{i}.py"],
            depends_on=["t3", "t7"] if i == 29 else [],
            result={
                "files": {
                    f"pkg/m{i}.py": f"def f{i}():\n" + "    x = 1\n" * 300,
                    f"tests/test_m{i}.py": "def test_x():\n    assert True\n",
                }
            },
        )
    task = PlanTask.objects.get(run=run, key="t29")

    seen = coder_context(run=run, task=task, step_key="task:t29:coder:1", attempt=1)

    assert set(seen["dependencies"]) == {"pkg/m3.py", "pkg/m7.py"}
    assert {i["path"] for i in seen["design"]["interfaces"]} == {
        "pkg/m3.py",
        "pkg/m7.py",
        "pkg/m29.py",
    }
    assert context.size_of(seen) <= 3000 * context.CHARS_PER_TOKEN
