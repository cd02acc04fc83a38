"""The fault tests share the pipeline tests' fixtures (offline scripting, no sandbox)."""

from tests.pipeline.conftest import no_sandbox, script

__all__ = ["no_sandbox", "script"]
