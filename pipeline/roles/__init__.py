"""Agent roles: a prompt template and a pydantic output schema each.

``ROLES[name]`` gives the role's main prompt; consult prompts (the architect and the planner
asked by the integrator about a conflict) live beside them in their role's module.
"""

from .architect import ARCHITECT, ARCHITECT_CONSULT, Design
from .base import Prompt, build_messages, parse_context
from .coder import CODER, CoderFiles
from .integrator import INTEGRATOR, IntegratorReport
from .orchestrator import ORCHESTRATOR, OrchestratorBrief
from .planner import PLANNER, PLANNER_CONSULT, PlannerReview
from .tester import TESTER, TesterVerdict

ROLES: dict[str, Prompt] = {
    prompt.role: prompt for prompt in (ARCHITECT, PLANNER, ORCHESTRATOR, CODER, TESTER, INTEGRATOR)
}

__all__ = [
    "ARCHITECT",
    "ARCHITECT_CONSULT",
    "CODER",
    "INTEGRATOR",
    "ORCHESTRATOR",
    "PLANNER",
    "PLANNER_CONSULT",
    "ROLES",
    "TESTER",
    "CoderFiles",
    "Design",
    "IntegratorReport",
    "OrchestratorBrief",
    "PlannerReview",
    "Prompt",
    "TesterVerdict",
    "build_messages",
    "parse_context",
]
