/* DOM helpers: query, build elements and line icons, keep a list's rows in
   step with data, form errors, busy buttons. Nothing here knows Bitween. */

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
let uid = 0;
/** A number for ids no other element has. */
export function nextId() {
  uid += 1;
  return uid;
}

/** Builds an element: props are class, text, on<event> handlers, hidden,
 *  or attributes; children are nodes or strings. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'hidden') node.hidden = true;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c != null && c !== false) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
/** Line icons on a 24x24 grid: path data, or [cx, cy, r] for a circle. */
const ICONS = {
  folder: ['M3 7.5A2.5 2.5 0 0 1 5.5 5H9l2 2.2h7.5A2.5 2.5 0 0 1 21 9.7v7.8a2.5 2.5 0 0 1-2.5 2.5h-13A2.5 2.5 0 0 1 3 17.5z'],
  users: [[9, 7.8, 3.4], 'M2.8 20c.4-3.5 2.9-5.8 6.2-5.8s5.8 2.3 6.2 5.8', 'M15.8 4.6a3.3 3.3 0 0 1 0 6.3', 'M17.8 14.5c1.9.7 3.2 2.6 3.4 5.5'],
  transfers: ['M7 4v16', 'M3 16l4 4 4-4', 'M17 20V4', 'M13 8l4-4 4 4'],
  sliders: ['M4 6h9', 'M17 6h3', 'M4 12h3', 'M11 12h9', 'M4 18h11', 'M19 18h1', [15, 6, 2], [9, 12, 2], [17, 18, 2]],
  upload: ['M12 15V4', 'M7.5 8.5L12 4l4.5 4.5', 'M4 14v4a2.5 2.5 0 0 0 2.5 2.5h11A2.5 2.5 0 0 0 20 18v-4'],
  search: [[11, 11, 6.5], 'M20 20l-4.3-4.3'],
  file: ['M6.5 3h7.5l5 5v11a2 2 0 0 1-2 2H6.5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z', 'M14 3v5h5'],
  chevron: ['M9 6l6 6-6 6'],
  x: ['M6 6l12 12', 'M18 6L6 18'],
  user: [[12, 8, 3.8], 'M4.5 20.5c.6-4 3.6-6.5 7.5-6.5s6.9 2.5 7.5 6.5'],
};

export function icon(name) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('fill', 'none');
  svg.setAttribute('stroke', 'currentColor');
  svg.setAttribute('stroke-width', '1.8');
  svg.setAttribute('stroke-linecap', 'round');
  svg.setAttribute('stroke-linejoin', 'round');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const shape of ICONS[name] || []) {
    let node;
    if (typeof shape === 'string') {
      node = document.createElementNS(SVG_NS, 'path');
      node.setAttribute('d', shape);
    } else {
      node = document.createElementNS(SVG_NS, 'circle');
      node.setAttribute('cx', shape[0]);
      node.setAttribute('cy', shape[1]);
      node.setAttribute('r', shape[2]);
    }
    svg.append(node);
  }
  return svg;
}
export const iconSpan = (name, cls = 'icon') => el('span', { class: cls }, icon(name));
export const fileIcon = () => el('span', { class: 'file-icon', 'aria-hidden': 'true' }, iconSpan('file'));

/** Keeps `container`'s children in the order of `items`, one per key:
 *  existing nodes are updated in place (focus and state survive), new
 *  ones created, missing ones removed. */
export function syncList(container, items, key, create, update) {
  const existing = new Map();
  for (const child of Array.from(container.children)) existing.set(child.dataset.key, child);
  let prev = null;
  for (const item of items) {
    const k = key(item);
    let node = existing.get(k);
    if (node) existing.delete(k);
    else {
      node = create(item);
      node.dataset.key = k;
    }
    update(node, item);
    const want = prev ? prev.nextSibling : container.firstChild;
    if (node !== want) container.insertBefore(node, want);
    prev = node;
  }
  for (const node of existing.values()) node.remove();
}

export function avatarFor(node, jid) {
  const name = String(jid || '?');
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  node.className = `avatar c${h % 8}`;
  node.textContent = name.charAt(0) || '?';
}

export function showError(node, message) {
  const m = String(message || '');
  node.textContent = m.charAt(0).toUpperCase() + m.slice(1);
  node.hidden = !message;
}

/** The trimmed value of a form's `input` when `valid(value)` holds (the
 *  form's error, `errorNode`, is cleared); otherwise the error says
 *  `message`, the field gets the focus, and the answer is null. */
export function checkedValue(input, errorNode, valid, message) {
  const value = input.value.trim();
  if (!valid(value)) {
    showError(errorNode, message);
    input.focus();
    return null;
  }
  showError(errorNode, '');
  return value;
}

/** Runs `work` with `button` disabled, saying `busyText` meanwhile if
 *  given; the button comes back however `work` ends. */
export async function whileBusy(button, busyText, work) {
  const text = button.textContent;
  button.disabled = true;
  if (busyText) button.textContent = busyText;
  try {
    return await work();
  } finally {
    button.disabled = false;
    if (busyText) button.textContent = text;
  }
}
