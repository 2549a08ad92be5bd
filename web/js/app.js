// The editor page: the canvas, node types from the server, the toolbar, the run state and autosave.

import * as lib from "../lib/litegraph/litegraph.es.js";
import { api, connectSocket } from "./api.js";
import { registerFrontendNodes, registerNodeTypes } from "./nodes.js";
import { graphToPrompt } from "./prompt.js";
import { RunState } from "./run_state.js";
import { autosave, loadSaved } from "./storage.js";
import { installTooltips } from "./tooltip.js";
import { applySeedControls } from "./widgets.js";

const DEFAULT_TEMPLATE = "blend_scale_ui.json";
const SOCKET_WAIT_MS = 3000;
const { LGraph, LGraphCanvas, LiteGraph } = lib;

const statusLine = document.getElementById("status");
function report(text, isError = false) {
  statusLine.textContent = text;
  statusLine.title = text;
  statusLine.classList.toggle("error", isError);
}

function newClientId() {
  return crypto.randomUUID?.() ?? `${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}`;
}

/** Zoom and pan so every node is in view. */
function fitView(canvas) {
  const nodes = canvas.graph._nodes;
  if (!nodes.length) return;
  const title = lib.LiteGraph.NODE_TITLE_HEIGHT;
  const left = Math.min(...nodes.map((n) => n.pos[0]));
  const top = Math.min(...nodes.map((n) => n.pos[1] - title));
  const right = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const bottom = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
  canvas.ds.fitToBounds([left, top, right - left, bottom - top], { zoom: 0.9 });
  canvas.setDirty(true, true);
}

function fitCanvas(canvas) {
  const element = canvas.canvas;
  element.width = innerWidth;
  element.height = innerHeight - element.offsetTop;
  canvas.setDirty(true, true);
}

async function start() {
  const clientId = sessionStorage.getItem("reelgraph.clientId") ?? newClientId();
  sessionStorage.setItem("reelgraph.clientId", clientId);
  const graph = new LGraph();
  const canvas = new LGraphCanvas(document.getElementById("graph"), graph);
  fitCanvas(canvas);
  addEventListener("resize", () => fitCanvas(canvas));

  let saver = null;
  const changed = () => saver?.saveSoon();
  registerNodeTypes(lib, await api.objectInfo(), changed);
  registerFrontendNodes(lib, changed);
  const runState = new RunState(graph, api.viewUrl, report);

  function loadWorkflow(workflow) {
    graph.clear();
    graph.configure(workflow);
    runState.setRunning(null);
    saver?.saveNow();
    fitView(canvas);
  }

  async function loadTemplate(name) {
    loadWorkflow(await api.template(name));
    report(`opened ${name}`);
  }

  async function queue() {
    runState.clearErrors();
    const { output, workflow } = graphToPrompt(graph);
    const answer = await api.queuePrompt(output, workflow, clientId);
    const marked = runState.showNodeErrors(answer.body?.node_errors);
    if (answer.ok) {
      applySeedControls(graph);
      saver?.saveSoon();
      runState.reportQueued(answer.body, marked);
    } else {
      report(answer.body?.error?.message ?? `the server answered ${answer.status}`, true);
    }
    return answer.body;
  }

  const saved = loadSaved();
  try {
    if (saved) loadWorkflow(saved);
    else await loadTemplate(DEFAULT_TEMPLATE);
  } catch (error) {
    console.warn("could not open the saved workflow", error);
    graph.clear();
  }
  saver = autosave(graph);
  for (const event of ["pointerup", "keyup", "wheel"]) document.addEventListener(event, changed);

  document.getElementById("queue").onclick = () => queue();
  document.getElementById("interrupt").onclick = () => api.interrupt();
  document.getElementById("fit").onclick = () => fitView(canvas);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") { event.preventDefault(); queue(); }
  });
  const templates = document.getElementById("templates");
  for (const name of await api.templates()) templates.add(new Option(name, name));
  templates.onchange = async () => {
    if (templates.value) await loadTemplate(templates.value);
    templates.value = "";
  };
  installTooltips(canvas, document.getElementById("tooltip"));
  const socketOpen = connectSocket(clientId, (type, data) => runState.onMessage(type, data), (open) => {
    if (!open) report("reconnecting to the server…", true);
  });

  // Queue only once the socket listens, or a quick run's events would be missed; a dead socket delays 3 s at most.
  await Promise.race([socketOpen, new Promise((resolve) => setTimeout(resolve, SOCKET_WAIT_MS))]);
  window.reelgraph = {
    LiteGraph, graph, canvas, clientId, queue, loadWorkflow, loadTemplate, graphToPrompt, fitView: () => fitView(canvas),
  };
  report("ready");
}

start().catch((error) => {
  report(`the editor could not start: ${error.message}`, true);
  throw error;
});
