// One line of plain words per progress event, for the run page's events log.
const money = (value) => {
  const amount = Number(value);
  if (!Number.isFinite(amount)) return "";
  return amount !== 0 && Math.abs(amount) < 0.01 ? `$${amount.toFixed(4)}` : `$${amount.toFixed(2)}`;
};
const who = (p) => [p.role, p.task, p.attempt > 1 ? `attempt ${p.attempt}` : ""].filter(Boolean).join(" ");

// Why a run resumed (pipeline.services.runs, steering), in plain words.
const RESUMED = {
  resumed: "on request",
  unpaused: "after its pause",
  stale: "after a worker stopped beating or its queued work was lost",
  worker_lost: "after the worker that stored its last step died before sending the next",
};

export function eventText(event) {
  const p = event.payload || {};
  switch (event.type) {
    case "run.started": return p.kind === "import" ? `The import of ${p.url || p.archive || "the repository"} started.` : "The run started.";
    case "import.progress": return p.detail || `Import: ${p.phase}.`;
    case "run.forked": {
      const reused = (p.reused || []).length;
      return `Forked from run ${p.forked_from} at ${p.from}: ${reused} step${reused === 1 ? "" : "s"} reused${reused ? ` (${p.reused.map((s) => s.key).join(", ")})` : ""}.`;
    }
    case "run.resumed": return `The run resumed ${RESUMED[p.reason] || `(${p.reason || "asked"})`}.`;
    case "run.approved": return "The design was approved; coding starts.";
    case "run.awaiting_approval": return "The design waits for your approval.";
    case "run.completed": return `The run completed with ${p.artifacts ?? "its"} files.`;
    case "run.failed": return `The run failed: ${p.detail || p.reason || "see the summary"}.`;
    case "run.cancelled": return "The run was cancelled.";
    case "run.paused": {
      const finishing = (p.finishing || []).length;
      return `The run was paused${finishing ? `; ${finishing} running step${finishing === 1 ? "" : "s"} finish${finishing === 1 ? "es" : ""} first` : ""}.`;
    }
    case "plan.edited": return `The plan was changed by ${(p.by && p.by.email) || "its owner"}: ${(p.changes || []).length} change(s).`;
    case "task.message": return `Message to task ${p.task}: “${p.text || ""}”.`;
    case "stage.started": return `Stage ${p.stage} started.`;
    case "stage.completed": return `Stage ${p.stage} completed.`;
    case "step.started": return `${who(p) || p.key} started.`;
    case "step.completed": {
      const tokens = (p.tokens_in || 0) + (p.tokens_out || 0);
      return `${who(p) || p.key} finished: ${tokens} tokens, ${money(p.cost_usd)}${p.model ? ` on ${p.model}` : ""}.`;
    }
    case "step.failed": return `${who(p) || p.key} failed (${p.reason || "error"}).`;
    case "consensus.round":
      return p.approved
        ? `Design round ${p.round}: the planner approved.`
        : `Design round ${p.round}: ${(p.objections || []).length} objection(s).`;
    case "test.result": {
      const subject = p.task ? `Task ${p.task}` : `Integration (${p.suite || "all"})`;
      const mode = p.mode === "static review" ? " (static review)" : p.mode ? ` (${p.mode})` : "";
      const broke = (p.regressions || []).length;
      const regressions = broke ? ` ${broke} regression${broke === 1 ? "" : "s"}: ${p.regressions.join(", ")}.` : "";
      return `${subject} attempt ${p.attempt}: ${p.passed ? "passed" : "failed"}${mode}.${regressions}`;
    }
    case "provider.failover": return `Failed over from ${p.from || "a provider"} to ${p.to || "the next"}.`;
    case "budget.warning": return `Budget warning: ${money(p.cost_usd)} of ${money(p.budget_usd)} spent.`;
    case "file.written": return `Wrote ${p.path}.`;
    case "integration.conflicts": return `Integration round ${p.round}: ${(p.conflicts || []).length} conflict(s).`;
    case "delivery.pushed":
      return p.new_commit === false
        ? `Branch ${p.branch} already holds this run (${String(p.commit || "").slice(0, 12)}).`
        : `Pushed ${String(p.commit || "").slice(0, 12)} to branch ${p.branch}.`;
    case "delivery.pull_request": return `Pull request #${p.number} ${p.created ? "opened" : "updated"} (${p.state}).`;
    case "delivery.failed": return `The delivery failed: ${p.detail || p.code}.`;
    default: return "";
  }
}
