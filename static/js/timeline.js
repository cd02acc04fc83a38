// The run's steps as a Gantt chart: one lane for the design, one per task (its coder and
// tester attempts one after the other), one for planning and one for integration, so tasks
// coded in parallel show as bars side by side. Drawn as SVG markup with classes only.
const LANE = 22;
const LABEL = 96;
const MIN_WIDTH = 520;

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const laneOf = (step) => {
  if (step.task) return `task:${step.task}`;
  if ((step.key || "").startsWith("design:")) return "design";
  if (step.role === "orchestrator") return "plan";
  if ((step.key || "").startsWith("import:")) return "import";
  return "integrate";
};

const laneName = (lane) => (lane.startsWith("task:") ? lane.slice(5) : lane);

const seconds = (value) => {
  if (value < 60) return `${Math.round(value)} s`;
  const minutes = Math.floor(value / 60);
  const rest = Math.round(value % 60);
  return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
};

const tickStep = (span) => {
  for (const step of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600]) {
    if (span / step <= 8) return step;
  }
  return 7200;
};

export function drawTimeline(container, steps, tasks, { now, onOpen }) {
  const timed = steps.filter((step) => step.started_at);
  if (!timed.length) return;
  const start = Math.min(...timed.map((step) => Date.parse(step.started_at)));
  const endOf = (step) => (step.finished_at ? Date.parse(step.finished_at) : Math.max(now, Date.parse(step.started_at)));
  const end = Math.max(start + 1000, ...timed.map(endOf));
  const lanes = ["design", "plan", ...tasks.map((task) => `task:${task.key}`), "integrate"];
  for (const step of timed) if (!lanes.includes(laneOf(step))) lanes.push(laneOf(step));
  const used = lanes.filter((lane) => timed.some((step) => laneOf(step) === lane));
  const width = Math.max(MIN_WIDTH, container.clientWidth || MIN_WIDTH);
  const plot = width - LABEL - 8;
  const height = used.length * LANE + 20;
  const span = (end - start) / 1000;
  const x = (time) => LABEL + ((time - start) / (end - start)) * plot;
  const parts = [];
  const step = tickStep(span);
  for (let t = 0; t <= span; t += step) {
    const px = x(start + t * 1000).toFixed(1);
    parts.push(`<line class="gantt-grid" x1="${px}" x2="${px}" y1="0" y2="${height - 16}"/>`);
    parts.push(`<text class="gantt-axis" x="${px}" y="${height - 4}" text-anchor="middle">${escape(seconds(t))}</text>`);
  }
  used.forEach((lane, index) => {
    const y = index * LANE;
    parts.push(`<text class="gantt-row-label" x="0" y="${y + 15}">${escape(laneName(lane).slice(0, 14))}</text>`);
  });
  for (const item of timed) {
    const lane = used.indexOf(laneOf(item));
    const x1 = x(Date.parse(item.started_at));
    const x2 = Math.max(x1 + 2, x(endOf(item)));
    const took = (endOf(item) - Date.parse(item.started_at)) / 1000;
    const label = `${item.role}${item.task ? ` ${item.task}` : ""} attempt ${item.attempt || 1}: ${item.status}, ${took.toFixed(1)} s`;
    parts.push(
      `<rect class="gantt-bar status-${escape(item.status)} role-${escape(item.role)}" data-step="${item.id}" x="${x1.toFixed(1)}" y="${lane * LANE + 3}" width="${(x2 - x1).toFixed(1)}" height="${LANE - 6}" rx="3"><title>${escape(label)}</title></rect>`,
    );
  }
  const running = timed.filter((item) => item.status === "running").length;
  const summary = `Timeline of ${timed.length} steps over ${seconds(span)} in ${used.length} lanes${running ? `, ${running} running` : ""}`;
  container.innerHTML = `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escape(summary)}">${parts.join("")}</svg>`;
  if (!container.dataset.wired) {
    container.dataset.wired = "1";
    container.addEventListener("click", (event) => {
      const bar = event.target.closest && event.target.closest(".gantt-bar");
      if (bar) onOpen(bar.dataset.step);
    });
  }
}
