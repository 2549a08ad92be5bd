// Widgets for widget-typed inputs (INT, FLOAT, STRING, BOOLEAN, combos), in ComfyUI's widgets_values order; each
// widget also has an input socket (`input.widget = {name}`): a link into it replaces the widget's value.

export const SEED_CONTROLS = ["fixed", "increment", "decrement", "randomize"];
/**
 * Dispatched on the canvas element with detail {node, combo, kind, pick}: pick is true when an upload button was
 * clicked, false when the file an upload combo names should be shown in its node.
 */
export const UPLOAD_EVENT = "reelgraph-upload";
const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);
const UPLOAD_KINDS = { image_upload: "image", video_upload: "video" };

/** The choices of a combo input spec, or null when the input is not a combo. */
export function comboValues(type, options) {
  if (Array.isArray(type)) return type;
  if (type === "COMBO") return options.options ?? [];
  return null;
}

/** Whether an input spec [type, options] is shown as a widget (with a socket), not as a socket only. */
export function isWidgetInput(type, options = {}) {
  if (options.forceInput) return false;
  return Array.isArray(type) || WIDGET_TYPES.has(type);
}

/** The socket type of a widget input: COMBO for a list of choices (as ComfyUI saves it), else the spec's type. */
export function widgetSocketType(type) {
  return Array.isArray(type) ? "COMBO" : type;
}

function decimals(step) {
  const text = String(step);
  return text.includes(".") ? text.split(".")[1].length : 0;
}

function roundTo(value, round) {
  if (!round) return value;
  const places = decimals(round);
  return Number((Math.round(value / round) * round).toFixed(places));
}

function numberWidget(node, name, options, isInt, onChange) {
  const step = options.step ?? (isInt ? 1 : 0.01);
  const round = isInt ? 1 : options.round ?? step;
  const widget = node.addWidget("number", name, options.default ?? options.min ?? 0, null, {
    min: options.min, max: options.max, step: step * 10, step2: step,
    precision: isInt ? 0 : Math.max(decimals(round), decimals(step)),
  });
  widget.callback = (value) => {
    const rounded = roundTo(value, round);
    if (rounded !== widget.value) widget.value = rounded;
    onChange();
  };
  return widget;
}

/** Ask the upload feature (listening on the canvas element) to pick a file or to show the current one. */
function uploadRequest(node, combo, kind, pick, canvas = null) {
  const detail = { node, combo, kind, pick };
  const send = (target) => target.canvas.dispatchEvent(new CustomEvent(UPLOAD_EVENT, { detail }));
  if (canvas) send(canvas);
  else node.graph?.canvasAction(send);
}

/** An upload button after combo `combo` (saved as "image", as ComfyUI does); the combo's file is shown in the node. */
function addUploadButton(node, combo, kind, onChange) {
  const button = node.addWidget("button", "upload", "image",
    (_widget, canvas) => uploadRequest(node, combo, kind, true, canvas), {});
  button.label = `choose ${kind === "video" ? "video" : "file"} to upload`;
  button.uploadFor = combo;
  button.uploadKind = kind;
  combo.callback = () => {
    onChange();
    uploadRequest(node, combo, kind, false);
  };
  queueMicrotask(() => uploadRequest(node, combo, kind, false)); // once the node is in its graph and configured
}

/** The widget for one input spec. */
export function createWidget(node, name, type, options, onChange) {
  const values = comboValues(type, options);
  if (values) return node.addWidget("combo", name, options.default ?? values[0] ?? "", onChange, { values });
  if (type === "INT" || type === "FLOAT") return numberWidget(node, name, options, type === "INT", onChange);
  if (type === "BOOLEAN") {
    return node.addWidget("toggle", name, options.default ?? false, onChange,
      { on: options.label_on ?? "true", off: options.label_off ?? "false" });
  }
  return node.addWidget("text", name, options.default ?? "", onChange, { multiline: !!options.multiline });
}

/**
 * Add the widget(s) of input `name` to `node` and its socket: a seed gets a control_after_generate combo after it,
 * an image or video choice an upload button.
 */
export function addInputWidget(node, name, type, options, onChange) {
  const widget = createWidget(node, name, type, options, onChange);
  widget.inputName = name;
  widget.tooltip = options.tooltip;
  node.addInput(name, widgetSocketType(type), { widget: { name }, tooltip: options.tooltip });
  if (type === "INT" && options.control_after_generate) addControlWidget(node, widget, "randomize", onChange);
  const kind = Object.entries(UPLOAD_KINDS).find(([flag]) => options[flag])?.[1];
  if (kind && comboValues(type, options)) addUploadButton(node, widget, kind, onChange);
}

/** A control_after_generate combo for `target` (a number or combo widget), added after it. */
export function addControlWidget(node, target, value, onChange) {
  const control = node.addWidget("combo", "control_after_generate", value, onChange, { values: SEED_CONTROLS });
  control.controls = target;
  control.tooltip = "What happens to the value after each queue";
  return control;
}

/**
 * `info` (a saved node) ready for LGraphNode.configure on `node`: the saved inputs keep their places (links name
 * them by index) and the widget sockets the save lacks (ComfyUI saved only converted widgets before) come after.
 * Empties `node.inputs`, which configure would otherwise merge index by index with the saved list.
 */
export function withWidgetSockets(node, info) {
  if (!Array.isArray(info.inputs)) return info;
  const saved = new Set(info.inputs.map((input) => input.widget?.name ?? input.name));
  const missing = (node.inputs ?? []).filter((input) => input.widget && !saved.has(input.widget.name))
    .map(({ name, type, widget }) => ({ name, type, link: null, widget: { name: widget.name } }));
  node.inputs = [];
  return { ...info, inputs: [...info.inputs, ...missing] };
}

function nextChoice(values, current, control) {
  if (!values.length) return current;
  if (control === "randomize") return values[Math.floor(Math.random() * values.length)];
  const index = values.indexOf(current);
  const step = control === "increment" ? 1 : -1;
  return values[(Math.max(index, 0) + step + values.length) % values.length];
}

/** Apply every control_after_generate widget of the graph (after a prompt was queued). */
export function applySeedControls(graph) {
  for (const node of graph._nodes) {
    let applied = false;
    for (const control of node.widgets ?? []) {
      const target = control.controls;
      if (!target || control.value === "fixed") continue;
      applied = true;
      if (target.type === "combo") {
        const values = control.filter ? control.filter(target.options.values) : target.options.values;
        target.value = nextChoice(values, target.value, control.value);
        continue;
      }
      const { min = 0, max = Number.MAX_SAFE_INTEGER } = target.options;
      const top = Math.min(max, Number.MAX_SAFE_INTEGER);
      let value = target.value;
      if (control.value === "increment") value += target.options.step2 ?? 1;
      else if (control.value === "decrement") value -= target.options.step2 ?? 1;
      else value = min + Math.floor(Math.random() * (top - min + 1));
      target.value = Number(Math.min(top, Math.max(min, value)).toFixed(target.options.precision ?? 0));
    }
    if (applied) node.onControlsApplied?.();
  }
  graph.setDirtyCanvas(true, false);
}
