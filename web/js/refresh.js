// Refresh: fetch /object_info again and give every combo (model files, input files) the server's current choices.
// A chosen value the server no longer offers stays selected, and its node is marked and reported.

import { isTyping } from "./dom.js";
import { registerNodeTypes } from "./nodes.js";
import { comboValues } from "./widgets.js";

/** The input spec [type, options] of input `name` in a node's info, or null. */
function inputSpec(info, name) {
  return info?.input?.required?.[name] ?? info?.input?.optional?.[name] ?? null;
}

/** Take the fresh definitions into the registered ones (in place: node constructors read these objects). */
function updateDefinitions(editor, fresh) {
  const added = {};
  for (const [type, info] of Object.entries(fresh)) {
    const known = editor.objectInfo[type];
    if (known) Object.assign(known, info);
    else added[type] = editor.objectInfo[type] = info;
  }
  if (Object.keys(added).length) registerNodeTypes(editor.lib, added, editor.changed);
  return Object.keys(added).length;
}

/** Give `node`'s combo widgets their fresh choices; answers the widgets whose value is no longer offered. */
function updateCombos(editor, node) {
  const info = editor.objectInfo[node.type];
  const stale = [];
  for (const widget of node.widgets ?? []) {
    if (widget.type !== "combo" || !widget.inputName) continue;
    const [type, options = {}] = inputSpec(info, widget.inputName) ?? [];
    const values = type === undefined ? null : comboValues(type, options);
    if (!values) continue;
    widget.options.values = values;
    if (!values.includes(widget.value)) stale.push(widget);
  }
  return stale;
}

/** Refetch the node definitions and update every combo of the graph; reports what changed. */
export async function refreshLists(editor) {
  let fresh;
  try {
    fresh = await editor.api.objectInfo();
  } catch (error) {
    editor.report(`refresh failed: ${error.message}`, true);
    return { stale: [] };
  }
  const added = updateDefinitions(editor, fresh);
  const stale = [];
  for (const node of editor.graph._nodes) {
    for (const widget of updateCombos(editor, node)) {
      node.setError?.(`${widget.inputName}: "${widget.value}" is no longer offered by the server`);
      stale.push(`${node.title} #${node.id}: ${widget.inputName} "${widget.value}"`);
    }
  }
  for (const node of editor.graph._nodes) node.syncOptions?.(); // primitives take their targets' new choices
  editor.canvas.setDirty(true, true);
  const news = added ? `; ${added} new node type(s)` : "";
  if (stale.length) editor.report(`lists refreshed${news}; no longer offered: ${stale.join(", ")}`, true);
  else editor.report(`lists refreshed${news}`);
  return { stale };
}

/** Feature entry: a toolbar Refresh button, and the R key when not typing. */
export function install(editor) {
  editor.addToolbarButton("Refresh", "Fetch the node definitions and file lists again (R)", () => refreshLists(editor));
  document.addEventListener("keydown", (event) => {
    if (event.key?.toLowerCase() !== "r" || event.ctrlKey || event.metaKey || event.altKey || isTyping(event)) return;
    event.preventDefault();
    refreshLists(editor);
  });
}
