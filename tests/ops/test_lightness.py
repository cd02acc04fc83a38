"""Each process loads what its role needs, and supervisors share what they loaded.

Beat and Flower run a Celery app without Django or any task (no LLM SDK, no application);
the web tier and the task modules load no LangChain and no Twisted reactor; the llm worker
preloads LangChain with the SDKs of the providers its chains name, and no other, and so does
the sandbox worker's pool before it forks when its testers call the model (sandbox on). A
supervisor forks its children after loading and freezing: they start with its frozen
objects instead of importing their own copies.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.net import ROOT, child_pids, subprocess_env, web_server
from tests.pipeline.conftest import wait_until

pytestmark = pytest.mark.django_db

LLM_MODULES = (
    "langchain_core",
    "langsmith",
    "langchain_openai",
    "langchain_anthropic",
    "langchain_aws",
    "langchain_google_genai",
    "openai",
    "anthropic",
    "boto3",
    "google.genai",
    "google.auth",
)


def _run(code: str, **env: str) -> str:
    done = subprocess.run(  # noqa: S603 - ourselves
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _loaded(code: str, **env: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    return set(
        json.loads(_run(f"{code}; import sys, json; print(json.dumps(sorted(sys.modules)))", **env))
    )


def _present(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


def test_beat_and_flower_load_no_application_and_no_llm_sdk():
    loaded = _loaded(
        "from config.celery_light import app; app.loader.import_default_modules(); "
        "app.conf.beat_schedule"
    )

    assert _present(loaded, LLM_MODULES) == []
    assert _present(loaded, ("pipeline", "providers", "projects", "accounts", "daphne")) == []


def test_the_light_app_beat_runs_keeps_the_schedule_and_the_broker():
    found = json.loads(
        _run(
            "import json; from config.celery_light import app; from django.conf import settings; "
            "conf = app.conf; print(json.dumps(["
            "sorted(conf.beat_schedule) == sorted(settings.CELERY_BEAT_SCHEDULE), "
            "conf.broker_url == settings.CELERY_BROKER_URL, "
            "sorted(q.name for q in conf.task_queues)]))"
        )
    )

    assert found == [True, True, ["default", "llm", "sandbox"]]


def test_the_web_tier_and_the_task_modules_load_no_langchain_and_no_reactor():
    loaded = _loaded(
        "import django; django.setup(); import config.asgi; from config.celery import app; "
        "app.loader.import_default_modules()"
    )

    assert _present(loaded, LLM_MODULES) == []
    assert _present(loaded, ("twisted.internet.reactor", "daphne.server")) == []


SANDBOX_POOL_FORKS = (
    "import django; django.setup(); from config.celery import app, _freeze_before_forking; "
    "app.loader.import_default_modules(); _freeze_before_forking()"
)


def test_the_sandbox_pool_loads_langchain_before_it_forks_when_its_testers_call_the_model():
    loaded = _loaded(SANDBOX_POOL_FORKS, SANDBOX_TESTS_ENABLED="true", LLM_PROVIDERS="offline")

    assert _present(loaded, ("langchain_core", "providers.offline.model")) == [
        "langchain_core",
        "providers.offline.model",
    ]


def test_the_sandbox_pool_loads_no_langchain_when_the_testers_run_on_the_llm_worker():
    loaded = _loaded(SANDBOX_POOL_FORKS, SANDBOX_TESTS_ENABLED="false", LLM_PROVIDERS="offline")

    assert _present(loaded, LLM_MODULES) == []


def test_the_llm_worker_preloads_langchain_and_the_offline_model_when_no_vendor_is_configured():
    loaded = _loaded("from config.llm_worker import preload; preload()", LLM_PROVIDERS="offline")

    assert _present(loaded, ("langchain_core", "providers.offline.model")) == [
        "langchain_core",
        "providers.offline.model",
    ]
    assert _present(loaded, LLM_MODULES[2:]) == []


def test_the_llm_worker_preloads_the_sdk_of_a_configured_provider_and_no_other():
    loaded = _loaded(
        "from config.llm_worker import preload; preload()",
        LLM_PROVIDERS="anthropic",
        ANTHROPIC_API_KEY="sk-ant-test-not-a-key",
    )

    assert _present(loaded, LLM_MODULES[2:]) == ["langchain_anthropic", "anthropic"]


FORK_PROBE = """
import gc, os, signal, time
from common.memory import freeze_startup_objects
from config.supervise import Supervisor
marker = [object() for _ in range(1000)]
freeze_startup_objects()
frozen = gc.get_freeze_count()
r, w = os.pipe()

def child(slot):
    # Frozen objects are in no generation the collector walks (gc.get_objects leaves them out).
    frozen_here = int(not any(o is marker for o in gc.get_objects()))
    os.write(w, f"{frozen_here} {id(marker)} {os.getpid()}".encode())
    os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(60)

code = Supervisor(1, child).run()
print(frozen, id(marker), os.getpid(), os.read(r, 200).decode(), code)
"""


def test_a_supervised_child_starts_with_the_objects_its_parent_loaded_and_froze():
    frozen, marker, parent, marker_frozen, child_marker, child, code = (
        int(value) for value in _run(FORK_PROBE).split()
    )

    # The child holds the very list the parent made (same address: a page it shares until
    # written), still frozen.
    assert (marker_frozen, child_marker, code) == (1, marker, 0)
    assert frozen > 1000 and child != parent


@pytest.mark.slow
def test_web_processes_are_forked_from_the_supervisor_that_loaded_the_application():
    with web_server(env=subprocess_env(WEB_PROCESSES="2")) as (_, supervisor):
        children = wait_until(
            lambda: (found := child_pids(supervisor.pid)) and len(found) == 2 and found,
            timeout=90,
        )
        parent_argv = Path(f"/proc/{supervisor.pid}/cmdline").read_bytes()

        # Forked, not started anew: a child runs the very command line its parent was given.
        assert {Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children} == {parent_argv}
