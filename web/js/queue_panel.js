// The queue and history side panel: running and pending prompts, and past runs to open, delete or clear.

import { element } from "./dom.js";
import { VirtualList } from "./history_list.js";
import { HistorySource } from "./history_source.js";

const ROW_HEIGHT = 56;
const PAGE_SIZE = 50;
const QUEUE_ROWS_SHOWN = 30;
const REFRESH_DELAY_MS = 250;
const THUMBNAIL_PREVIEW = "webp;50";
const REFRESH_ON = new Set([
  "status", "execution_start", "executed", "execution_success", "execution_error", "execution_interrupted",
]);

/** The queue and history routes, through api.fetch (which carries the page's token). */
function queueApi(api) {
  async function call(path, body) {
    const init = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    };
    const response = await api.fetch(path, init);
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return response.json();
  }
  return {
    queue: () => call("/queue"),
    editQueue: (body) => call("/queue", body),
    history: (maxItems, offset) => {
      const query = new URLSearchParams({ max_items: maxItems });
      if (offset !== undefined) query.set("offset", offset);
      return call(`/history?${query}`);
    },
    historyEntry: (promptId) => call(`/history/${encodeURIComponent(promptId)}`),
    editHistory: (body) => call("/history", body),
  };
}

function button(label, title, onClick) {
  const node = element("button", "qp-button", label);
  node.title = title;
  node.onclick = (event) => { event.stopPropagation(); onClick(); };
  return node;
}

function formatDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** The panel: its DOM, the history's virtual list and the refreshes the WebSocket asks for. */
class QueuePanel {
  constructor(editor) {
    this.editor = editor;
    this.api = queueApi(editor.api);
    this.source = new HistorySource(this.api, PAGE_SIZE);
    this.isOpen = false;
    this.timer = null;
    this.inFlight = null;
    this.again = false;
    this.loadingRows = false;
    this.queueKey = null;
    this.toggleButton = null;
    this.build();
  }

  build() {
    this.root = element("aside", "queue-panel");
    this.root.id = "queue-panel";
    this.root.hidden = true;
    const queueHead = element("header", "qp-head");
    this.queueTitle = element("b", "", "Queue");
    queueHead.append(this.queueTitle, button("Clear", "Remove every pending prompt", () => this.clearQueue()));
    this.queueList = element("ol", "qp-queue-list");
    const historyHead = element("header", "qp-head");
    this.historyTitle = element("b", "", "History");
    historyHead.append(this.historyTitle, button("Clear", "Forget every past run", () => this.clearHistory()));
    this.historyBox = element("div", "qp-history-list");
    this.root.append(queueHead, this.queueList, historyHead, this.historyBox);
    document.body.append(this.root);
    this.list = new VirtualList(this.historyBox, {
      rowHeight: ROW_HEIGHT,
      keyOf: (index) => this.source.at(index)?.promptId ?? `loading:${index}`,
      renderRow: (index) => this.historyRow(this.source.at(index)),
      onRange: (start, end) => this.loadRows(start, end),
    });
  }

  /** Show the panel; resolves once the queue and the first rows of the history are drawn. */
  async open() {
    this.isOpen = true;
    this.root.hidden = false;
    this.toggleButton?.classList.add("active");
    if (this.inFlight) await this.inFlight; // it may have started while the list had no height
    await this.refresh();
  }

  close() {
    this.isOpen = false;
    this.root.hidden = true;
    this.toggleButton?.classList.remove("active");
  }

  toggle() {
    return this.isOpen ? this.close() : this.open();
  }

  /** Refresh a little later, at most once per REFRESH_DELAY_MS however many messages arrive. */
  refreshSoon() {
    if (!this.isOpen || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refresh();
    }, REFRESH_DELAY_MS);
  }

  /** Fetch the queue and what is new in the history, then redraw what changed. */
  refresh() {
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    this.inFlight = this.load()
      .catch((error) => this.editor.report(`queue panel: ${error.message}`, true))
      .finally(() => {
        this.inFlight = null;
        if (this.again) {
          this.again = false;
          this.refreshSoon();
        }
      });
    return this.inFlight;
  }

  async load() {
    const [queue, added] = await Promise.all([this.api.queue(), this.source.recount()]);
    this.showQueue(queue);
    this.historyTitle.textContent = `History (${this.source.count})`;
    this.list.setCount(this.source.count, added);
    await this.source.ensure(...this.list.range());
    this.list.render();
  }

  /** Fetch the history pages a scroll brought into view, then draw their rows. */
  loadRows(start, end) {
    if (this.loadingRows) return;
    let missing = false;
    for (let index = start; index < end && !missing; index += 1) missing = !this.source.at(index);
    if (!missing) return;
    this.loadingRows = true;
    const known = this.source.entries.size;
    this.source.ensure(start, end)
      .catch((error) => this.editor.report(`queue panel: ${error.message}`, true))
      .finally(() => {
        this.loadingRows = false;
        if (this.source.entries.size !== known) this.list.renderSoon();
      });
  }

  showQueue({ queue_running: running = [], queue_pending: pending = [] }) {
    const items = [
      ...running.map((item) => ({ item, running: true })),
      ...[...pending].sort((a, b) => a[0] - b[0]).map((item) => ({ item, running: false })),
    ];
    this.queueTitle.textContent = `Queue (${running.length} running, ${pending.length} pending)`;
    const key = items.map(({ item, running: isRunning }) => `${item[1]}:${isRunning}`).join(",");
    if (key === this.queueKey) return;
    this.queueKey = key;
    const rows = items.slice(0, QUEUE_ROWS_SHOWN).map(({ item, running: isRunning }) => this.queueRow(item, isRunning));
    const hidden = items.length - QUEUE_ROWS_SHOWN;
    if (hidden > 0) rows.push(element("li", "qp-more", `… ${hidden} more`));
    if (!items.length) rows.push(element("li", "qp-empty", "nothing queued"));
    this.queueList.replaceChildren(...rows);
  }

  queueRow([number, promptId, prompt], isRunning) {
    const row = element("li", `qp-queue-row ${isRunning ? "running" : "pending"}`);
    row.dataset.promptId = promptId;
    const nodes = Object.keys(prompt ?? {}).length;
    row.append(
      element("span", "qp-number", `#${number}`),
      element("span", "qp-status", isRunning ? "running" : "pending"),
      element("span", "qp-detail", `${nodes} node${nodes === 1 ? "" : "s"}`),
    );
    if (!isRunning) row.append(button("Delete", "Remove it from the queue", () => this.deletePending(promptId)));
    return row;
  }

  historyRow(summary) {
    if (!summary) return element("div", "qp-row loading", "loading…");
    const row = element("div", `qp-row ${summary.status}`);
    row.dataset.promptId = summary.promptId;
    const thumb = element("span", "qp-thumb");
    if (summary.image) thumb.append(this.thumbnail(summary.image));
    else if (summary.video) thumb.textContent = "video";
    const text = element("span", "qp-text");
    text.append(element("span", "qp-number", `#${summary.number}`), element("span", "qp-status", summary.status));
    if (summary.duration !== null) text.append(element("span", "qp-duration", formatDuration(summary.duration)));
    if (summary.error) row.title = summary.error;
    const actions = element("span", "qp-actions");
    actions.append(
      button("Open", "Open this run's workflow and outputs", () => this.openRun(summary)),
      button("Delete", "Forget this run", () => this.deleteRun(summary)),
    );
    row.append(thumb, text, actions);
    return row;
  }

  /** A small re-encoded preview of an output image, never the full-size file. */
  thumbnail(image) {
    const img = element("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = "";
    img.onerror = () => img.remove();
    img.src = `${this.editor.api.viewUrl(image)}&preview=${encodeURIComponent(THUMBNAIL_PREVIEW)}`;
    return img;
  }

  async deletePending(promptId) {
    await this.act(() => this.api.editQueue({ delete: [promptId] }));
  }

  async clearQueue() {
    await this.act(() => this.api.editQueue({ clear: true }));
  }

  async deleteRun(summary) {
    await this.act(async () => {
      await this.api.editHistory({ delete: [summary.promptId] });
      this.source.forget(summary.promptId);
      this.list.setCount(this.source.count);
      this.list.render();
    });
  }

  async clearHistory() {
    await this.act(async () => {
      await this.api.editHistory({ clear: true });
      this.source.reset();
    });
  }

  /** Run a change on the server, then refresh; a failure goes to the status line. */
  async act(change) {
    try {
      await change();
    } catch (error) {
      this.editor.report(`queue panel: ${error.message}`, true);
    }
    await this.refresh();
  }

  /** Restore a past run's workflow into the editor and show its outputs on the nodes. */
  async openRun(summary) {
    const { editor } = this;
    try {
      const entry = (await this.api.historyEntry(summary.promptId))[summary.promptId];
      if (!entry) return editor.report(`run #${summary.number} is no longer in the history`, true);
      const workflow = entry.prompt?.[3]?.extra_pnginfo?.workflow;
      if (!workflow) return editor.report(`run #${summary.number} has no workflow saved with it (queued by API)`, true);
      editor.loadWorkflow(workflow);
      for (const [id, output] of Object.entries(entry.outputs ?? {})) {
        const shownOn = entry.meta?.[id]?.display_node ?? id;
        editor.runState.showOutput(shownOn, output);
      }
      editor.report(`opened run #${summary.number}`);
    } catch (error) {
      editor.report(`could not open run #${summary.number}: ${error.message}`, true);
    }
  }
}

/** Add the panel, its toolbar button and its live refresh; `editor.queuePanel` drives it (open() for benches). */
export function install(editor) {
  editor.addStylesheet("css/queue_panel.css");
  const panel = new QueuePanel(editor);
  panel.toggleButton = editor.addToolbarButton("Queue & history", "Show the queue and past runs", () => panel.toggle());
  panel.toggleButton.id = "queue-panel-toggle";
  editor.on("message", (type) => {
    if (REFRESH_ON.has(type)) panel.refreshSoon();
  });
  editor.queuePanel = {
    open: () => panel.open(),
    close: () => panel.close(),
    toggle: () => panel.toggle(),
    refresh: () => panel.refresh(),
  };
}
