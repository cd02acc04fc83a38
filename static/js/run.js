// The run page, live: events arrive over SSE (htmx's SSE extension holds the connection),
// are queued, and applied in one batch per animation frame: the task graph and timeline are
// updated in place, the events log gets one fragment, and the server-rendered fragments
// (summary, steps, rounds) are asked for at most once per second each. A reconnect resumes
// after the last event applied (Last-Event-ID, or ?last_event_id= when the extension makes a
// new EventSource), and events already applied are skipped by their seq.
import { drawGraph, updateGraph } from "./graph.js";
import { drawTimeline } from "./timeline.js";
import { eventText } from "./events.js";

const FINAL = new Set(["run.completed", "run.failed", "run.cancelled"]);
const EVENT_TYPES = [
  "run.started", "run.forked", "run.resumed", "run.approved", "run.awaiting_approval", "run.completed",
  "run.failed", "run.cancelled", "stage.started", "stage.completed", "step.started",
  "step.completed", "step.failed", "consensus.round", "test.result", "provider.failover",
  "budget.warning", "file.written", "integration.conflicts", "import.progress", "run.paused",
  "plan.edited", "task.message", "message", "delivery.pushed", "delivery.pull_request",
  "delivery.failed",
];
const FRAGMENT_INTERVAL_MS = 1500;
const STATE_INTERVAL_MS = 1000;

const dataNode = document.getElementById("run-data");
const data = dataNode ? JSON.parse(dataNode.textContent) : null;

if (data) {
  const graphBox = document.getElementById("task-graph");
  const timelineBox = document.getElementById("timeline");
  const log = document.getElementById("event-log");
  const liveState = document.getElementById("live-state");
  const model = {
    lastSeq: data.last_seq,
    final: data.final,
    clockSkew: Date.parse(data.state.now) - Date.now(),
    tasks: new Map(data.state.tasks.map((task) => [task.key, task])),
    steps: new Map(data.state.steps.map((step) => [step.id, step])),
    structureKey: "",
  };
  let queue = [];
  let flushScheduled = false;
  let source = null;

  // A task with no step yet opens its entry in the Tasks card (its forms at the gate).
  const openStep = (stepId, taskKey) => {
    if (!stepId) {
      const entry = taskKey ? document.getElementById(`task-${taskKey}`) : null;
      if (entry) {
        entry.scrollIntoView({ block: "nearest" });
        (entry.querySelector("input, textarea") || entry).focus({ preventScroll: true });
      }
      return;
    }
    if (!window.htmx) return;
    window.htmx.ajax("GET", `${data.step_url}${stepId}`, { target: "#step-panel", swap: "innerHTML" });
  };

  // --- drawing ------------------------------------------------------------------------------
  const structureOf = (tasks) => tasks.map((t) => `${t.key}<${t.depends_on.join(",")}`).join("|");
  const redraw = () => {
    const tasks = [...model.tasks.values()];
    const key = structureOf(tasks);
    if (!graphBox) {
      // An import run has no plan: no graph to draw.
    } else if (key !== model.structureKey || !graphBox.querySelector("svg")) {
      model.structureKey = key;
      drawGraph(graphBox, tasks, { onOpen: openStep });
    } else {
      updateGraph(graphBox, tasks);
    }
    drawTimeline(timelineBox, [...model.steps.values()], [...model.tasks.values()], {
      now: Date.now() + model.clockSkew,
      onOpen: openStep,
    });
  };

  // --- the events log -------------------------------------------------------------------------
  const logItem = (event) => {
    const item = document.createElement("li");
    item.value = event.seq;
    item.dataset.seq = String(event.seq);
    const time = document.createElement("time");
    time.dateTime = event.at;
    time.textContent = new Date(event.at).toLocaleTimeString([], { hour12: false });
    const type = document.createElement("code");
    type.textContent = event.type;
    item.append(`#${event.seq} `, time, " ", type, ` ${eventText(event)}`);
    return item;
  };
  const appendLog = (events) => {
    const fragment = document.createDocumentFragment();
    for (const event of events) fragment.append(logItem(event));
    const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    log.append(fragment);
    if (stick) log.scrollTop = log.scrollHeight;
  };

  // --- applying events to the model ----------------------------------------------------------
  let needState = false;
  const touchedFragments = new Set();
  const taskOf = (key) => (key ? model.tasks.get(key) : undefined);
  const apply = (event) => {
    const p = event.payload || {};
    touchedFragments.add("run-summary");
    switch (event.type) {
      case "step.started": {
        const old = model.steps.get(p.step_id) || {};
        model.steps.set(p.step_id, {
          ...old, id: p.step_id, key: p.key, role: p.role, task: p.task ?? old.task ?? null,
          round: p.round ?? old.round, attempt: p.attempt ?? old.attempt ?? 1,
          status: "running", started_at: event.at, finished_at: null,
        });
        const task = taskOf(p.task);
        if (p.role === "coder") touchedFragments.add("run-plan");
        if (task) {
          if (task.status === "pending") task.status = "running";
          if (p.role === "coder") task.coder_attempts = Math.max(task.coder_attempts, p.attempt || 1);
          if (p.role === "tester") task.tester_attempts = Math.max(task.tester_attempts, p.attempt || 1);
          task.latest_step_id = p.step_id;
        } else if (p.task) {
          needState = true;
        }
        touchedFragments.add("run-steps");
        break;
      }
      case "step.completed":
      case "step.failed": {
        const step = model.steps.get(p.step_id);
        if (step) {
          step.status = event.type === "step.completed" ? "succeeded" : "failed";
          step.finished_at = event.at;
        } else {
          needState = true;
        }
        touchedFragments.add("run-steps");
        if ((p.key || "").startsWith("design:")) touchedFragments.add("run-rounds");
        break;
      }
      case "plan.edited":
        touchedFragments.add("run-plan");
        touchedFragments.add("run-rounds");
        needState = true;
        break;
      case "task.message":
        touchedFragments.add("run-plan");
        break;
      case "test.result": {
        touchedFragments.add("run-plan");
        const task = taskOf(p.task);
        if (task) {
          task.static_review = p.mode === "static review";
          if (p.passed) task.status = "succeeded";
        }
        break;
      }
      case "consensus.round":
        touchedFragments.add("run-rounds");
        needState = true;
        break;
      default:
        if (event.type.startsWith("run.") || event.type.startsWith("stage.")) needState = true;
        // What a run offers (Follow up once completed) and its changes follow its status only.
        if (event.type.startsWith("run.")) {
          touchedFragments.add("run-iterate");
          touchedFragments.add("run-changes");
          touchedFragments.add("run-delivery");
          touchedFragments.add("run-plan");
        }
        if (event.type.startsWith("delivery.")) touchedFragments.add("run-delivery");
    }
  };

  // --- fragments and state, each at most once per interval ------------------------------------
  const throttled = (fn, interval) => {
    let last = 0;
    let timer = null;
    return () => {
      if (timer) return;
      const wait = Math.max(0, last + interval - Date.now());
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn();
      }, wait);
    };
  };
  const fragmentRefreshers = new Map();
  const refreshFragment = (id) => {
    if (!fragmentRefreshers.has(id)) {
      fragmentRefreshers.set(id, throttled(() => {
        const element = document.getElementById(id);
        if (element && window.htmx) window.htmx.trigger(element, "run-refresh");
      }, FRAGMENT_INTERVAL_MS));
    }
    fragmentRefreshers.get(id)();
  };
  let stateInFlight = false;
  let stateAgain = false;
  const fetchState = async () => {
    if (stateInFlight) {
      stateAgain = true;
      return;
    }
    stateInFlight = true;
    try {
      const response = await fetch(data.state_url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const fresh = await response.json();
        model.clockSkew = Date.parse(fresh.now) - Date.now();
        model.tasks = new Map(fresh.tasks.map((task) => [task.key, task]));
        // Steps the stream announced after this snapshot was read keep their newer state.
        const merged = new Map(fresh.steps.map((step) => [step.id, step]));
        for (const [id, step] of model.steps) {
          const known = merged.get(id);
          if (!known || (known.status === "running" && step.status !== "running")) merged.set(id, step);
        }
        model.steps = merged;
        redraw();
      }
    } finally {
      stateInFlight = false;
      if (stateAgain) {
        stateAgain = false;
        refreshState();
      }
    }
  };
  const refreshState = throttled(fetchState, STATE_INTERVAL_MS);

  // --- the batch ------------------------------------------------------------------------------
  const flush = () => {
    flushScheduled = false;
    const batch = queue.sort((a, b) => a.seq - b.seq);
    queue = [];
    const fresh = [];
    for (const event of batch) {
      if (event.seq <= model.lastSeq) continue;
      model.lastSeq = event.seq;
      fresh.push(event);
      apply(event);
      if (FINAL.has(event.type)) model.final = true;
      if (event.type === "run.resumed") model.final = false;
    }
    if (!fresh.length) return;
    appendLog(fresh);
    redraw();
    for (const id of touchedFragments) refreshFragment(id);
    touchedFragments.clear();
    if (needState || model.final) {
      needState = false;
      refreshState();
    }
    if (model.final) finish();
  };
  const enqueue = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (typeof event.seq !== "number") return;
    // The server ends the stream after the final event; closing first keeps the browser
    // from reconnecting (and reporting the closed stream as an error).
    if (FINAL.has(event.type) && source) source.close();
    queue.push(event);
    if (!flushScheduled) {
      flushScheduled = true;
      requestAnimationFrame(flush);
    }
  };

  const finish = () => {
    if (source) source.close();
    liveState.textContent = "The run has ended; this page is up to date.";
    document.getElementById("run-live")?.removeAttribute("sse-connect");
  };

  // --- the stream ---------------------------------------------------------------------------
  // The SSE extension creates the EventSource through this hook, also when it reconnects
  // with a new one: the URL then resumes after the last event applied.
  if (window.htmx && !model.final) {
    window.htmx.createEventSource = (url) => {
      const resumed = new URL(url, window.location.href);
      resumed.searchParams.set("last_event_id", String(model.lastSeq));
      source = new EventSource(resumed.toString(), { withCredentials: true });
      for (const type of EVENT_TYPES) source.addEventListener(type, enqueue);
      source.addEventListener("open", () => {
        liveState.textContent = "Live: following the run as it happens.";
      });
      source.addEventListener("error", () => {
        if (!model.final) liveState.textContent = "Reconnecting to the live stream…";
      });
      return source;
    };
  }

  // --- start --------------------------------------------------------------------------------
  appendLog(data.events);
  redraw();
  // A window that turns from wide to narrow (or back) gets the graph and timeline anew.
  let resizeTimer = null;
  const widthBox = graphBox || timelineBox;
  let lastWidth = widthBox.clientWidth;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (Math.abs(widthBox.clientWidth - lastWidth) < 8) return;
      lastWidth = widthBox.clientWidth;
      model.structureKey = "";
      redraw();
    }, 150);
  });
  // Keep the bars of running steps growing between events.
  setInterval(() => {
    if (!model.final && [...model.steps.values()].some((step) => step.status === "running")) {
      drawTimeline(timelineBox, [...model.steps.values()], [...model.tasks.values()], {
        now: Date.now() + model.clockSkew,
        onOpen: openStep,
      });
    }
  }, 1000);
  // A message sent: its box (kept through the card's refreshes) is emptied.
  document.body.addEventListener("task-message-sent", (event) => {
    const box = document.getElementById(`message-${event.detail.key}`);
    if (box) box.value = "";
  });
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "step-panel") {
      const title = document.getElementById("step-panel-title");
      if (title) {
        title.focus({ preventScroll: true });
        title.scrollIntoView({ block: "nearest" });
      }
    }
  });
}
