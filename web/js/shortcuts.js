// Keyboard shortcuts of the canvas: undo/redo, group, bypass and mute (litegraph itself handles Delete, copy, paste).

import { isTyping } from "./dom.js";

const ALWAYS = 0;
const MUTED = 2;
const BYPASSED = 4;
const GROUP_PADDING = 10;

function selectedNodes(editor) {
  return [...editor.canvas.selectedItems].filter((item) => item instanceof editor.lib.LGraphNode);
}

/** Put the selected nodes in `mode`, or back to normal when all of them are in it already. */
function toggleMode(editor, mode) {
  const nodes = selectedNodes(editor);
  if (!nodes.length) return;
  const next = nodes.every((node) => node.mode === mode) ? ALWAYS : mode;
  for (const node of nodes) node.mode = next;
  editor.canvas.setDirty(true, true);
  editor.changed();
}

/** A new group fitted around the selected nodes (and reroutes, groups); null when nothing is selected. */
function groupSelection(editor) {
  const items = [...editor.canvas.selectedItems];
  if (!items.length) return null;
  const group = new editor.lib.LGraphGroup();
  editor.graph.add(group);
  group.resizeTo(items, GROUP_PADDING);
  group.recomputeInsideNodes();
  editor.canvas.setDirty(true, true);
  editor.changed();
  return group;
}

/** Install the shortcuts: Ctrl+Z undo, Ctrl+Y or Ctrl+Shift+Z redo, Ctrl+G group, Ctrl+B bypass, Ctrl+M mute. */
export function install(editor) {
  const actions = {
    z: (event) => (event.shiftKey ? editor.history?.redo() : editor.history?.undo()),
    y: () => editor.history?.redo(),
    g: () => groupSelection(editor),
    b: () => toggleMode(editor, BYPASSED),
    m: () => toggleMode(editor, MUTED),
  };
  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.altKey || isTyping(event)) return;
    const action = actions[event.key.toLowerCase()];
    if (!action || (event.shiftKey && event.key.toLowerCase() !== "z")) return;
    event.preventDefault();
    action(event);
    editor.checkpoint?.();
  });
}
