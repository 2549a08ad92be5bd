// Node classes built from /object_info: typed sockets, widgets, and the run state drawn on each node.

import { registerPrimitiveNode } from "./primitive.js";
import { registerRerouteNode } from "./reroute_node.js";
import { addInputWidget, isWidgetInput, withWidgetSockets } from "./widgets.js";

const RUNNING_COLOUR = "#4caf50";
const PROGRESS_COLOUR = "#6fd26f";
const ERROR_TEXT_COLOUR = "#ff7777";
const IMAGE_MIN_HEIGHT = 220;

/** Mark (or with null, clear) an error on `node`, a node with a `run` state. */
export function setRunError(node, message) {
  node.run.error = message;
  node.has_errors = !!message;
  node.setDirtyCanvas(true, true);
}

/** Draw `node.run` on the node: the progress bar, the running outline and the error text below it. */
export function drawRunMarks(node, ctx, titleHeight) {
  const [width, height] = node.size;
  const bottom = node.flags.collapsed ? 0 : height;
  const { running, progress, error } = node.run;
  if (progress && !node.flags.collapsed) {
    ctx.fillStyle = PROGRESS_COLOUR;
    ctx.fillRect(0, 0, (width * progress.value) / Math.max(1, progress.max), 4);
  }
  if (running) {
    ctx.strokeStyle = RUNNING_COLOUR;
    ctx.lineWidth = 3;
    ctx.strokeRect(-4, -titleHeight - 4, width + 8, bottom + titleHeight + 8);
  }
  if (error) {
    ctx.font = "12px sans-serif";
    ctx.fillStyle = ERROR_TEXT_COLOUR;
    ctx.textAlign = "left";
    wrapText(ctx, error, Math.max(width, 240)).forEach((line, i) => ctx.fillText(line, 0, bottom + 18 + i * 15));
  }
}

/** The inputs of a node's info in input_order: [{name, type, options, optional}]. */
function orderedInputs(info) {
  const inputs = [];
  for (const group of ["required", "optional"]) {
    const specs = info.input?.[group] ?? {};
    const order = info.input_order?.[group] ?? Object.keys(specs);
    for (const name of order) {
      const [type, options = {}] = specs[name] ?? [];
      if (type !== undefined) inputs.push({ name, type, options, optional: group === "optional" });
    }
  }
  return inputs;
}

function wrapText(ctx, text, width) {
  const lines = [];
  for (const paragraph of String(text).split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      const next = line ? `${line} ${word}` : word;
      if (ctx.measureText(next).width > width && line) { lines.push(line); line = word; } else line = next;
    }
    lines.push(line);
  }
  return lines.slice(0, 6);
}

/** The drawable size of an image, video or canvas element: [0, 0] until it has a picture. */
function mediaSize(element) {
  if (element instanceof HTMLVideoElement) {
    return element.readyState >= 2 ? [element.videoWidth, element.videoHeight] : [0, 0];
  }
  if (element instanceof HTMLImageElement) {
    return element.complete ? [element.naturalWidth, element.naturalHeight] : [0, 0];
  }
  return [element.width, element.height];
}

/** Register one LiteGraph node type per entry of `objectInfo`; `onChange` is called when a widget changes. */
export function registerNodeTypes(lib, objectInfo, onChange) {
  const { LiteGraph, LGraphNode } = lib;
  for (const [type, info] of Object.entries(objectInfo)) {
    class ReelgraphNode extends LGraphNode {
      static title = info.display_name || type;
      static comfyClass = type;
      static nodeInfo = info;

      constructor(title) {
        super(title ?? info.display_name ?? type);
        this.serialize_widgets = true;
        this.run = { running: false, progress: null, images: [], error: null };
        for (const { name, type: inputType, options, optional } of orderedInputs(info)) {
          if (isWidgetInput(inputType, options)) addInputWidget(this, name, inputType, options, onChange);
          else this.addInput(name, inputType, { tooltip: options.tooltip, optional });
        }
        (info.output ?? []).forEach((outputType, index) => {
          const name = info.output_name?.[index] ?? outputType;
          const outputTypeName = Array.isArray(outputType) ? "COMBO" : outputType;
          this.addOutput(name, outputTypeName, { tooltip: info.output_tooltips?.[index] });
        });
        this.size = this.computeSize();
      }

      /** Configure from a saved node; saves without a socket per widget (older ComfyUI) get the missing ones. */
      configure(info) {
        super.configure(withWidgetSockets(this, info));
      }

      /**
       * Show an `executed` output below the widgets: one element per file entry (images, gifs), made by
       * `createMedia(entry)` (a video or animation player) or, without it, a still image from `viewUrl(entry)`.
       */
      showOutput(output, viewUrl, createMedia = null) {
        const entries = [...(output?.images ?? []), ...(output?.gifs ?? [])];
        this.run.images = entries.map((entry) => {
          if (createMedia) return createMedia(entry);
          const element = new Image();
          element.onload = () => this.setDirtyCanvas(true, false);
          element.src = viewUrl(entry);
          return element;
        });
        if (entries.length) this.makeRoomForImages();
        this.setDirtyCanvas(true, false);
      }

      /** Show a live step preview (an image) in place of the outputs; null takes it away. */
      showPreview(image) {
        this.run.preview = image;
        if (image) this.makeRoomForImages();
        this.setDirtyCanvas(true, false);
      }

      /** Grow the node so that its images get IMAGE_MIN_HEIGHT below the widgets. */
      makeRoomForImages() {
        this.run.imageTop = this.computeSize()[1];
        if (this.size[1] < this.run.imageTop + IMAGE_MIN_HEIGHT) {
          this.setSize([Math.max(this.size[0], 260), this.run.imageTop + IMAGE_MIN_HEIGHT]);
        }
      }

      /** Mark (or with null, clear) an error on this node. */
      setError(message) {
        setRunError(this, message);
      }

      onDrawForeground(ctx) {
        const [width, height] = this.size;
        const { images, preview } = this.run;
        const shown = preview ? [preview] : images;
        if (shown.length && !this.flags.collapsed) this.drawImages(ctx, shown, width, height);
        drawRunMarks(this, ctx, LiteGraph.NODE_TITLE_HEIGHT);
      }

      drawImages(ctx, images, width, height) {
        const top = this.run.imageTop ?? this.computeSize()[1];
        const box = { w: width / images.length, h: height - top - 4 };
        images.forEach((image, i) => {
          const [naturalWidth, naturalHeight] = mediaSize(image);
          if (!naturalWidth || !naturalHeight || box.h <= 0) return;
          const scale = Math.min(box.w / naturalWidth, box.h / naturalHeight);
          const w = naturalWidth * scale;
          const h = naturalHeight * scale;
          ctx.drawImage(image, i * box.w + (box.w - w) / 2, top + (box.h - h) / 2, w, h);
        });
      }
    }
    LiteGraph.registerNodeType(type, ReelgraphNode);
    ReelgraphNode.category = info.category ?? "";
  }
}

/** The editor-only node types (notes, reroutes, primitives): saved with the graph, never sent to the server. */
export function registerFrontendNodes(lib, onChange) {
  const { LiteGraph, LGraphNode } = lib;
  registerRerouteNode(lib);
  registerPrimitiveNode(lib, onChange);
  for (const type of ["Note", "MarkdownNote"]) {
    class NoteNode extends LGraphNode {
      static title = type === "Note" ? "Note" : "Markdown Note";
      constructor(title) {
        super(title ?? NoteNode.title);
        this.isVirtualNode = true;
        this.serialize_widgets = true;
        this.color = "#432";
        this.bgcolor = "#653";
        this.addWidget("text", "text", "", onChange, { multiline: true });
        this.size = [400, 120];
      }

      /** A saved note keeps the colours it was saved with, or none (ComfyUI files may omit them). */
      configure(info) {
        super.configure(info);
        if (info.color === undefined) delete this.color;
        if (info.bgcolor === undefined) delete this.bgcolor;
      }
    }
    LiteGraph.registerNodeType(type, NoteNode);
    NoteNode.category = "utils";
  }
}
