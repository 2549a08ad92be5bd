// Lossless round trips of ComfyUI workflows: whatever LiteGraph leaves out when it loads or saves a graph is kept
// from the loaded workflow and written back by every save (userdata, download, autosave, undo, queue).
//
// What LiteGraph 0.17 drops, and what is written back instead:
// - Top-level keys it does not know ("models", custom keys) are not configured onto the graph (they would become
//   fields of the LGraph object) and are written back as they came. "definitions" (subgraph definitions) are kept
//   verbatim: the editor does not build the inner graphs (subgraphs.js shows the instances), so they cannot change.
// - The saved form follows the loaded one: links loaded as objects (schema version 1, with their parentId, "state"
//   and top-level "reroutes") are saved as objects, links loaded as arrays [id, from, slot, to, slot, type] (version
//   0.4, read as 0.4 whatever the file's version says) as arrays; without links the version decides, and graphs begun
//   here are 0.4. The version number written is the file's. Keys of the other form that the file also had
//   (last_node_id in a schema 1 file, "state" in a 0.4 one) are written with the graph's current values.
// - Nodes: keys the node's class does not write (unknown keys, widgets_values of a node without widgets, a title
//   equal to its type's default title) come back from the loaded node of the same id and type; unknown slot keys
//   from the loaded slot of the same index and name. Colours and shapes are the editor's: taking one away sticks.
// - Links, reroutes, floating links and groups: unknown keys come back from the loaded entry of the same id.
// Node "order" is recomputed by LiteGraph, and "extra.ds" is the current view; neither is kept.

const GRAPH_KEYS = new Set([
  "id", "revision", "version", "config", "extra", "state", "nodes", "links", "groups", "reroutes", "floatingLinks",
  "last_node_id", "last_link_id",
]);
const LIST_KEYS = ["nodes", "links", "groups", "reroutes", "floatingLinks"];
const ENTRY_KEYS = ["links", "groups", "reroutes", "floatingLinks"];
/** Node keys the editor may take away (the colour menu's "no colour"); not written back once gone. */
const REMOVABLE_NODE_KEYS = new Set(["color", "bgcolor", "boxcolor", "shape"]);
const LEGACY_VERSION = 0.4;
const SCHEMA_VERSION = 1;

const clone = (value) => (value === undefined ? undefined : structuredClone(value));
const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

/** `entries` (a list) by their `id` (as text); entries without one are left out. */
function byId(entries) {
  const found = new Map();
  for (const entry of Array.isArray(entries) ? entries : []) {
    if (isObject(entry) && entry.id != null) found.set(String(entry.id), entry);
  }
  return found;
}

/** Add to object `target` the keys of `kept` it lacks (or holds as undefined), except those `skip` answers true for. */
function addMissing(target, kept, skip = () => false) {
  for (const key in kept) {
    if (target[key] === undefined && !skip(key)) target[key] = clone(kept[key]);
  }
}

/** Whether object `target` lacks a key of `kept`. */
function lacksAny(target, kept) {
  for (const key in kept) {
    if (target[key] === undefined) return true;
  }
  return false;
}

/** What was loaded, and how to write it back. */
class LoadedWorkflow {
  constructor(data) {
    const source = isObject(data) ? data : {};
    this.keys = new Set(Object.keys(source));
    this.version = source.version;
    this.linkForm = linkForm(source.links);
    this.foreign = Object.fromEntries(Object.entries(source).filter(([key]) => !GRAPH_KEYS.has(key)));
    this.nodes = byId(source.nodes);
    this.entries = Object.fromEntries(ENTRY_KEYS.map((key) => [key, byId(source[key])]));
  }

  /** Whether saves use schema 1 (object links, "state"): the links' form, or without links the version, says. */
  get schema1() {
    if (this.linkForm) return this.linkForm === "object";
    return this.version !== undefined && this.version !== LEGACY_VERSION;
  }

  /** Write back into `data` (a fresh serialization of `graph`) what it lacks. */
  restore(data, graph) {
    if (this.version !== undefined) data.version = this.version;
    if (this.keys.has("state") && !data.state) data.state = { ...graph.state };
    if (this.keys.has("last_node_id") && data.last_node_id === undefined) data.last_node_id = graph.state.lastNodeId;
    if (this.keys.has("last_link_id") && data.last_link_id === undefined) data.last_link_id = graph.state.lastLinkId;
    for (const key of LIST_KEYS) {
      if (this.keys.has(key) && data[key] === undefined) data[key] = [];
    }
    addMissing(data, this.foreign);
    for (const node of data.nodes) this.restoreNode(node, graph.getNodeById(node.id));
    for (const key of ENTRY_KEYS) {
      for (const entry of data[key] ?? []) {
        const kept = isObject(entry) ? this.entries[key].get(String(entry.id)) : null;
        if (kept) addMissing(entry, kept);
      }
    }
    return data;
  }

  restoreNode(data, node) {
    const kept = this.nodes.get(String(data.id));
    if (!kept || String(kept.type) !== String(data.type)) return;
    addMissing(data, kept, (key) => REMOVABLE_NODE_KEYS.has(key));
    if (kept.title !== undefined && node?.title) data.title = node.title; // LiteGraph leaves out a default title
    data.inputs = mergeSlots(data.inputs, kept.inputs);
    data.outputs = mergeSlots(data.outputs, kept.outputs);
  }
}

/** Slots as serialized now, each with the keys it was loaded with that LiteGraph does not write. */
function mergeSlots(current, kept) {
  if (!Array.isArray(current) || !Array.isArray(kept)) return current;
  return current.map((slot, index) => {
    const loaded = kept[index];
    if (!isObject(slot) || !isObject(loaded) || loaded.name !== slot.name || !lacksAny(slot, loaded)) return slot;
    const merged = { ...slot };
    addMissing(merged, loaded);
    return merged;
  });
}

/** "array" or "object" for a link table of that form, null for an empty or missing one. */
function linkForm(links) {
  const first = Array.isArray(links) ? links.find((link) => link !== null && typeof link === "object") : undefined;
  if (first === undefined) return null;
  return Array.isArray(first) ? "array" : "object";
}

/**
 * `data` with only the keys LiteGraph's configure reads (unknown keys would become fields of the graph object), and
 * the version that matches its links' form whatever the file says (LiteGraph reads arrays only under 0.4).
 */
function configurable(data) {
  if (!isObject(data)) return data;
  const kept = Object.fromEntries(Object.entries(data).filter(([key]) => GRAPH_KEYS.has(key)));
  const form = linkForm(data.links);
  if (form === "array") kept.version = LEGACY_VERSION;
  else if (form === "object" && kept.version === LEGACY_VERSION) kept.version = SCHEMA_VERSION;
  return kept;
}

/** Wrap `graph`'s configure and serialize so that every save writes back what the loaded workflow had. */
export function keepFields(graph) {
  const configure = graph.configure.bind(graph);
  const serialize = graph.serialize.bind(graph);
  let loaded = new LoadedWorkflow(null);

  graph.configure = (data, keepOld) => {
    if (!keepOld) loaded = new LoadedWorkflow(data);
    return configure(configurable(data), keepOld);
  };
  graph.serialize = (options) => {
    if (!loaded.schema1) return loaded.restore(serialize(options), graph);
    const data = graph.asSerialisable(options); // shares state, config and extra with the graph: copy them
    return loaded.restore({ ...data, state: { ...data.state }, extra: { ...data.extra } }, graph);
  };
}

/** Keep the unknown fields of every loaded workflow in the editor's saves. */
export function install(editor) {
  keepFields(editor.graph);
}
