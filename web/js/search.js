// The node search box: double-click the canvas, or drop a new link on empty canvas, and pick a node type to add.

const MAX_RESULTS = 60;

/** The search box of one editor; `open` shows it, a pick adds the node (and links it to a dragged socket). */
class NodeSearch {
  constructor(editor) {
    this.editor = editor;
    this.slotCache = new Map(); // node type -> {inputs, outputs}: the socket types of a fresh node of that type
    this.request = null; // {pos, link} of the open box
    this.results = [];
    this.active = 0;
    this.box = document.createElement("div");
    this.box.className = "rg-search";
    this.box.hidden = true;
    this.title = document.createElement("div");
    this.title.className = "rg-search-title";
    this.input = document.createElement("input");
    this.input.type = "search";
    this.input.placeholder = "Search nodes by name, type or category";
    this.input.setAttribute("aria-label", "Search nodes");
    this.list = document.createElement("ul");
    this.list.setAttribute("role", "listbox");
    this.box.append(this.title, this.input, this.list);
    document.body.append(this.box);
    this.input.addEventListener("input", () => this.refresh());
    this.input.addEventListener("keydown", (event) => this.onKey(event));
    this.list.addEventListener("pointerdown", (event) => event.preventDefault()); // keep the focus in the input
    this.list.addEventListener("click", (event) => {
      const item = event.target.closest("li[data-type]");
      if (item) this.pick(item.dataset.type);
    });
    this.list.addEventListener("mousemove", (event) => {
      const item = event.target.closest("li[data-type]");
      if (item) this.setActive(Number(item.dataset.index));
    });
    document.addEventListener("pointerdown", (event) => {
      if (!this.box.hidden && !this.box.contains(event.target)) this.close();
    }, true);
  }

  /**
   * Show the box at client point (x, y); a pick adds the node at graph point `pos`. With `link` ({node, index, type,
   * toType, afterRerouteId}: a socket being dragged), only node types with a compatible socket are offered.
   */
  open({ x, y, pos, link = null }) {
    this.request = { pos: [pos[0], pos[1]], link };
    this.title.textContent = link ? this.linkTitle(link) : "Add a node";
    this.input.value = "";
    this.box.hidden = false;
    this.refresh();
    this.box.style.left = `${Math.max(0, Math.min(x, innerWidth - this.box.offsetWidth))}px`;
    this.box.style.top = `${Math.max(0, Math.min(y, innerHeight - this.box.offsetHeight))}px`;
    this.input.focus();
  }

  close() {
    if (this.box.hidden) return;
    this.box.hidden = true;
    this.request = null;
    this.list.replaceChildren();
    this.editor.canvas.canvas.focus();
  }

  linkTitle(link) {
    const side = link.toType === "input" ? "taking" : "giving";
    return `Add a node ${side} ${link.type || "*"}`;
  }

  /** The socket types of a node type, read from one fresh (never added) node of it. */
  slotTypes(type) {
    if (!this.slotCache.has(type)) {
      const node = this.editor.LiteGraph.createNode(type);
      this.slotCache.set(type, {
        inputs: (node?.inputs ?? []).map((input) => input.type),
        outputs: (node?.outputs ?? []).map((output) => output.type),
      });
    }
    return this.slotCache.get(type);
  }

  /** Whether node type `type` has a socket that the dragged `link` may connect to. */
  fits(type, link) {
    const { LiteGraph } = this.editor;
    const slots = this.slotTypes(type);
    if (link.toType === "input") return slots.inputs.some((input) => LiteGraph.isValidConnection(link.type, input));
    return slots.outputs.some((output) => LiteGraph.isValidConnection(output, link.type));
  }

  /** The node types matching the query (every word in the title, type name or category), best first. */
  matches(query, link) {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    const wanted = query.trim().toLowerCase();
    const found = [];
    for (const [type, ctor] of Object.entries(this.editor.LiteGraph.registered_node_types)) {
      if (ctor.skip_list) continue; // placeholders of missing types
      const title = String(ctor.title ?? type);
      const category = String(ctor.category ?? "");
      const text = `${title} ${type} ${category}`.toLowerCase();
      if (!words.every((word) => text.includes(word))) continue;
      if (link && !this.fits(type, link)) continue;
      const lower = title.toLowerCase();
      const rank = !wanted ? 0 : lower.startsWith(wanted) ? 0 : lower.includes(wanted) ? 1 : 2;
      found.push({ type, title, category, rank });
    }
    found.sort((a, b) => a.rank - b.rank || a.title.localeCompare(b.title));
    return found.slice(0, MAX_RESULTS);
  }

  refresh() {
    this.results = this.matches(this.input.value, this.request?.link);
    this.list.replaceChildren(...this.results.map((result, index) => {
      const item = document.createElement("li");
      item.dataset.type = result.type;
      item.dataset.index = String(index);
      item.setAttribute("role", "option");
      const name = document.createElement("span");
      name.textContent = result.title;
      const detail = document.createElement("small");
      detail.textContent = [result.category, result.type].filter(Boolean).join(" · ");
      item.append(name, detail);
      return item;
    }));
    if (!this.results.length) {
      const empty = document.createElement("li");
      empty.className = "rg-search-empty";
      empty.textContent = "no matching node";
      this.list.append(empty);
    }
    this.setActive(0);
  }

  setActive(index) {
    this.active = Math.max(0, Math.min(index, this.results.length - 1));
    for (const item of this.list.children) {
      const on = Number(item.dataset.index) === this.active && item.dataset.type !== undefined;
      item.classList.toggle("active", on);
      item.setAttribute("aria-selected", String(on));
      if (on) item.scrollIntoView({ block: "nearest" });
    }
  }

  onKey(event) {
    if (event.key === "ArrowDown") this.setActive(this.active + 1);
    else if (event.key === "ArrowUp") this.setActive(this.active - 1);
    else if (event.key === "Enter") this.pick(this.results[this.active]?.type);
    else if (event.key === "Escape") this.close();
    else return;
    event.preventDefault();
    event.stopPropagation();
  }

  /** Add a node of `type` where the box was opened, linked to the dragged socket if there was one. */
  pick(type) {
    const { request } = this;
    if (!type || !request) return;
    this.close();
    const { LiteGraph, graph, canvas } = this.editor;
    const node = LiteGraph.createNode(type);
    if (!node) return;
    const { pos, link } = request;
    node.pos = link?.toType === "output" ? [pos[0] - node.size[0], pos[1]] : pos;
    graph.add(node);
    if (link) this.connect(node, link);
    canvas.selectItems([node]);
    canvas.setDirty(true, true);
    this.editor.changed();
    this.editor.checkpoint?.();
  }

  connect(node, link) {
    const { LiteGraph } = this.editor;
    let made = null;
    if (link.toType === "input") {
      const index = (node.inputs ?? []).findIndex((input) => LiteGraph.isValidConnection(link.type, input.type));
      made = index < 0 ? null : link.node.connect(link.index, node, index, link.afterRerouteId);
    } else {
      const index = (node.outputs ?? []).findIndex((output) => LiteGraph.isValidConnection(output.type, link.type));
      made = index < 0 ? null : node.connect(index, link.node, link.index, link.afterRerouteId);
    }
    if (!made) this.editor.report(`${node.title} could not be linked to ${link.node.title}`, true);
  }
}

/** The dragged socket of litegraph's own search options ({node_from | node_to, slot_from}), or null. */
function linkFromOptions(options) {
  const node = options?.node_from ?? options?.node_to;
  if (!node) return null;
  const toType = options.node_from ? "input" : "output";
  const slots = toType === "input" ? node.outputs : node.inputs;
  const slot = options.slot_from;
  const index = typeof slot === "number" ? slot : slots.indexOf(slot);
  if (!slots[index]) return null;
  return { node, index, type: slots[index].type, toType };
}

/** Install the search box: on double-click (litegraph's showSearchBox hook) and on a link dropped on empty canvas. */
export function install(editor) {
  editor.addStylesheet("css/search.css");
  const search = new NodeSearch(editor);
  const { canvas, lib } = editor;
  canvas.showSearchBox = (event, options) => {
    search.open({ x: event.clientX, y: event.clientY, pos: [event.canvasX, event.canvasY],
      link: linkFromOptions(options) });
  };
  // litegraph's own double-click needs both presses within 300 ms; the browser's dblclick covers a slow one too
  canvas.canvas.addEventListener("dblclick", (event) => {
    const [x, y] = canvas.convertEventToCanvasOffset(event);
    const { graph } = editor;
    const empty = !graph.getNodeOnPos(x, y) && !graph.getGroupOnPos(x, y) && !graph.getRerouteOnPos(x, y);
    if (search.box.hidden && empty) search.open({ x: event.clientX, y: event.clientY, pos: [x, y] });
  });
  const connector = canvas.linkConnector;
  connector.events.addEventListener("dropped-on-canvas", ({ detail: event }) => {
    const first = connector.renderLinks[0];
    if (connector.state.draggingExistingLinks || !(first?.node instanceof lib.LGraphNode)) return;
    const link = {
      node: first.node,
      index: first.fromSlotIndex,
      type: first.fromSlot.type,
      toType: connector.state.connectingTo,
      afterRerouteId: first.fromReroute?.id,
    };
    search.open({ x: event.clientX, y: event.clientY, pos: [event.canvasX, event.canvasY], link });
  });
}
