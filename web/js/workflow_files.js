// Workflow files: save and open through the server's userdata store, download and upload as JSON.

import { element } from "./dom.js";
import { answerMessage, openFile } from "./drop.js";

const FOLDER = "workflows";
const NAME_KEY = "reelgraph.workflowName";

/** The userdata path of saved workflow `name`, URL-encoded into one segment as the server wants. */
const userdataPath = (name) => `/userdata/${encodeURIComponent(`${FOLDER}/${name}`)}`;

/** "name.json" from what the user typed; null when it (or a folder in it) is empty or hidden (a leading dot). */
function fileName(typed) {
  const base = typed.trim().replace(/\.json$/i, "").trim();
  return base && !base.split("/").some((part) => !part || part.startsWith(".")) ? `${base}.json` : null;
}

/** A modal dialog of our own; `ask` answers the typed text (or true without an input), null when cancelled. */
function createDialog() {
  const dialog = element("dialog", "wf-dialog");
  const form = element("form");
  form.method = "dialog";
  const message = element("p", "wf-message");
  const input = element("input", "wf-name");
  input.type = "text";
  input.spellcheck = false;
  const buttons = element("div", "wf-buttons");
  const ok = element("button", "wf-ok");
  ok.value = "ok";
  const cancel = element("button", "wf-cancel", "Cancel");
  cancel.value = "cancel";
  buttons.append(ok, cancel); // the first submit button is the one Enter presses
  form.append(message, input, buttons);
  dialog.append(form);
  document.body.append(dialog);
  return {
    get open() { return dialog.open; },
    ask(text, { confirm = "OK", value = null } = {}) {
      message.textContent = text;
      ok.textContent = confirm;
      input.hidden = value === null;
      input.value = value ?? "";
      dialog.returnValue = "";
      dialog.showModal();
      if (value !== null) input.select();
      return new Promise((resolve) => {
        dialog.addEventListener("close", () => {
          if (dialog.returnValue !== "ok") resolve(null);
          else resolve(value === null ? true : input.value);
        }, { once: true });
      });
    },
  };
}

function download(name, text) {
  const link = element("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** Toolbar buttons Save (Ctrl+S; Ctrl+Shift+S saves as), Open, Download and Upload, and the saved-workflows panel. */
export function install(editor) {
  const { api, graph, report } = editor;
  editor.addStylesheet("css/workflow_files.css");
  const dialog = createDialog();
  const state = { name: localStorage.getItem(NAME_KEY), opening: null };
  const label = element("span", "wf-current");
  document.getElementById("status").before(label);

  const setName = (name) => {
    state.name = name;
    if (name) localStorage.setItem(NAME_KEY, name);
    else localStorage.removeItem(NAME_KEY);
    label.textContent = name ?? "unsaved";
    label.title = name ? `saved as ${FOLDER}/${name} on the server` : "not saved on the server yet";
  };
  setName(state.name);
  editor.on("loaded", (_workflow, how) => { if (how !== "restore") setName(state.opening); });

  const post = (name, overwrite) => api.fetch(`${userdataPath(name)}?overwrite=${overwrite}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(graph.serialize()),
  });

  async function save(saveAs = false) {
    if (dialog.open) return;
    let name = saveAs ? null : state.name;
    let overwrite = true;
    while (!name) {
      const typed = await dialog.ask("Save the workflow as", { confirm: "Save", value: state.name ?? "workflow" });
      if (typed === null) return;
      name = fileName(typed);
      if (!name) report(`"${typed}" is not a usable name; give a name without leading dots`, true);
      overwrite = false;
    }
    let response = await post(name, overwrite);
    if (response.status === 409) {
      if (!await dialog.ask(`"${name}" already exists on the server. Overwrite it?`, { confirm: "Overwrite" })) {
        report(`not saved: "${name}" exists`);
        return;
      }
      response = await post(name, true);
    }
    if (!response.ok) {
      report(`could not save "${name}": ${await answerMessage(response)}`, true);
      return;
    }
    setName(name);
    report(`saved ${name}`);
  }

  async function open(name) {
    const response = await api.fetch(userdataPath(name));
    if (!response.ok) {
      report(`could not open "${name}": ${await answerMessage(response)}`, true);
      return;
    }
    let workflow;
    try {
      workflow = await response.json();
    } catch (error) {
      report(`"${name}" is not valid JSON (${error.message})`, true);
      return;
    }
    const before = { workflow: graph.serialize(), name: state.name };
    state.opening = name;
    try {
      editor.loadWorkflow(workflow);
      report(`opened ${name}`);
    } catch (error) {
      state.opening = before.name;
      editor.loadWorkflow(before.workflow);
      report(`"${name}" could not be opened: ${error.message}`, true);
    } finally {
      state.opening = null;
    }
  }

  async function remove(name) {
    if (!await dialog.ask(`Delete "${name}" from the server?`, { confirm: "Delete" })) return false;
    const response = await api.fetch(userdataPath(name), { method: "DELETE" });
    if (!response.ok) {
      report(`could not delete "${name}": ${await answerMessage(response)}`, true);
      return false;
    }
    if (state.name === name) setName(null);
    report(`deleted ${name}`);
    return true;
  }

  const panel = element("div", "wf-panel");
  panel.hidden = true;
  const header = element("div", "wf-panel-header");
  const close = element("button", "wf-close", "×");
  close.title = "Close";
  close.onclick = () => { panel.hidden = true; };
  header.append(element("b", "", "Saved workflows"), close);
  const list = element("ul", "wf-list");
  panel.append(header, list);
  document.body.append(panel);

  /** The saved workflows, newest first: [{path, modified}]. */
  async function savedWorkflows() {
    const response = await api.fetch(`/userdata?dir=${FOLDER}&recurse=true&full_info=true`);
    if (response.status === 404) return []; // nothing saved yet: the folder does not exist
    if (!response.ok) throw new Error(await answerMessage(response));
    return (await response.json()).sort((a, b) => b.modified - a.modified);
  }

  async function showPanel() {
    list.replaceChildren(element("li", "wf-empty", "loading…"));
    panel.hidden = false;
    let files;
    try {
      files = await savedWorkflows();
    } catch (error) {
      list.replaceChildren(element("li", "wf-empty", `could not list the saved workflows: ${error.message}`));
      return;
    }
    if (!files.length) {
      list.replaceChildren(element("li", "wf-empty", "no saved workflows yet: Save (Ctrl+S) puts one here"));
      return;
    }
    list.replaceChildren(...files.map(({ path, modified }) => {
      const row = element("li", "wf-item");
      row.dataset.name = path;
      const openButton = element("button", "wf-open", path.replace(/\.json$/i, ""));
      openButton.title = `Open ${path}`;
      openButton.onclick = async () => { panel.hidden = true; await open(path); };
      const when = element("span", "wf-when", new Date(modified).toLocaleString());
      const deleteButton = element("button", "wf-delete", "Delete");
      deleteButton.title = `Delete ${path} from the server`;
      deleteButton.onclick = async () => { if (await remove(path)) row.remove(); };
      row.append(openButton, when, deleteButton);
      return row;
    }));
  }

  const upload = element("input", "wf-upload");
  upload.type = "file";
  upload.accept = ".json,application/json,.png,.webp,.gif,.mp4,.webm";
  upload.hidden = true;
  upload.onchange = async () => {
    const [file] = upload.files;
    upload.value = "";
    if (file) await openFile(editor, file);
  };
  document.body.append(upload);

  editor.addToolbarButton("Save", "Save to the server (Ctrl+S; Shift+click or Ctrl+Shift+S: save as)",
    (event) => save(event.shiftKey)).classList.add("wf-save");
  editor.addToolbarButton("Open", "Open a workflow saved on the server",
    () => (panel.hidden ? showPanel() : (panel.hidden = true))).classList.add("wf-open-panel");
  editor.addToolbarButton("Download", "Download the workflow as a JSON file", () => {
    download(state.name ?? "workflow.json", JSON.stringify(graph.serialize(), null, 2));
  }).classList.add("wf-download");
  editor.addToolbarButton("Upload", "Open a workflow JSON (or a PNG / video carrying one) from this computer",
    () => upload.click()).classList.add("wf-upload-button");

  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      save(event.shiftKey);
    } else if (event.key === "Escape" && !panel.hidden) {
      panel.hidden = true;
    }
  });
}
