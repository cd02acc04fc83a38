// The task DAG as SVG: one column per layer (a row per layer on a narrow screen), tasks in a
// layer ordered by the mean position of the tasks they depend on (fewer crossing arrows).
// Each task is a button named by its key, title, status and attempts; selecting one opens
// its latest step. Colours come from classes (the stylesheet), never inline styles.
const SVG = "http://www.w3.org/2000/svg";
const NODE = { width: 178, height: 74 };
const GAP = { layer: 64, node: 16 };
const NARROW = 560;

const svgElement = (name, attributes = {}) => {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
};

const clip = (text, length) => (text.length > length ? `${text.slice(0, length - 1)}…` : text);

const TITLE_CHARS = 24;

// The name holds the node's visible text in its order (key, title, status, attempts); a
// title cut short on screen is given whole as the node's description.
export const taskLabel = (task) =>
  `Task ${task.key}: ${clip(task.title, TITLE_CHARS)}, ${task.status}, ${attemptsText(task)}` +
  (task.static_review ? ", static review" : "");

const attemptsText = (task) => `coder ${task.coder_attempts || 0} · tester ${task.tester_attempts || 0}`;

const layerOf = (tasks) => {
  // The server's layer when present; otherwise the longest path from a root.
  const byKey = new Map(tasks.map((task) => [task.key, task]));
  const memo = new Map();
  const depth = (task, seen = new Set()) => {
    if (Number.isInteger(task.layer)) return task.layer;
    if (memo.has(task.key)) return memo.get(task.key);
    if (seen.has(task.key)) return 0;
    seen.add(task.key);
    const parents = task.depends_on.map((key) => byKey.get(key)).filter(Boolean);
    const value = parents.length ? 1 + Math.max(...parents.map((p) => depth(p, seen))) : 0;
    memo.set(task.key, value);
    return value;
  };
  return (task) => depth(task);
};

const layout = (tasks, narrow) => {
  const layer = layerOf(tasks);
  const layers = [];
  for (const task of tasks) {
    const index = layer(task);
    (layers[index] ||= []).push(task);
  }
  const position = new Map();
  layers.forEach((column, index) => {
    if (!column) return;
    if (index > 0) {
      const mean = (task) => {
        const known = task.depends_on.filter((key) => position.has(key)).map((key) => position.get(key));
        return known.length ? known.reduce((a, b) => a + b, 0) / known.length : Infinity;
      };
      column.sort((a, b) => mean(a) - mean(b));
    }
    column.forEach((task, slot) => position.set(task.key, slot));
  });
  const width = narrow ? 150 : NODE.width;
  const longest = Math.max(1, ...layers.filter(Boolean).map((column) => column.length));
  const boxes = new Map();
  layers.forEach((column, index) => {
    if (!column) return;
    const offset = (longest - column.length) / 2;
    column.forEach((task, slot) => {
      const along = index * ((narrow ? NODE.height : width) + GAP.layer);
      const across = (slot + offset) * ((narrow ? width : NODE.height) + GAP.node);
      boxes.set(task.key, narrow ? { x: across, y: along, width } : { x: along, y: across, width });
    });
  });
  const count = layers.length;
  const size = narrow
    ? { width: longest * (width + GAP.node), height: count * (NODE.height + GAP.layer) - GAP.layer }
    : { width: count * (width + GAP.layer) - GAP.layer, height: longest * (NODE.height + GAP.node) };
  return { boxes, size };
};

const setNode = (group, task) => {
  group.setAttribute("class", `graph-node status-${task.status}`);
  group.setAttribute("aria-label", taskLabel(task));
  // Trailing spaces keep the texts apart as words when read as one (the name's rule).
  group.querySelector(".node-status").textContent = `${task.status} `;
  group.querySelector(".node-attempts").textContent = `${attemptsText(task)} `;
  group.querySelector(".node-review").textContent = task.static_review ? "static review" : "";
  group.setAttribute("aria-description", task.title);
};

export function drawGraph(container, tasks, { onOpen }) {
  if (!tasks.length) return;
  const narrow = container.clientWidth > 0 && container.clientWidth < NARROW;
  const { boxes, size } = layout(tasks, narrow);
  const pad = 4;
  const svg = svgElement("svg", {
    width: size.width + pad * 2,
    height: size.height + pad * 2,
    viewBox: `${-pad} ${-pad} ${size.width + pad * 2} ${size.height + pad * 2}`,
    role: "group",
    "aria-label": `Task graph: ${tasks.length} task${tasks.length === 1 ? "" : "s"}`,
  });
  const defs = svgElement("defs");
  const marker = svgElement("marker", {
    id: "graph-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
    orient: "auto-start-reverse",
  });
  marker.append(svgElement("path", { d: "M0,0 L10,5 L0,10 z", class: "graph-arrow-head", fill: "#6b7280" }));
  defs.append(marker);
  svg.append(defs);
  const edges = svgElement("g", { "aria-hidden": "true" });
  for (const task of tasks) {
    const to = boxes.get(task.key);
    for (const parentKey of task.depends_on) {
      const from = boxes.get(parentKey);
      if (!from || !to) continue;
      let d;
      if (narrow) {
        const x1 = from.x + from.width / 2, y1 = from.y + NODE.height;
        const x2 = to.x + to.width / 2, y2 = to.y;
        const mid = (y1 + y2) / 2;
        d = `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2 - 2}`;
      } else {
        const x1 = from.x + from.width, y1 = from.y + NODE.height / 2;
        const x2 = to.x, y2 = to.y + NODE.height / 2;
        const mid = (x1 + x2) / 2;
        d = `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 2},${y2}`;
      }
      edges.append(svgElement("path", { d, class: "graph-edge", "marker-end": "url(#graph-arrow)", "data-from": parentKey, "data-to": task.key }));
    }
  }
  svg.append(edges);
  for (const task of tasks) {
    const box = boxes.get(task.key);
    const group = svgElement("g", { transform: `translate(${box.x},${box.y})`, role: "button", tabindex: 0, "data-task": task.key });
    group.append(svgElement("rect", { width: box.width, height: NODE.height, rx: 8, ry: 8 }));
    const title = svgElement("text", { x: 10, y: 18, class: "node-title" });
    title.textContent = `${task.key} `;
    const status = svgElement("text", { x: box.width - 10, y: 18, "text-anchor": "end", class: "node-status" });
    const subtitle = svgElement("text", { x: 10, y: 34 });
    subtitle.textContent = `${clip(task.title, TITLE_CHARS)} `;
    const attempts = svgElement("text", { x: 10, y: 50, class: "node-attempts" });
    const review = svgElement("text", { x: 10, y: 66, class: "node-review" });
    group.append(title, subtitle, status, attempts, review);
    setNode(group, task);
    group.addEventListener("click", () => onOpen(group.dataset.step, task.key));
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onOpen(group.dataset.step, task.key);
      }
    });
    group.dataset.step = task.latest_step_id ?? "";
    svg.append(group);
  }
  container.replaceChildren(svg);
  updateEdges(container, tasks);
}

const updateEdges = (container, tasks) => {
  const done = new Set(tasks.filter((t) => t.status === "succeeded").map((t) => t.key));
  for (const edge of container.querySelectorAll(".graph-edge")) {
    edge.classList.toggle("is-done", done.has(edge.dataset.from));
  }
};

export function updateGraph(container, tasks) {
  for (const task of tasks) {
    const group = container.querySelector(`g[data-task="${CSS.escape(task.key)}"]`);
    if (!group) continue;
    setNode(group, task);
    group.dataset.step = task.latest_step_id ?? "";
  }
  updateEdges(container, tasks);
}
