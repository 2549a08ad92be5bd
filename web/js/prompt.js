// The editor graph as an API-format prompt: widget values by input name, links as [source_id, output_index].

const MUTED = 2;
const BYPASSED = 4;

/** The [node_id, slot] feeding `node`'s input `index`, looking through bypassed nodes; null when unlinked. */
function linkSource(graph, node, index, seen = new Set()) {
  const linkId = node.inputs?.[index]?.link;
  const link = linkId == null ? null : graph.getLink(linkId);
  if (!link) return null;
  const source = graph.getNodeById(link.origin_id);
  if (!source || source.mode === MUTED) return null;
  if (source.mode !== BYPASSED) return [String(source.id), link.origin_slot];
  if (seen.has(source.id)) return null;
  seen.add(source.id);
  const wanted = source.outputs?.[link.origin_slot]?.type;
  const through = (source.inputs ?? []).findIndex((input) => input.type === wanted && input.link != null);
  return through < 0 ? null : linkSource(graph, source, through, seen);
}

/** Convert `graph` to {output: API prompt, workflow: the UI graph}; muted, bypassed and editor-only nodes are left out. */
export function graphToPrompt(graph) {
  const workflow = graph.serialize();
  const output = {};
  for (const node of graph._nodes) {
    if (node.mode === MUTED || node.mode === BYPASSED || node.isVirtualNode) continue;
    const inputs = {};
    for (const widget of node.widgets ?? []) {
      if (widget.inputName) inputs[widget.inputName] = widget.value;
    }
    (node.inputs ?? []).forEach((input, index) => {
      const source = linkSource(graph, node, index);
      if (source) inputs[input.name] = source;
    });
    output[String(node.id)] = { class_type: node.type, inputs, _meta: { title: node.title } };
  }
  return { output, workflow };
}
