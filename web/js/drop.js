// Opening a file dropped on the page (or picked): a workflow JSON, an API prompt, or media with an embedded workflow.

import { hasFiles } from "./dom.js";
import { missingSummary, registerMissing } from "./missing_nodes.js";

const MEDIA_NAME = /\.(png|apng|webp|gif|mp4|mov|m4v|webm|mkv)$/i;
const COLUMN_GAP = 80;
const ROW_GAP = 60;
const MARGIN = 50;

/** The message of a failed API answer: the server's error.message, or the status and text. */
export async function answerMessage(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body?.error?.message) return body.error.message;
  } catch {
    // not JSON: the text itself says it
  }
  return `the server answered ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`;
}

const isLink = (value) => Array.isArray(value) && value.length === 2 && typeof value[1] === "number";

/** Whether `data` looks like an API-format prompt: {id: {class_type, inputs}}. */
function isApiPrompt(data) {
  const entries = Object.values(data ?? {});
  return entries.length > 0 && entries.every((entry) => typeof entry?.class_type === "string");
}

/** Each node's column: one more than the deepest node feeding it. */
function depths(prompt) {
  const memo = new Map();
  const depth = (id, seen = new Set()) => {
    if (memo.has(id)) return memo.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const sources = Object.values(prompt[id]?.inputs ?? {}).filter(isLink).map(([source]) => String(source))
      .filter((source) => source in prompt);
    const value = Math.max(-1, ...sources.map((source) => depth(source, seen))) + 1;
    memo.set(id, value);
    return value;
  };
  for (const id of Object.keys(prompt)) depth(id);
  return memo;
}

/** The output slot `slot` of `node`, added (typed as the input it feeds) when a placeholder lacks it. */
function ensureOutput(node, slot, type) {
  while ((node.outputs?.length ?? 0) <= slot) node.addOutput(type, type);
}

/** A UI workflow with the nodes of API prompt `prompt`, laid out in columns from sources to outputs. */
function apiToWorkflow(editor, prompt) {
  const { lib, LiteGraph } = editor;
  registerMissing(lib, { nodes: Object.values(prompt).map((entry) => ({ type: entry.class_type })) });
  const scratch = new lib.LGraph();
  const nodes = new Map();
  let nextId = Math.max(0, ...Object.keys(prompt).map(Number).filter(Number.isInteger)) + 1;
  for (const [id, entry] of Object.entries(prompt)) {
    const node = LiteGraph.createNode(entry.class_type, entry._meta?.title);
    node.id = Number.isInteger(Number(id)) ? Number(id) : nextId++;
    const literals = Object.entries(entry.inputs ?? {}).filter(([, value]) => !isLink(value));
    for (const [name, value] of literals) {
      const widget = node.widgets?.find((candidate) => candidate.inputName === name);
      if (widget) widget.value = value;
    }
    if (node.constructor.missing) node.loadedData = { widgets_values: literals.map(([, value]) => value) };
    scratch.add(node);
    nodes.set(id, node);
  }
  for (const [id, entry] of Object.entries(prompt)) {
    const target = nodes.get(id);
    for (const [name, value] of Object.entries(entry.inputs ?? {})) {
      const source = isLink(value) ? nodes.get(String(value[0])) : null;
      if (!source) continue;
      let index = target.inputs?.findIndex((input) => input.name === name) ?? -1;
      if (source.constructor.missing) ensureOutput(source, value[1], index >= 0 ? target.inputs[index].type : "*");
      const output = source.outputs?.[value[1]];
      if (!output) continue; // the prompt names an output its node does not have
      if (index < 0) {
        const widget = target.widgets?.some((candidate) => candidate.inputName === name);
        target.addInput(name, output.type, widget ? { widget: { name } } : {});
        index = target.inputs.length - 1;
      }
      source.connect(value[1], target, index);
    }
  }
  const columns = depths(prompt);
  const widths = [];
  for (const [id, node] of nodes) widths[columns.get(id)] = Math.max(widths[columns.get(id)] ?? 0, node.size[0]);
  const lefts = [MARGIN];
  for (const width of widths) lefts.push(lefts.at(-1) + (width ?? 0) + COLUMN_GAP);
  const bottoms = [];
  for (const [id, node] of nodes) {
    const column = columns.get(id);
    node.pos = [lefts[column], (bottoms[column] ?? MARGIN) + LiteGraph.NODE_TITLE_HEIGHT];
    bottoms[column] = node.pos[1] + node.size[1] + ROW_GAP;
  }
  return scratch.serialize();
}

/** The UI workflow in parsed JSON `data` (a UI workflow, or an API prompt converted); throws when it is neither. */
function workflowFromJson(editor, data) {
  if (Array.isArray(data?.nodes)) return data;
  if (isApiPrompt(data)) return apiToWorkflow(editor, data);
  throw new Error("is neither a workflow (nodes and links) nor an API prompt (class_type and inputs per node)");
}

/** Ask the server for the workflow embedded in media `file`; throws with a clear message when there is none. */
async function embeddedWorkflow(editor, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  const response = await editor.api.fetch("/workflow/extract", { method: "POST", body: form });
  if (!response.ok) throw new Error(await answerMessage(response));
  const { workflow, prompt } = await response.json();
  if (workflow) return workflowFromJson(editor, workflow);
  if (isApiPrompt(prompt)) return apiToWorkflow(editor, prompt);
  throw new Error("carries no workflow");
}

/** Read the workflow a file holds: JSON by name or type, media through /workflow/extract. */
async function readWorkflow(editor, file) {
  const isJson = /\.json$/i.test(file.name) || file.type === "application/json";
  if (isJson) {
    let data;
    try {
      data = JSON.parse(await file.text());
    } catch (error) {
      throw new Error(`is not valid JSON (${error.message})`);
    }
    return workflowFromJson(editor, data);
  }
  if (MEDIA_NAME.test(file.name) || /^(image|video)\//.test(file.type)) return embeddedWorkflow(editor, file);
  throw new Error("is not a workflow: drop a .json workflow, or a PNG, WebP, GIF, mp4 or webm that carries one");
}

/**
 * Open the workflow in `file` (JSON, or media with an embedded workflow), reporting the outcome; the current graph
 * stays as it was when the file holds none or it cannot be opened. Answers whether it opened.
 */
export async function openFile(editor, file) {
  editor.report(`reading ${file.name}…`);
  let workflow;
  try {
    workflow = await readWorkflow(editor, file);
  } catch (error) {
    editor.report(`${file.name} ${error.message}`, true);
    return false;
  }
  const before = editor.graph.serialize();
  try {
    editor.loadWorkflow(workflow);
  } catch (error) {
    editor.loadWorkflow(before);
    editor.report(`${file.name} could not be opened: ${error.message}`, true);
    return false;
  }
  const missing = missingSummary(editor.graph);
  editor.report(missing ? `opened ${file.name}; ${missing}` : `opened ${file.name}`, !!missing);
  return true;
}


/** Drag and drop of workflow files anywhere on the page (the highlight's style is in css/workflow_files.css). */
export function install(editor) {
  let depth = 0; // dragenter/dragleave pairs, so leaving a child element does not end the drag
  const setDragging = (on) => document.body.classList.toggle("reelgraph-dropping", on);
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    setDragging(true);
  });
  document.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) setDragging(false);
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  // Any drop ends the drag, also one a node takes for itself (an upload) before it reaches the document.
  addEventListener("drop", () => { depth = 0; setDragging(false); }, { capture: true });
  document.addEventListener("drop", async (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    const [file] = event.dataTransfer.files;
    if (file) await openFile(editor, file);
  });
}
