// Small DOM helpers the feature modules share.

/** A new element with an optional class name and text. */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Whether a key event went to a text field (then it is typing, not a shortcut). */
export function isTyping(event) {
  const target = event.target;
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

/** Whether a drag event carries files. */
export const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
