// Nodes whose type the server does not have: red placeholders that keep and save back all of the node's data.

const MISSING_COLOUR = "#a33";
const MISSING_BGCOLOUR = "#522";
const MISSING_TEXT_COLOUR = "#ffb0b0";
/** The node keys LGraphNode.serialize writes itself; every other key of the saved node is written back as it came. */
const SERIALIZED_KEYS = new Set([
  "id", "type", "pos", "size", "flags", "order", "mode", "showAdvanced", "inputs", "outputs", "title", "properties",
  "color", "bgcolor", "boxcolor", "shape",
]);

const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

/** Slots as serialized now, each over the props it was loaded with (so props LiteGraph drops are kept). */
function mergeSlots(current, kept) {
  if (!Array.isArray(current) || !Array.isArray(kept)) return current;
  return current.map((slot, index) => (kept[index]?.name === slot.name ? { ...clone(kept[index]), ...slot } : slot));
}

/** Register a placeholder class for the missing node type `type`; answers the class. */
function registerPlaceholder(lib, type) {
  const { LGraphNode, LiteGraph } = lib;
  class MissingNode extends LGraphNode {
    static title = type;
    static color = MISSING_COLOUR;
    static bgcolor = MISSING_BGCOLOUR;
    static skip_list = true;
    static missing = true;

    constructor(title) {
      super(title ?? type);
      this.missingType = type;
      this.loadedData = null;
      this.strokeStyles.missing = () => ({ color: MISSING_COLOUR, lineWidth: 3, padding: 6 });
    }

    /** The title bar is red whatever colour the node has (its own colour is still saved). */
    get renderingColor() {
      return MISSING_COLOUR;
    }

    getTitle() {
      const title = this.title || type;
      return title === type ? `${type} (not installed)` : `${title} (${type} not installed)`;
    }

    onConfigure(info) {
      this.loadedData = clone(info);
      delete this.widgets_values; // configure copied it onto the node; it lives in loadedData
    }

    onSerialize(data) {
      const kept = this.loadedData ?? {};
      for (const [key, value] of Object.entries(kept)) {
        if (!SERIALIZED_KEYS.has(key)) data[key] = clone(value);
      }
      data.inputs = mergeSlots(data.inputs, kept.inputs);
      data.outputs = mergeSlots(data.outputs, kept.outputs);
    }

    onDrawForeground(ctx) {
      if (this.flags.collapsed) return;
      ctx.font = "12px sans-serif";
      ctx.fillStyle = MISSING_TEXT_COLOUR;
      ctx.textAlign = "left";
      const slots = Math.max(this.inputs?.length ?? 0, this.outputs?.length ?? 0);
      const top = slots * LiteGraph.NODE_SLOT_HEIGHT + 18;
      ctx.fillText(`"${type}" is not installed.`, 10, top);
      ctx.fillText("Its settings are kept and saved.", 10, top + 16);
    }
  }
  LiteGraph.registerNodeType(type, MissingNode);
  MissingNode.category = "";
  return MissingNode;
}

/** The node types `workflow` uses (its nodes, and its subgraph definitions' nodes) that are not registered. */
function unknownTypes(LiteGraph, workflow) {
  const nodes = [...(workflow?.nodes ?? [])];
  for (const subgraph of workflow?.definitions?.subgraphs ?? []) nodes.push(...(subgraph.nodes ?? []));
  const subgraphIds = new Set((workflow?.definitions?.subgraphs ?? []).map((subgraph) => subgraph.id));
  const types = nodes.map((node) => String(node?.type ?? "")).filter((type) => type && !subgraphIds.has(type));
  return [...new Set(types)].filter((type) => !LiteGraph.registered_node_types[type]);
}

/** Register placeholders for the unknown node types of `workflow`; answers their names. */
export function registerMissing(lib, workflow) {
  const types = unknownTypes(lib.LiteGraph, workflow);
  for (const type of types) registerPlaceholder(lib, type);
  return types;
}

/** The graph's placeholder nodes. */
function missingNodes(graph) {
  return graph._nodes.filter((node) => node.constructor.missing);
}

/** "not installed: A, B (…)" for the graph's placeholder types, or null when it has none. */
export function missingSummary(graph) {
  const types = [...new Set(missingNodes(graph).map((node) => node.missingType))];
  return types.length ? `not installed: ${types.join(", ")} (red nodes; their data is kept)` : null;
}

const active = (node) => node.mode !== 2 && node.mode !== 4;

/** "#5:3 Type" for each active node of a subgraph instance's definition whose type is missing (nested ones too). */
function missingInside(LiteGraph, prefix, definition, seen = new Set()) {
  if (seen.has(definition.id)) return [];
  seen.add(definition.id);
  return (definition.nodes ?? []).filter(active).flatMap((inner) => {
    const type = LiteGraph.registered_node_types[String(inner.type)];
    const id = `${prefix}:${inner.id}`;
    if (type?.subgraph) return missingInside(LiteGraph, id, type.subgraph, new Set(seen));
    return !type || type.missing ? [`#${id} ${inner.type}`] : [];
  });
}

/** Why `graph` cannot be queued (its missing nodes, named, also those inside subgraph instances), or null. */
function missingReason(LiteGraph, graph) {
  const named = missingNodes(graph).filter(active).map((node) => {
    const title = node.title && node.title !== node.missingType ? ` "${node.title}"` : "";
    return `#${node.id} ${node.missingType}${title}`;
  });
  for (const node of graph._nodes) {
    if (!node.constructor.subgraph || !active(node)) continue;
    named.push(...missingInside(LiteGraph, node.id, node.constructor.subgraph));
  }
  return named.length ? `cannot queue: node type not installed: ${named.join(", ")}` : null;
}

/** Placeholders for unknown types on every load, and no queueing while the graph holds one. */
export function install(editor) {
  const { lib, graph } = editor;
  editor.on("loading", (workflow) => registerMissing(lib, workflow));
  editor.on("queueing", () => missingReason(lib.LiteGraph, graph));
}
