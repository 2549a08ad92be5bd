// The editor graph as an API-format prompt: widget values by input name, links as [source_id, output_index].
// Editor-only nodes are resolved here: a link through reroutes reaches the real source, a primitive's value is
// written as the literal of each input it drives. A graph with subgraph instances is sent in the UI format instead:
// the server flattens them (graph/ui_format.py), which the editor cannot do without building the inner graphs.

import { hasSubgraphInstances } from "./subgraphs.js";

const MUTED = 2;
const BYPASSED = 4;

/**
 * What feeds `node`'s input `index`: {link: [node_id, slot]}, {value} (from a primitive), or null when nothing
 * does. Looks through reroutes (a virtual node's `passThroughInput`) and bypassed nodes.
 */
function linkSource(graph, node, index, seen = new Set()) {
  const linkId = node.inputs?.[index]?.link;
  const link = linkId == null ? null : graph.getLink(linkId);
  if (!link) return null;
  const source = graph.getNodeById(link.origin_id);
  if (!source || source.mode === MUTED || seen.has(source.id)) return null;
  seen.add(source.id);
  if (source.isVirtualNode) {
    const value = source.outputValue?.(link.origin_slot);
    if (value !== undefined) return { value };
    const through = source.passThroughInput?.(link.origin_slot);
    return through == null ? null : linkSource(graph, source, through, seen);
  }
  if (source.mode !== BYPASSED) return { link: [String(source.id), link.origin_slot] };
  const wanted = source.outputs?.[link.origin_slot]?.type;
  const through = (source.inputs ?? []).findIndex((input) => input.type === wanted && input.link != null);
  return through < 0 ? null : linkSource(graph, source, through, seen);
}

/**
 * Convert `graph` to {output: API prompt, workflow: the UI graph}; muted, bypassed and editor-only nodes left out.
 * With subgraph instances, `output` is the UI workflow itself (the server converts it).
 */
export function graphToPrompt(graph) {
  const workflow = graph.serialize();
  if (hasSubgraphInstances(graph)) return { output: workflow, workflow };
  const output = {};
  for (const node of graph._nodes) {
    if (node.mode === MUTED || node.mode === BYPASSED || node.isVirtualNode) continue;
    const inputs = {};
    for (const widget of node.widgets ?? []) {
      if (widget.inputName) inputs[widget.inputName] = widget.value;
    }
    (node.inputs ?? []).forEach((input, index) => {
      const source = linkSource(graph, node, index);
      if (source) inputs[input.name] = source.link ?? source.value;
    });
    output[String(node.id)] = { class_type: node.type, inputs, _meta: { title: node.title } };
  }
  return { output, workflow };
}
