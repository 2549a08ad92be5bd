// Undo and redo: the graph is snapshotted after each user action; a changed snapshot is one step of the history.

const MAX_STEPS = 200;

/** The history of one graph: serialized states (the view left out) and where we stand in them. */
class History {
  constructor(editor) {
    this.editor = editor;
    this.states = [];
    this.index = -1;
    this.pending = null;
    this.reset();
  }

  /** The graph as text, without the pan and zoom (not an edit). */
  snapshot() {
    const data = this.editor.graph.serialize();
    if (data.extra) delete data.extra.ds;
    return JSON.stringify(data);
  }

  /** Forget every step: the graph as it is now is the only state. */
  reset() {
    this.states = [this.snapshot()];
    this.index = 0;
  }

  /** Record the graph as a new step if it changed since the last one; true when it did. */
  checkpoint() {
    clearTimeout(this.pending);
    this.pending = null;
    const state = this.snapshot();
    if (state === this.states[this.index]) return false;
    this.states.splice(this.index + 1, Infinity, state);
    if (this.states.length > MAX_STEPS) this.states.shift();
    this.index = this.states.length - 1;
    return true;
  }

  /**
   * Record soon, once the handlers of the current event are done (many events of one action make one step). A
   * timer that fires once a drag has begun (a busy page runs it late) records nothing: the drag's pointerup will.
   */
  checkpointSoon() {
    if (this.pending !== null) return;
    this.pending = setTimeout(() => {
      if (this.editor.canvas.pointer.eDown) this.pending = null;
      else this.checkpoint();
    }, 0);
  }

  /** Take the graph as it is now into the current step, without a new step (a change that is no user edit). */
  absorb() {
    if (this.editor.canvas.pointer.eDown) return; // mid-drag: the change joins the drag's step instead
    if (this.pending !== null) this.checkpoint();
    this.states[this.index] = this.snapshot();
  }

  get canUndo() { return this.index > 0; }

  get canRedo() { return this.index < this.states.length - 1; }

  /** Step back one user action; false when there is none. */
  undo() {
    this.checkpoint();
    if (!this.canUndo) return false;
    this.index -= 1;
    this.restore();
    return true;
  }

  /** Step forward one undone action; false when there is none. */
  redo() {
    this.checkpoint();
    if (!this.canRedo) return false;
    this.index += 1;
    this.restore();
    return true;
  }

  restore() {
    const { graph, canvas } = this.editor;
    const runs = new Map(graph._nodes.map((node) => [node.id, node.run]));
    canvas.deselectAll();
    graph.configure(JSON.parse(this.states[this.index]));
    for (const node of graph._nodes) {
      const run = runs.get(node.id);
      if (run && node.run) node.run = run;
    }
    this.states[this.index] = this.snapshot();
    canvas.setDirty(true, true);
    this.editor.changed();
  }
}

/** Install the history as `editor.history` (and `editor.checkpoint`, for actions made by code, not by events). */
export function install(editor) {
  const history = new History(editor);
  for (const event of ["pointerup", "click", "keyup", "change"]) {
    document.addEventListener(event, () => history.checkpointSoon());
  }
  editor.on("loaded", () => history.reset());
  editor.on("queued", () => history.checkpoint()); // seeds changed after the queue: one step
  editor.on("message", (type) => { if (type === "executed") history.absorb(); }); // an output resizes its node
  editor.history = history;
  editor.checkpoint = () => history.checkpoint();
}
