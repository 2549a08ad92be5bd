// Browser side of bench/editor.py: builds a large workflow from real node types, then times opening it and panning.
// Installed into the editor page as window.reelgraphBench; every figure is in milliseconds from performance.now().

(() => {
  const CHAIN_TYPES = ["ImageInvert", "ImageScaleBy", "ImageInvert", "ImageBlend"];
  const COLUMN_WIDTH = 360;
  const ROW_HEIGHT = 220;

  const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));

  /** A UI-format workflow of `count` nodes: rows of EmptyImage -> image ops -> SaveImage, every link typed. */
  function buildWorkflow(count, rowLength) {
    const { graph, LiteGraph } = window.reelgraph;
    graph.clear();
    let previous = null;
    for (let index = 0; index < count; index += 1) {
      const column = index % rowLength;
      const last = column === rowLength - 1 || index === count - 1;
      const type = column === 0 ? "EmptyImage" : last ? "SaveImage" : CHAIN_TYPES[column % CHAIN_TYPES.length];
      const node = LiteGraph.createNode(type);
      node.pos = [column * COLUMN_WIDTH, Math.floor(index / rowLength) * ROW_HEIGHT];
      graph.add(node);
      if (column > 0 && previous) {
        previous.connect(0, node, 0);
        if (type === "ImageBlend") previous.connect(0, node, 1);
      }
      previous = node;
    }
    const workflow = graph.serialize();
    graph.clear();
    return JSON.stringify(workflow);
  }

  /** Parse, configure and draw `text` as a user's open does; answers [ms to the drawn graph, ms to the next frame]. */
  async function open(text) {
    const { loadWorkflow, canvas } = window.reelgraph;
    await nextFrame();
    const start = performance.now();
    loadWorkflow(JSON.parse(text));
    canvas.draw(true, true);
    const drawn = performance.now();
    await nextFrame();
    return { drawn_ms: drawn - start, next_frame_ms: performance.now() - start, nodes: canvas.graph._nodes.length };
  }

  /**
   * Pan by `step` screen pixels a frame for `frames` frames at zoom `scale` (null: fit the whole graph), turning back
   * every `turn` frames so the graph stays in view; answers each frame's draw time and the nodes it drew.
   */
  async function pan(frames, scale, step, turn) {
    const { canvas, fitView } = window.reelgraph;
    fitView();
    if (scale !== null) {
      canvas.ds.scale = scale;
      canvas.ds.offset = [0, 0];
    }
    const draw = canvas.draw.bind(canvas);
    const drawMs = [];
    const drawnNodes = [];
    canvas.draw = (...args) => {
      const start = performance.now();
      const result = draw(...args);
      drawMs.push(performance.now() - start);
      drawnNodes.push(canvas.visible_nodes?.length ?? 0);
      return result;
    };
    const frameMs = [];
    try {
      await nextFrame();
      let last = performance.now();
      for (let frame = 0; frame < frames; frame += 1) {
        const direction = Math.floor(frame / turn) % 2 === 0 ? 1 : -1;
        canvas.ds.offset[0] -= (direction * step) / canvas.ds.scale;
        canvas.ds.offset[1] -= (direction * step) / 3 / canvas.ds.scale;
        canvas.setDirty(true, true);
        await nextFrame();
        const now = performance.now();
        frameMs.push(now - last);
        last = now;
      }
    } finally {
      canvas.draw = draw;
    }
    return { draw_ms: drawMs, drawn_nodes: drawnNodes, frame_ms: frameMs, scale: canvas.ds.scale };
  }

  /** What each user action costs the undo history on this graph: a snapshot compared with the last one (ms). */
  function checkpoint(repeats) {
    const { history, graph } = window.reelgraph;
    const times = [];
    for (let index = 0; index < repeats; index += 1) {
      graph._nodes[index % graph._nodes.length].pos[0] += 1; // an edit, so each checkpoint records a step
      const start = performance.now();
      history.checkpoint();
      times.push(performance.now() - start);
    }
    return times;
  }

  window.reelgraphBench = { buildWorkflow, open, pan, checkpoint };
})();
