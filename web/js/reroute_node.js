// ComfyUI's editor-only "Reroute" node: one input and one output that pass a link through, typed as what it carries.

const ANY = "*";
const SIZE = [75, 26];

/** Register the Reroute node type with `lib` (LiteGraph's module). */
export function registerRerouteNode(lib) {
  const { LiteGraph, LGraphNode, TitleMode } = lib;

  /** The reroutes linked to `start` through reroute-to-reroute links, `start` included. */
  function chainOf(start) {
    const graph = start.graph;
    const chain = new Set([start]);
    const pending = [start];
    while (pending.length) {
      const node = pending.pop();
      const upstream = graph.getLink(node.inputs[0].link);
      const linked = (node.outputs[0].links ?? []).map((id) => graph.getLink(id)?.target_id);
      for (const id of [upstream?.origin_id, ...linked]) {
        const other = id == null ? null : graph.getNodeById(id);
        if (other instanceof RerouteNode && !chain.has(other)) {
          chain.add(other);
          pending.push(other);
        }
      }
    }
    return chain;
  }

  /** The type a chain carries: its source's output type, else the type of the first input it feeds, else "*". */
  function chainType(chain) {
    const graph = [...chain][0].graph;
    for (const node of chain) {
      const link = graph.getLink(node.inputs[0].link);
      const source = link ? graph.getNodeById(link.origin_id) : null;
      if (source && !(source instanceof RerouteNode)) return source.outputs?.[link.origin_slot]?.type ?? ANY;
    }
    for (const node of chain) {
      for (const id of node.outputs[0].links ?? []) {
        const link = graph.getLink(id);
        const target = link ? graph.getNodeById(link.target_id) : null;
        const type = target instanceof RerouteNode ? null : target?.inputs?.[link.target_slot]?.type;
        if (type && type !== ANY) return type;
      }
    }
    return ANY;
  }

  class RerouteNode extends LGraphNode {
    static title = "Reroute";
    static title_mode = TitleMode.NO_TITLE;
    static collapsable = false;

    constructor(title) {
      super(title ?? RerouteNode.title);
      this.isVirtualNode = true;
      this.properties = { showOutputText: false, horizontal: false };
      this.addInput("", ANY);
      this.addOutput("", ANY);
      this.size = [...SIZE];
    }

    computeSize() {
      return [...SIZE];
    }

    /** The input a link out of this node continues from (prompt.js follows it). */
    passThroughInput() {
      return 0;
    }

    /** Refuse an input whose type differs from the one its outputs already carry. */
    onConnectInput(_index, type) {
      const carried = this.outputs[0].type;
      if (!this.outputs[0].links?.length || carried === ANY) return true;
      return LiteGraph.isValidConnection(type, carried);
    }

    onConnectionsChange() {
      if (this.graph) this.retypeChain();
    }

    /** Type the output of every reroute of this chain as what the chain carries. */
    retypeChain() {
      const chain = chainOf(this);
      const type = chainType(chain);
      for (const node of chain) node.outputs[0].type = type;
      this.setDirtyCanvas(true, true);
    }
  }

  LiteGraph.registerNodeType("Reroute", RerouteNode);
  RerouteNode.category = "utils";
}
