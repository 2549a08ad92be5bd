// Upload widgets: the button picks an image or video, POSTs it to /upload/image and selects it in the combo; the
// chosen file is shown in its node; an image or video file dropped on such a node is uploaded into it.

import { hasFiles } from "./dom.js";
import { answerMessage } from "./drop.js";
import { UPLOAD_EVENT } from "./widgets.js";

const ACCEPT = { image: "image/*", video: "video/*" };

/** The /view entry of a combo value: "sub/name.png" in the input folder, or ComfyUI's "name.png [output]". */
export function viewEntry(value) {
  let name = String(value);
  let type = "input";
  const annotated = name.match(/^(.*) \[(input|output|temp)\]$/);
  if (annotated) [, name, type] = annotated;
  const slash = name.lastIndexOf("/");
  return { filename: name.slice(slash + 1), subfolder: slash < 0 ? "" : name.slice(0, slash), type };
}


/** The upload buttons' file picker, the uploads and the previews of one editor. */
class Uploads {
  constructor(editor) {
    this.editor = editor;
    this.picker = document.createElement("input");
    this.picker.type = "file";
    this.picker.hidden = true;
    document.body.append(this.picker);
  }

  /** Show the file `combo` names in `node` (a still image, or a muted looping video); none when it is not listed. */
  show(node, combo) {
    if (!node.showOutput) return;
    const media = this.editor.outputMedia;
    media?.release(node);
    const listed = combo.value && combo.options.values.includes(combo.value);
    const create = media ? (entry) => media.create(node, entry, {}) : null;
    node.showOutput({ images: listed ? [viewEntry(combo.value)] : [] }, this.editor.api.viewUrl, create);
  }

  showAll() {
    for (const node of this.editor.graph._nodes) {
      const button = node.widgets?.find((widget) => widget.uploadFor);
      if (button) this.show(node, button.uploadFor);
    }
  }

  pick(node, combo, kind) {
    this.picker.accept = ACCEPT[kind];
    this.picker.value = "";
    this.picker.onchange = () => {
      const [file] = this.picker.files;
      if (file) this.upload(node, combo, file);
    };
    this.picker.click();
  }

  /** Upload `file` to the input folder and select it in `combo`; a refusal is reported, the combo left unchanged. */
  async upload(node, combo, file) {
    const { api, report } = this.editor;
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("type", "input");
    form.append("subfolder", "");
    report(`uploading ${file.name}…`);
    let response;
    try {
      response = await api.fetch("/upload/image", { method: "POST", body: form });
    } catch (error) {
      report(`${file.name} was not uploaded: ${error.message}`, true);
      return false;
    }
    if (!response.ok) {
      report(`${file.name} was not uploaded: ${await answerMessage(response)}`, true);
      return false;
    }
    const { name, subfolder } = await response.json();
    const value = subfolder ? `${subfolder}/${name}` : name;
    if (!combo.options.values.includes(value)) combo.options.values.push(value);
    combo.value = value;
    this.show(node, combo);
    this.editor.changed();
    report(`uploaded ${value}`);
    return true;
  }

  /** The node with an upload button under a drag event on the canvas, and the dragged file it takes. */
  dropTarget(event) {
    const { canvas, graph } = this.editor;
    if (event.target !== canvas.canvas || !hasFiles(event)) return null;
    const [x, y] = canvas.convertEventToCanvasOffset(event);
    const node = graph.getNodeOnPos(x, y);
    const button = node?.widgets?.find((widget) => widget.uploadFor);
    if (!button) return null;
    const items = [...event.dataTransfer.items].filter((item) => item.kind === "file");
    const takes = (type) => type.startsWith(`${button.uploadKind}/`);
    if (!items.some((item) => takes(item.type))) return null;
    const file = [...event.dataTransfer.files].find((each) => takes(each.type));
    return { node, combo: button.uploadFor, file };
  }
}

/** Feature entry: upload buttons, previews of the chosen files, and drops of media files onto upload nodes. */
export function install(editor) {
  const uploads = new Uploads(editor);
  editor.canvas.canvas.addEventListener(UPLOAD_EVENT, ({ detail: { node, combo, kind, pick } }) => {
    if (pick) uploads.pick(node, combo, kind);
    else uploads.show(node, combo);
  });
  // Capture on window, before the page-wide workflow drop: a media file dropped on an upload node goes into it.
  addEventListener("dragover", (event) => {
    if (!uploads.dropTarget(event)) return;
    event.preventDefault();
    event.stopPropagation();
    event.dataTransfer.dropEffect = "copy";
  }, true);
  addEventListener("drop", (event) => {
    const target = uploads.dropTarget(event);
    if (!target) return;
    event.preventDefault();
    event.stopPropagation();
    uploads.upload(target.node, target.combo, target.file);
  }, true);
  uploads.showAll(); // the graph opened before this feature listened
}
