// Two tiny DOM helpers shared by the dashboard and the editor.

/** The first element matching `sel` under `root`. */
export const $ = (sel, root = document) => root.querySelector(sel);

/** A new `tag` element with an optional class and text. */
export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}
