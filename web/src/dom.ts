// DOM helpers for the views: elements built from code (never from HTML strings), and lookups
// inside a view's root element only.

/** An element with attributes as given, then children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

/** The element matching `selector` inside `root`; a missing one is a bug in index.html. */
export function find<T extends HTMLElement = HTMLElement>(root: ParentNode, selector: string): T {
  const e = root.querySelector<T>(selector);
  if (!e) throw new Error(`no ${selector} in the view`);
  return e;
}

/** A table cell with its column's name for the stacked layout of narrow screens. */
export function cell(label: string, content: Node | string, attrs: Record<string, string> = {}) {
  return el("td", { "data-label": label, ...attrs }, content);
}

/** One row saying why a table is empty (or loading), across all its columns. */
export function noteRow(columns: number, text: string): HTMLTableRowElement {
  return el("tr", { class: "note" }, el("td", { colspan: String(columns) }, text));
}
