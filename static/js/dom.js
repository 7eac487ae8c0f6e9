// DOM helpers. Everything that reaches the page goes through h(): strings
// become text nodes and attribute values, never markup, so user text cannot
// turn into HTML whatever it contains.

/** Create an element: h('p', {class: 'x', dataset: {key: 'k'}}, 'text', child). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'text') el.textContent = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'hidden') el.hidden = true;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child); // a string becomes a text node
  }
}

/** Text that screen readers read but the eye does not need (context for a button). */
export function hidden(text) {
  return h('span', { class: 'visually-hidden' }, text);
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export function byId(id) {
  return document.getElementById(id);
}

/**
 * Keep `list`'s children in step with `items`, reusing each element while its
 * signature is unchanged. Rebuilding an element would lose the focus, open
 * <details> and half-typed drafts inside it, so those are carried over by
 * their data-key: a keyboard user who presses Vote stays on that Vote button
 * even when the question moves up the list.
 */
export function reconcile(list, items, { key, sig, build }) {
  const cache = list._cache || (list._cache = new Map());
  const active = document.activeElement;
  const activeKey = active && list.contains(active) ? active.dataset.key : undefined;
  const selection = activeKey && 'selectionStart' in active
    ? [active.selectionStart, active.selectionEnd] : null;
  const next = new Map();
  const wanted = [];
  for (const item of items) {
    const k = key(item);
    const s = sig(item);
    let entry = cache.get(k);
    if (!entry || entry.sig !== s) {
      const el = build(item);
      if (entry) carryOver(entry.el, el);
      entry = { sig: s, el };
    }
    next.set(k, entry);
    wanted.push(entry.el);
  }
  for (const [k, entry] of cache) {
    if (!next.has(k)) entry.el.remove();
  }
  list._cache = next;
  // Move only what is out of place, so unchanged rows are left alone.
  let cursor = list.firstElementChild;
  for (const el of wanted) {
    if (el === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      list.insertBefore(el, cursor);
    }
  }
  while (cursor) {
    const after = cursor.nextElementSibling;
    cursor.remove();
    cursor = after;
  }
  if (activeKey && document.activeElement !== active) {
    const again = list.querySelector(`[data-key="${CSS.escape(activeKey)}"]`);
    if (again) {
      again.focus({ preventScroll: true });
      if (selection && 'setSelectionRange' in again) again.setSelectionRange(...selection);
    }
  }
}

function carryOver(from, to) {
  // An open menu button's menu (actions-menu.js) stays open too.
  for (const b of from.querySelectorAll('[aria-expanded="true"][aria-controls][data-key]')) {
    const same = to.querySelector(`[data-key="${CSS.escape(b.dataset.key)}"]`);
    const menu = same && to.querySelector(`#${CSS.escape(same.getAttribute('aria-controls') || '')}`);
    if (menu) {
      same.setAttribute('aria-expanded', 'true');
      menu.hidden = false;
    }
  }
  for (const d of from.querySelectorAll('details[open][data-key]')) {
    const same = to.querySelector(`details[data-key="${CSS.escape(d.dataset.key)}"]`);
    if (same) same.open = true;
  }
  for (const t of from.querySelectorAll('textarea[data-key], input[data-key]')) {
    const same = to.querySelector(`[data-key="${CSS.escape(t.dataset.key)}"]`);
    if (same && t.value) same.value = t.value;
  }
}
