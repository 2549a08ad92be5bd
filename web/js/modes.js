// Bypassed and muted nodes drawn apart from the others: bypass tinted purple, mute faded into the background.

const MUTED = 2;
const BYPASSED = 4;
const TINTS = { [MUTED]: "rgba(27, 29, 33, 0.6)", [BYPASSED]: "rgba(170, 60, 230, 0.35)" };
const LABELS = { [MUTED]: "muted", [BYPASSED]: "bypassed" };

/** Cover a node (title included) with its mode's tint and name it in the corner; ctx is at the node's position. */
function drawMode(node, ctx, LiteGraph) {
  const tint = TINTS[node.mode];
  if (!tint) return;
  const [x, y, width, height] = node.boundingRect;
  ctx.save();
  ctx.fillStyle = tint;
  ctx.beginPath();
  ctx.roundRect(x - node.pos[0], y - node.pos[1], width, height, LiteGraph.ROUND_RADIUS);
  ctx.fill();
  ctx.font = "11px sans-serif";
  ctx.textAlign = "right";
  ctx.fillStyle = node.mode === BYPASSED ? "#e2b6ff" : "#999";
  ctx.fillText(LABELS[node.mode], x - node.pos[0] + width - 6, y - node.pos[1] - 4);
  ctx.restore();
}

/** Install the mode drawing around litegraph's own drawNode. */
export function install(editor) {
  const { canvas, LiteGraph } = editor;
  const drawNode = canvas.drawNode;
  canvas.drawNode = function (node, ctx) {
    drawNode.call(this, node, ctx);
    drawMode(node, ctx, LiteGraph);
  };
}
