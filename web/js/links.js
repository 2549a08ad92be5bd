// Type-checked links: litegraph refuses a drop onto an incompatible socket; this says why, on screen.

const TOAST_MS = 4000;

/** The reason a drop of `renderLinks` at `event` made no link (a type mismatch), or null when there is none. */
function refusal(editor, renderLinks, event) {
  const { graph, canvas, LiteGraph } = editor;
  const link = renderLinks[0];
  const node = graph.getNodeOnPos(event.canvasX, event.canvasY);
  if (!link?.fromSlot || !node || renderLinks.every((each) => each.node === node)) return null;
  const pos = [event.canvasX, event.canvasY];
  const type = link.fromSlot.type || "*";
  if (link.toType === "input") {
    const overWidget = canvas.linkConnector.overWidget;
    const input = node.getInputOnPos(pos) ?? (overWidget ? node.getSlotFromWidget(overWidget) : undefined);
    if (input) {
      return LiteGraph.isValidConnection(type, input.type) ? null
        : `${node.title}.${input.name} takes ${input.type}, not ${type}`;
    }
    if ((node.inputs ?? []).some((each) => LiteGraph.isValidConnection(type, each.type))) return null;
    return `${node.title} has no input that takes ${type}`;
  }
  const target = `${link.node.title}.${link.fromSlot.name}`;
  const output = node.getOutputOnPos(pos);
  if (output) {
    return LiteGraph.isValidConnection(output.type, type) ? null
      : `${node.title}.${output.name} gives ${output.type}, but ${target} takes ${type}`;
  }
  if ((node.outputs ?? []).some((each) => LiteGraph.isValidConnection(each.type, type))) return null;
  return `${node.title} has no output that ${target} can take (${type})`;
}

/** A short note at a client point that fades away. */
function toast(text, x, y) {
  const note = document.createElement("div");
  note.className = "rg-toast";
  note.setAttribute("role", "alert");
  note.textContent = text;
  note.style.left = `${Math.max(0, Math.min(x + 12, innerWidth - 320))}px`;
  note.style.top = `${Math.max(0, y + 12)}px`;
  document.body.append(note);
  setTimeout(() => note.remove(), TOAST_MS);
}

/** Install the refusal notes: each refused drop is reported on the status line and next to the pointer. */
export function install(editor) {
  editor.addStylesheet("css/editing.css");
  const events = editor.canvas.linkConnector.events;
  const drop = { connected: false };
  for (const name of ["link-created", "input-moved", "output-moved"]) {
    events.addEventListener(name, () => { drop.connected = true; });
  }
  events.addEventListener("after-drop-links", ({ detail: { renderLinks, event } }) => {
    const connected = drop.connected;
    drop.connected = false;
    const reason = connected ? null : refusal(editor, renderLinks, event);
    if (!reason) return;
    editor.report(`link refused: ${reason}`, true);
    toast(reason, event.clientX, event.clientY);
  });
}
