// Level of detail: zoomed out so far that no text is readable, nodes are drawn as plain coloured boxes (no slots,
// widgets or titles), which keeps panning a thousand-node graph smooth; run state and selection stay visible.

const MINIMAL_ZOOM = 0.25;
const RUNNING_COLOUR = "#4caf50";
const ERROR_COLOUR = "#ff5555";
const SELECTED_COLOUR = "#ffffff";

/** Draw `node` as a box: body, title band, and an outline when it runs, failed or is selected. */
function drawMinimalNode(node, ctx, titleHeight, scale) {
  const [width, height] = node.renderingSize;
  const top = node.collapsed ? 0 : height;
  ctx.fillStyle = node.renderingBgColor;
  ctx.fillRect(0, -titleHeight, width, top + titleHeight);
  ctx.fillStyle = node.renderingColor;
  ctx.fillRect(0, -titleHeight, width, titleHeight);
  const outline = node.run?.running ? RUNNING_COLOUR : node.has_errors ? ERROR_COLOUR : node.selected ? SELECTED_COLOUR
    : null;
  if (!outline) return;
  ctx.strokeStyle = outline;
  ctx.lineWidth = 2 / scale;
  ctx.strokeRect(0, -titleHeight, width, top + titleHeight);
}

/** Draw nodes as boxes on `editor.canvas` while its zoom is below MINIMAL_ZOOM. */
export function install(editor) {
  const { canvas, LiteGraph } = editor;
  const drawFull = canvas.drawNode.bind(canvas);
  canvas.drawNode = (node, ctx) => {
    const scale = canvas.ds.scale;
    if (scale >= MINIMAL_ZOOM) return drawFull(node, ctx);
    node._setConcreteSlots(); // links leave from the slot positions, which arrange() keeps current
    if (!node.collapsed) node.arrange();
    drawMinimalNode(node, ctx, LiteGraph.NODE_TITLE_HEIGHT, scale);
  };
}
