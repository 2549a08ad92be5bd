// Live step previews: the WebSocket's binary preview images shown on the running node, one blob URL per node.

/** The preview images on the nodes, each holding a blob URL that is revoked once the image is replaced or cleared. */
export class StepPreviews {
  constructor(graph, runState) {
    this.graph = graph;
    this.runState = runState;
    this.shown = new Map(); // node -> blob URL of the preview it shows
  }

  /** How many preview blob URLs are alive (at most one per node). */
  get liveCount() {
    return this.shown.size;
  }

  /** Show `blob` (a JPEG or PNG) on the running node, replacing its previous preview. */
  show(blob) {
    const node = this.runState.running;
    if (!node?.showPreview) return;
    this.forgetRemovedNodes();
    const url = URL.createObjectURL(blob);
    const image = new Image();
    image.onload = () => node.setDirtyCanvas(true, false);
    image.src = url;
    const previous = this.shown.get(node);
    this.shown.set(node, url);
    node.showPreview(image);
    if (previous !== undefined) URL.revokeObjectURL(previous);
  }

  /** Take `node`'s preview away and revoke its URL. */
  clear(node) {
    const url = this.shown.get(node);
    if (url === undefined) return;
    this.shown.delete(node);
    URL.revokeObjectURL(url);
    if (node.run?.preview) node.showPreview(null);
  }

  clearAll() {
    for (const node of [...this.shown.keys()]) this.clear(node);
  }

  forgetRemovedNodes() {
    for (const node of [...this.shown.keys()]) if (node.graph !== this.graph) this.clear(node);
  }

  /** Follow the WebSocket: previews arrive as "b_preview", a node's output replaces its preview, a new run clears. */
  onMessage(type, data) {
    if (type === "b_preview") this.show(data);
    else if (type === "executed") this.clearNode(data.node);
    else if (type === "execution_start") this.clearAll();
  }

  clearNode(id) {
    for (const node of this.shown.keys()) if (String(node.id) === String(id)) return this.clear(node);
  }
}

/** Feature entry: previews follow the editor's WebSocket messages; `editor.stepPreviews` is the live state. */
export function install(editor) {
  const previews = new StepPreviews(editor.graph, editor.runState);
  editor.stepPreviews = previews;
  editor.on("message", (type, data) => previews.onMessage(type, data));
  editor.on("loading", () => previews.clearAll());
}
