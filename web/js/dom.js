// A small element builder. Text always goes in as text nodes, never as HTML, so data from the
// server cannot inject markup; event handlers are attached as listeners, never as attributes
// (the Content-Security-Policy forbids inline handlers and inline styles).

const BOOLEAN_PROPS = new Set(['disabled', 'checked', 'selected', 'hidden', 'required', 'readOnly', 'multiple', 'open']);

/**
 * h('button', {class: 'btn', type: 'button', onClick: fn}, 'Save')
 * Attributes: `class`, `dataset` (object), `on<Event>` (function), boolean properties, `value`,
 * and anything else as a string attribute (`aria-*`, `for`, `href`, `id`...). `null`,
 * `undefined` and `false` values are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'style' || /^on[a-z]/.test(name)) {
      throw new Error(`h(): "${name}" is not allowed (CSP): use a class or an onEvent listener`);
    }
    if (/^on[A-Z]/.test(name) && typeof value === 'function') {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (name === 'dataset') {
      for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) el.dataset[k] = v;
    } else if (BOOLEAN_PROPS.has(name)) {
      el[name] = Boolean(value);
    } else if (name === 'value') {
      el.value = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings, numbers, nested arrays); skips null/false. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
/** A document-unique id with a readable prefix. */
export function uniqueId(prefix = 'id') {
  uid += 1;
  return `${prefix}-${uid}`;
}
