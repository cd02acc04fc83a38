// The Terminal tab: xterm.js on the terminal WebSocket. A ticket comes first (a POST to this
// page's ticket endpoint, single use), then the socket; the terminal fits its box and tells
// the shell its size whenever the window changes.
import { Terminal } from "../vendor/xterm/lib/xterm.mjs";
import { FitAddon } from "../vendor/xterm-addon-fit/addon-fit.mjs";

const box = document.getElementById("terminal");
const status = document.getElementById("terminal-status");
const reconnect = document.getElementById("terminal-reconnect");

// xterm.js writes its own <style> elements; the Content Security Policy admits them only with
// this response's nonce, so every <style> created on this page carries it.
const nonce = document.querySelector("script[nonce]")?.nonce || "";
if (nonce) {
  const createElement = Document.prototype.createElement;
  Document.prototype.createElement = function (name, options) {
    const element = createElement.call(this, name, options);
    if (String(name).toLowerCase() === "style") element.setAttribute("nonce", nonce);
    return element;
  };
}

const csrfToken = () => {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
};

const say = (text, problem = false) => {
  status.textContent = text;
  status.classList.toggle("field-error", problem);
};

if (box) {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: '"DejaVu Sans Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    lineHeight: 1.2,
    scrollback: 5000,
    theme: { background: "#111827", foreground: "#e5e7eb" },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();

  let socket = null;
  const send = (frame) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  };
  term.onData((data) => send({ type: "input", data }));
  term.onResize(({ cols, rows }) => send({ type: "resize", cols, rows }));
  new ResizeObserver(() => fit.fit()).observe(box);

  const connect = async () => {
    reconnect.hidden = true;
    say("Starting the terminal…");
    let response;
    try {
      response = await fetch(box.dataset.ticketUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch {
      say("The server could not be reached; check your connection and reconnect.", true);
      reconnect.hidden = false;
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      say(body.detail || "The terminal could not start.", true);
      reconnect.hidden = false;
      return;
    }
    let opened = false;
    socket = new WebSocket(body.ws_url);
    socket.addEventListener("open", () => {
      opened = true;
      say("Connected: a shell in the project's sandbox, in its workspace.");
      send({ type: "resize", cols: term.cols, rows: term.rows });
      term.focus();
    });
    socket.addEventListener("message", (event) => {
      const text = typeof event.data === "string" ? event.data : "";
      if (text.startsWith('{"type": "exit"') || text.startsWith('{"type": "error"')) {
        try {
          const frame = JSON.parse(text);
          if (frame.type === "exit" && frame.reason === "session_revoked") {
            say("This browser was signed out, so the terminal closed. Sign in again to open one.", true);
          } else if (frame.type === "exit") {
            say(`The shell exited${frame.code != null ? ` with code ${frame.code}` : ""}${frame.reason ? ` (${frame.reason})` : ""}.`);
          } else {
            say(frame.detail || "The terminal reported an error.", true);
          }
          return;
        } catch {
          // plain output that only looks like a control frame
        }
      }
      term.write(text);
    });
    socket.addEventListener("close", () => {
      reconnect.hidden = false;
      if (!opened) {
        say("The terminal could not start: the sandbox is unavailable on this server, or you already have the most terminals open.", true);
      } else if (!status.textContent.startsWith("The shell exited") && !status.textContent.startsWith("This browser was signed out")) {
        say("The terminal session ended.");
      }
    });
  };
  reconnect.addEventListener("click", connect);
  connect();
}
