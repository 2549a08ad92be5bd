// The current graph kept in localStorage, so a reload (or a crash) loses nothing.

const KEY = "reelgraph.workflow";

/** The saved workflow, or null when there is none or it cannot be read. */
export function loadSaved() {
  try {
    const text = localStorage.getItem(KEY);
    return text ? JSON.parse(text) : null;
  } catch (error) {
    console.warn("the saved workflow could not be read", error);
    return null;
  }
}

/** Save `graph` now, and return a function that saves it soon (debounced) for each change. */
export function autosave(graph) {
  let last = null;
  let timer = null;
  const saveNow = () => {
    clearTimeout(timer);
    timer = null;
    const text = JSON.stringify(graph.serialize());
    if (text !== last) { localStorage.setItem(KEY, text); last = text; }
  };
  const saveSoon = () => { if (timer === null) timer = setTimeout(saveNow, 100); };
  saveNow();
  addEventListener("pagehide", saveNow);
  return { saveSoon, saveNow };
}
