// The editor page: the canvas, node types from the server, the toolbar, the run state and autosave.
// Each feature is a module exporting `install(editor)`; `editor` (below) is everything a feature may use.

import * as lib from "../lib/litegraph/litegraph.es.js";
import { api, connectSocket } from "./api.js";
import * as levelOfDetail from "./lod.js";
import * as links from "./links.js";
import * as dropFiles from "./drop.js";
import * as keepFields from "./keep_fields.js";
import * as missingNodes from "./missing_nodes.js";
import * as modes from "./modes.js";
import { registerFrontendNodes, registerNodeTypes } from "./nodes.js";
import { OwnPrompts } from "./own_prompts.js";
import { graphToPrompt } from "./prompt.js";
import * as queuePanel from "./queue_panel.js";
import * as refreshLists from "./refresh.js";
import { RunState } from "./run_state.js";
import * as nodeSearch from "./search.js";
import * as shortcuts from "./shortcuts.js";
import * as stepPreviews from "./step_preview.js";
import * as subgraphs from "./subgraphs.js";
import { autosave, loadSaved } from "./storage.js";
import { installTooltips } from "./tooltip.js";
import * as trackEditor from "./track_editor.js";
import * as undo from "./undo.js";
import * as uploads from "./upload.js";
import * as videoPreviews from "./video_preview.js";
import { applySeedControls } from "./widgets.js";
import * as workflowFiles from "./workflow_files.js";

const DEFAULT_TEMPLATE = "blend_scale_ui.json";
const SOCKET_WAIT_MS = 3000;
const { LGraph, LGraphCanvas, LiteGraph } = lib;

/** The feature modules, installed in this order once the graph and canvas exist. */
const FEATURES = [
  keepFields,
  subgraphs, // before missingNodes: a definition's type must be registered before unknown types are looked for
  missingNodes,
  workflowFiles,
  dropFiles,
  levelOfDetail,
  queuePanel,
  stepPreviews,
  videoPreviews,
  uploads,
  trackEditor,
  refreshLists,
  undo,
  nodeSearch,
  links,
  shortcuts,
  modes,
  { install: (editor) => installTooltips(editor.canvas, document.getElementById("tooltip")) },
];

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

/** A button added to the toolbar (before the status line). */
function addToolbarButton(label, title, onClick) {
  const button = document.createElement("button");
  button.textContent = label;
  button.title = title;
  button.onclick = onClick;
  statusLine.before(button);
  return button;
}

/** Link a feature's stylesheet (a path under web/). */
function addStylesheet(path) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = path;
  document.head.append(link);
}

async function start() {
  const clientId = sessionStorage.getItem("reelgraph.clientId") ?? newClientId();
  sessionStorage.setItem("reelgraph.clientId", clientId);
  const graph = new LGraph();
  const canvas = new LGraphCanvas(document.getElementById("graph"), graph);
  canvas.show_info = false; // litegraph's debug overlay (frame rate, node counts)
  fitCanvas(canvas);
  addEventListener("resize", () => fitCanvas(canvas));

  let saver = null;
  const changed = () => saver?.saveSoon();
  const objectInfo = await api.objectInfo();
  registerNodeTypes(lib, objectInfo, changed);
  registerFrontendNodes(lib, changed);
  const runState = new RunState(graph, api.viewUrl, report);
  const ownPrompts = new OwnPrompts((type, data) => {
    runState.onMessage(type, data);
    for (const listener of listeners.message) listener(type, data);
  });
  const listeners = { loading: [], loaded: [], queueing: [], queued: [], message: [] };

  /** Open `workflow`; `how` is "restore" for the graph autosaved by the last visit. */
  function loadWorkflow(workflow, how = "open") {
    for (const listener of listeners.loading) listener(workflow);
    graph.clear();
    graph.configure(workflow);
    runState.setRunning(null);
    saver?.saveNow();
    fitView(canvas);
    for (const listener of listeners.loaded) listener(workflow, how);
  }

  async function loadTemplate(name) {
    loadWorkflow(await api.template(name));
    report(`opened ${name}`);
  }

  async function queue() {
    const refusal = listeners.queueing.map((check) => check()).find(Boolean);
    if (refusal) {
      report(refusal, true);
      return { error: { type: "refused", message: refusal } };
    }
    runState.clearErrors();
    const { output, workflow } = graphToPrompt(graph);
    ownPrompts.queueing();
    let answer = null;
    try {
      answer = await api.queuePrompt(output, workflow, clientId);
    } finally {
      ownPrompts.queued(answer?.ok ? answer.body?.prompt_id : null); // its early events are delivered now
    }
    const marked = runState.showNodeErrors(answer.body?.node_errors);
    if (answer.ok) {
      applySeedControls(graph);
      saver?.saveSoon();
      runState.reportQueued(answer.body, marked);
      for (const listener of listeners.queued) listener(answer.body);
    } else {
      report(answer.body?.error?.message ?? `the server answered ${answer.status}`, true);
    }
    return answer.body;
  }

  const editor = {
    lib, LiteGraph, graph, canvas, api, clientId, objectInfo, runState, report, changed,
    queue, loadWorkflow, loadTemplate, graphToPrompt,
    fitView: () => fitView(canvas),
    addToolbarButton, addStylesheet,
    /**
     * Call `listener` on "loading" (a workflow about to be configured), "loaded" (it opened: workflow, how),
     * "queueing" (before a queue: answer a reason to refuse it, or null), "queued" (/prompt's answer) or "message"
     * (a WebSocket message of this page's prompts: type, data).
     */
    on: (event, listener) => listeners[event].push(listener),
  };

  for (const feature of FEATURES) await feature.install(editor); // before the first load: they may register types
  const saved = loadSaved();
  try {
    if (saved) loadWorkflow(saved, "restore");
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
  ownPrompts.adopt(await api.queue(), clientId);
  const socketOpen = connectSocket(clientId, (type, data) => ownPrompts.receive(type, data), (open) => {
    if (!open) report("reconnecting to the server…", true);
  });

  // Queue only once the socket listens, or a quick run's events would be missed; a dead socket delays 3 s at most.
  await Promise.race([socketOpen, new Promise((resolve) => setTimeout(resolve, SOCKET_WAIT_MS))]);
  window.reelgraph = editor;
  report("ready");
}

start().catch((error) => {
  report(`the editor could not start: ${error.message}`, true);
  throw error;
});
