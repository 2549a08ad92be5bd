// Widgets for widget-typed inputs (INT, FLOAT, STRING, BOOLEAN, combos), in ComfyUI's widgets_values order.

export const SEED_CONTROLS = ["fixed", "increment", "decrement", "randomize"];
const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);

/** The choices of a combo input spec, or null when the input is not a combo. */
export function comboValues(type, options) {
  if (Array.isArray(type)) return type;
  if (type === "COMBO") return options.options ?? [];
  return null;
}

/** Whether an input spec [type, options] is shown as a widget (not a socket). */
export function isWidgetInput(type, options = {}) {
  if (options.forceInput) return false;
  return Array.isArray(type) || WIDGET_TYPES.has(type);
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

/** Add the widget(s) of input `name` to `node`; a seed gets a control_after_generate combo after it. */
export function addInputWidget(node, name, type, options, onChange) {
  const values = comboValues(type, options);
  let widget;
  if (values) {
    widget = node.addWidget("combo", name, options.default ?? values[0] ?? "", onChange, { values });
  } else if (type === "INT" || type === "FLOAT") {
    widget = numberWidget(node, name, options, type === "INT", onChange);
  } else if (type === "BOOLEAN") {
    widget = node.addWidget("toggle", name, options.default ?? false, onChange,
      { on: options.label_on ?? "true", off: options.label_off ?? "false" });
  } else {
    widget = node.addWidget("text", name, options.default ?? "", onChange, { multiline: !!options.multiline });
  }
  widget.inputName = name;
  widget.tooltip = options.tooltip;
  if (type === "INT" && options.control_after_generate) {
    const control = node.addWidget("combo", "control_after_generate", "randomize", onChange,
      { values: SEED_CONTROLS });
    control.controls = widget;
    control.tooltip = "What happens to the value after each queue";
  }
}

/** Apply every control_after_generate widget of the graph (after a prompt was queued). */
export function applySeedControls(graph) {
  for (const node of graph._nodes) {
    for (const control of node.widgets ?? []) {
      const target = control.controls;
      if (!target || control.value === "fixed") continue;
      const { min = 0, max = Number.MAX_SAFE_INTEGER } = target.options;
      const top = Math.min(max, Number.MAX_SAFE_INTEGER);
      let value = target.value;
      if (control.value === "increment") value += 1;
      else if (control.value === "decrement") value -= 1;
      else value = min + Math.floor(Math.random() * (top - min + 1));
      target.value = Math.min(top, Math.max(min, value));
    }
  }
  graph.setDirtyCanvas(true, false);
}
