// Subgraph instances: nodes whose type is the UUID of a definition in the workflow's definitions.subgraphs.
//
// Each definition of a loaded workflow gets a node type of its own: titled by the definition's name, with the
// instance's inputs and outputs, its promoted widgets (properties.proxyWidgets, or the instance inputs that carry a
// widget) editable, and a "subgraph" badge. The inner graph is not shown or editable in this increment: the
// definitions are written back unchanged (keep_fields.js). A graph holding instances is queued in the UI format and
// the server flattens them to "<instance>:<inner>" ids (prompt.js); the run state of those ids is drawn on the
// instance. The types are not offered by the node search (they exist only with their workflow's definitions).

import { drawRunMarks, setRunError } from "./nodes.js";
import { createWidget, isWidgetInput } from "./widgets.js";

const SUBGRAPH_COLOUR = "#2b5d6b";
const SUBGRAPH_BGCOLOUR = "#1f3b44";
const PROMOTED_INPUT = "-1"; // a proxyWidgets entry for the instance's own input widget
const PROXY_WIDGETS = "proxyWidgets";

const clone = (value) => (value === undefined ? undefined : structuredClone(value));

/** Every subgraph definition of `workflow`, nested definitions included. */
export function subgraphDefinitions(workflow) {
  const found = [];
  const visit = (holder) => {
    for (const definition of holder?.definitions?.subgraphs ?? []) {
      if (typeof definition?.id !== "string" || !definition.id) continue;
      found.push(definition);
      visit(definition);
    }
  };
  visit(workflow);
  return found;
}

/** A definition's link table entry by id, as {target_id, target_slot}, from object or array links. */
function innerLink(definition, id) {
  for (const link of definition.links ?? []) {
    if (Array.isArray(link) && String(link[0]) === String(id)) return { target_id: link[3], target_slot: link[4] };
    if (link && !Array.isArray(link) && String(link.id) === String(id)) return link;
  }
  return null;
}

/** The widgets an instance promotes: [{position in widgets_values, nodeId (inner node, or "-1"), name}]. */
function promotedEntries(info) {
  const proxies = info.properties?.[PROXY_WIDGETS];
  if (Array.isArray(proxies)) {
    return proxies.flatMap((entry, position) => (Array.isArray(entry) && typeof entry[1] === "string"
      ? [{ position, nodeId: String(entry[0]), name: entry[1] }] : []));
  }
  const widgetInputs = (info.inputs ?? []).filter((input) => input?.widget);
  return widgetInputs.map((input, position) => ({
    position, nodeId: PROMOTED_INPUT, name: input.widget.name ?? input.name,
  }));
}

/** The input spec [type, options] of a promoted widget, from the inner node it belongs to; null when unknown. */
function promotedSpec(definition, objectInfo, nodeId, name) {
  let target = nodeId;
  let widgetName = name;
  if (nodeId === PROMOTED_INPUT) { // the instance's own input: the widget input its first inner link feeds
    const input = (definition.inputs ?? []).find((slot) => slot.name === name);
    const link = innerLink(definition, input?.linkIds?.[0]);
    target = link?.target_id;
    const inner = (definition.nodes ?? []).find((node) => String(node.id) === String(target));
    widgetName = inner?.inputs?.[link?.target_slot]?.widget?.name;
  }
  const node = (definition.nodes ?? []).find((each) => String(each.id) === String(target));
  const inputs = objectInfo[node?.type]?.input ?? {};
  const spec = inputs.required?.[widgetName] ?? inputs.optional?.[widgetName];
  return spec && isWidgetInput(spec[0], spec[1] ?? {}) ? spec : null;
}

/** A widget for a value whose spec is unknown (an inner subgraph's widget): by the value's type; null for others. */
function plainWidget(node, name, value, onChange) {
  if (typeof value === "number") return node.addWidget("number", name, value, onChange, { precision: 3 });
  if (typeof value === "boolean") return node.addWidget("toggle", name, value, onChange, {});
  if (typeof value === "string") return node.addWidget("text", name, value, onChange, {});
  return null;
}

/** Register the node type of one subgraph definition; answers the class. */
function registerDefinition(editor, definition) {
  const { lib, objectInfo, changed } = editor;
  const { LGraphNode, LGraphBadge, LiteGraph } = lib;
  const innerCount = (definition.nodes ?? []).length;

  class SubgraphInstance extends LGraphNode {
    static title = definition.name || "Subgraph";
    static color = SUBGRAPH_COLOUR;
    static bgcolor = SUBGRAPH_BGCOLOUR;
    static skip_list = true;
    static subgraph = definition;

    constructor(title) {
      super(title ?? SubgraphInstance.title);
      this.run = { running: false, progress: null, error: null };
      this.savedValues = null; // the loaded widgets_values: promoted widgets write their positions back
      this.badges.push(new LGraphBadge({ text: `subgraph · ${innerCount} nodes`, bgColor: SUBGRAPH_COLOUR }));
      for (const slot of definition.inputs ?? []) this.addInput(slot.name, slot.type ?? "*");
      for (const slot of definition.outputs ?? []) this.addOutput(slot.name, slot.type ?? "*");
      this.size = this.computeSize();
    }

    /** The saved slots replace the definition's (configure would merge them index by index). */
    configure(info) {
      if (Array.isArray(info.inputs)) this.inputs = [];
      if (Array.isArray(info.outputs)) this.outputs = [];
      super.configure(info);
    }

    onConfigure(info) {
      this.savedValues = Array.isArray(info.widgets_values) ? clone(info.widgets_values) : null;
      this.widgets = [];
      for (const { position, nodeId, name } of promotedEntries(info)) {
        if (!this.savedValues || position >= this.savedValues.length) continue;
        const value = this.savedValues[position];
        const spec = promotedSpec(definition, objectInfo, nodeId, name);
        const widget = spec
          ? createWidget(this, name, spec[0], spec[1] ?? {}, changed)
          : plainWidget(this, name, value, changed);
        if (!widget) continue; // an object value: kept as it came
        widget.value = value;
        widget.promotedPosition = position;
      }
    }

    onSerialize(data) {
      if (!this.savedValues) return;
      const values = clone(this.savedValues);
      for (const widget of this.widgets ?? []) {
        if (widget.promotedPosition !== undefined) values[widget.promotedPosition] = widget.value;
      }
      data.widgets_values = values;
    }

    /** Mark (or with null, clear) an error of a node inside this instance. */
    setError(message) {
      setRunError(this, message);
    }

    onDrawForeground(ctx) {
      drawRunMarks(this, ctx, LiteGraph.NODE_TITLE_HEIGHT);
    }
  }
  LiteGraph.registerNodeType(definition.id, SubgraphInstance);
  SubgraphInstance.category = "";
  return SubgraphInstance;
}

/** Whether `graph` holds a subgraph instance (a graph the editor cannot turn into an API prompt itself). */
export function hasSubgraphInstances(graph) {
  return graph._nodes.some((node) => node.constructor.subgraph);
}

/** A node type per subgraph definition of each workflow loaded; the types of earlier workflows are dropped. */
export function install(editor) {
  const { LiteGraph } = editor;
  const registered = new Set();
  editor.on("loading", (workflow) => {
    for (const id of registered) {
      if (LiteGraph.registered_node_types[id]?.subgraph) LiteGraph.unregisterNodeType(id);
    }
    registered.clear();
    for (const definition of subgraphDefinitions(workflow)) {
      registerDefinition(editor, definition);
      registered.add(definition.id);
    }
  });
}
