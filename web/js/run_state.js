// What the WebSocket says about a run, drawn on the nodes: running node, progress, outputs and errors.

/** The node of a message's id; an id "5:3" of a node inside subgraph instance 5 answers the instance. */
function nodeById(graph, id) {
  if (id == null) return null;
  const node = graph.getNodeById(Number(id)) ?? graph.getNodeById(id);
  if (node || !String(id).includes(":")) return node;
  return nodeById(graph, String(id).split(":")[0]);
}

function firstLine(error) {
  return [error.message, error.details].filter(Boolean).join(": ");
}

/** Tracks one graph's run state; `report(text, isError)` updates the status line. */
export class RunState {
  constructor(graph, viewUrl, report) {
    this.graph = graph;
    this.viewUrl = viewUrl;
    this.report = report;
    this.running = null;
    this.failed = false;
    this.finished = new Set(); // prompt ids whose end was seen, maybe before /prompt's answer arrived
    this.media = null; // {create(node, entry, output), release(node)}: players for videos and animations
  }

  /** Show an `executed` output on its node (by id or node), playing videos and animations when `media` is set. */
  showOutput(id, output) {
    const node = typeof id === "object" ? id : nodeById(this.graph, id);
    if (!node?.showOutput) return;
    const media = this.media;
    media?.release(node);
    node.showOutput(output, this.viewUrl, media ? (entry) => media.create(node, entry, output) : null);
  }

  /** Say that a prompt was queued, unless its run already ended (a quick run's events can beat the answer). */
  reportQueued(answer, marked) {
    if (this.finished.has(answer.prompt_id)) return;
    const left = marked ? `; ${marked} node(s) left out with errors` : "";
    this.report(`queued #${answer.number}${left}`, !!marked);
  }

  setRunning(id) {
    for (const node of this.graph._nodes) {
      if (node.run) { node.run.running = false; node.run.progress = null; }
    }
    const node = nodeById(this.graph, id);
    if (node?.run) node.run.running = true;
    this.running = node;
    this.graph.setDirtyCanvas(true, false);
  }

  /** Forget the errors of the last run before a new one is queued. */
  clearErrors() {
    for (const node of this.graph._nodes) node.setError?.(null);
  }

  /** Mark the nodes named by a /prompt 400 answer; returns how many were marked. */
  showNodeErrors(nodeErrors) {
    let marked = 0;
    for (const [id, entry] of Object.entries(nodeErrors ?? {})) {
      const node = nodeById(this.graph, id);
      if (!node?.setError) continue;
      node.setError(entry.errors.map(firstLine).join("\n"));
      marked += 1;
    }
    return marked;
  }

  /** Handle one WebSocket message. */
  onMessage(type, data) {
    if (type === "status") {
      const remaining = data?.status?.exec_info?.queue_remaining;
      if (remaining > 0) this.report(`queue: ${remaining}`);
    } else if (type === "execution_start") {
      this.failed = false;
    } else if (type === "executing") {
      this.setRunning(data.node);
      if (data.node == null) this.finished.add(data.prompt_id);
      if (data.node == null && !this.failed) this.report("done");
    } else if (type === "progress") {
      const node = nodeById(this.graph, data.node) ?? this.running;
      if (node?.run) { node.run.progress = { value: data.value, max: data.max }; node.setDirtyCanvas(true, false); }
    } else if (type === "executed") {
      this.showOutput(data.node, data.output);
    } else if (type === "execution_error") {
      this.failed = true;
      this.finished.add(data.prompt_id);
      this.setRunning(null);
      const node = nodeById(this.graph, data.node_id);
      const message = `${data.exception_type}: ${data.exception_message}`;
      node?.setError?.(message);
      this.report(`node ${data.node_id} (${data.node_type}) failed: ${message}`, true);
    } else if (type === "execution_interrupted") {
      this.finished.add(data.prompt_id);
      this.setRunning(null);
      this.report("interrupted");
    }
  }
}
