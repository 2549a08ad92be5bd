// Tooltips over widgets, sockets and node titles, from the descriptions in /object_info.

function tooltipAt(graph, [x, y]) {
  const node = graph.getNodeOnPos(x, y);
  if (!node) return null;
  if (y < node.pos[1]) return node.constructor.nodeInfo?.description || null;
  const widget = node.getWidgetOnPos?.(x, y, true);
  if (widget?.tooltip) return widget.tooltip;
  return node.getSlotOnPos?.([x, y])?.tooltip ?? null;
}

/** Show `element` next to the pointer while it is over something with a tooltip on `canvas`. */
export function installTooltips(canvas, element) {
  canvas.canvas.addEventListener("pointermove", (event) => {
    const text = canvas.graph ? tooltipAt(canvas.graph, canvas.graph_mouse) : null;
    element.hidden = !text;
    if (!text) return;
    element.textContent = text;
    element.style.left = `${event.clientX + 14}px`;
    element.style.top = `${event.clientY + 14}px`;
  });
  canvas.canvas.addEventListener("pointerleave", () => { element.hidden = true; });
}
