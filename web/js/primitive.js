// ComfyUI's editor-only "PrimitiveNode": linked to widget inputs, it takes the first one's widget (type, options,
// value) and drives every input it feeds; prompt.js writes its value as each target's literal.

import { addControlWidget } from "./widgets.js";

const ANY = "*";
const UNLINKED_NAME = "connect to widget input";
const CONTROLLED = new Set(["number", "combo"]);

/** The choices of `values` that `filter` keeps: a /regex/ or a case-insensitive substring; all when empty. */
function filterChoices(values, filter) {
  const text = String(filter ?? "").trim();
  if (!text) return values;
  const regex = text.match(/^\/(.*)\/([a-z]*)$/);
  try {
    const test = regex ? new RegExp(regex[1], regex[2]) : null;
    const kept = values.filter((value) => (test ? test.test(value) : value.toLowerCase().includes(text.toLowerCase())));
    return kept.length ? kept : values;
  } catch {
    return values;
  }
}

/** Register the PrimitiveNode type with `lib`; `onChange` is called when one of its widgets changes. */
export function registerPrimitiveNode(lib, onChange) {
  const { LiteGraph, LGraphNode } = lib;

  class PrimitiveNode extends LGraphNode {
    static title = "Primitive";

    constructor(title) {
      super(title ?? PrimitiveNode.title);
      this.isVirtualNode = true;
      this.serialize_widgets = true;
      this.properties = { "Run widget replace on values": false };
      this.addOutput(UNLINKED_NAME, ANY);
      this.size = this.computeSize();
    }

    /** The value written into the prompt for every input this node feeds; undefined while it feeds none. */
    outputValue() {
      return this.widgets?.[0]?.value;
    }

    /** The [node, widget] pairs this node drives. */
    targets() {
      const name = this.outputs[0].widget?.name;
      return (this.outputs[0].links ?? []).map((id) => {
        const link = this.graph?.getLink(id);
        const node = link ? this.graph.getNodeById(link.target_id) : null;
        return [node, node?.widgets?.find((widget) => widget.name === name)];
      }).filter(([, widget]) => widget);
    }

    /** Only widget inputs, and once typed only inputs of the same type (and for combos, the same choices). */
    onConnectOutput(_slot, type, input, target) {
      const widget = input?.widget ? target.getWidgetFromSlot?.(input) : null;
      if (!widget) return false;
      if (!this.widgets?.length) return true;
      const mine = this.widgets[0].options.values;
      const theirs = widget.options?.values;
      const sameChoices = !mine || (theirs?.length === mine.length && theirs.every((value, i) => value === mine[i]));
      return type === this.outputs[0].type && sameChoices;
    }

    onConnectionsChange(side, _slot, connected, link) {
      if (side !== LiteGraph.OUTPUT || !this.graph) return;
      if (connected && link && !this.widgets?.length) this.adopt(link);
      else if (!connected && !this.outputs[0].links?.length) this.release();
    }

    /** Take the widget of the input `link` feeds: its type, options and value (and the target's control). */
    adopt(link) {
      const target = this.graph.getNodeById(link.target_id);
      const output = this.outputs[0];
      const name = output.widget?.name ?? target?.inputs?.[link.target_slot]?.widget?.name;
      const source = target?.widgets?.find((widget) => widget.name === name);
      if (!source) return;
      const input = target.inputs.find((each) => each.widget?.name === name);
      output.type = input?.type ?? output.type;
      output.name = output.type;
      output.widget = { name };
      const widget = this.addWidget(source.type, "value", source.value, () => {
        this.applyToTargets();
        onChange();
      }, { ...source.options });
      if (CONTROLLED.has(source.type)) {
        const targetControl = target.widgets.find((each) => each.controls === source)?.value;
        const control = addControlWidget(this, widget, targetControl ?? "fixed", onChange);
        if (source.type === "combo") {
          const filter = this.addWidget("text", "control_filter_list", "", onChange, {});
          control.filter = (values) => filterChoices(values, filter.value);
        }
      }
      this.setSize([Math.max(this.size[0], this.computeSize()[0]), this.computeSize()[1]]);
    }

    /** Back to an unlinked primitive: no widgets, an untyped output. */
    release() {
      const output = this.outputs[0];
      output.type = ANY;
      output.name = UNLINKED_NAME;
      delete output.widget;
      this.widgets = [];
      this.setSize(this.computeSize());
    }

    /** Take the first target's current choices again (after the lists were refreshed). */
    syncOptions() {
      const [first] = this.targets();
      const widget = this.widgets?.[0];
      if (!first || !widget) return;
      widget.options = { ...first[1].options };
    }

    /** Write the value into every target widget, so the targets show what the prompt will carry. */
    applyToTargets() {
      const value = this.outputValue();
      if (value === undefined) return;
      for (const [node, widget] of this.targets()) {
        widget.value = value;
        node.setDirtyCanvas(true, false);
      }
    }

    /** Called by applySeedControls once this node's control changed the value. */
    onControlsApplied() {
      this.applyToTargets();
    }

    onConfigure() {
      queueMicrotask(() => this.applyToTargets()); // once the whole graph, targets included, is configured
    }
  }

  LiteGraph.registerNodeType("PrimitiveNode", PrimitiveNode);
  PrimitiveNode.category = "utils";
}
