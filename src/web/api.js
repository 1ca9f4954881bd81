// Shared by the verify page and the console: calls to the Hallmark API, its JSON errors, and a
// small DOM builder. Text always goes in as text nodes (never as HTML), so nothing a file name or
// a manifest says can run in the page.

/** An error answer of the API: `{"code": "...", "message": "..."}` with its HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the API. `key`: bearer key; `json`: a body sent as JSON (or a ready string);
 * `body`: FormData / Blob as is; `as`: "json" (default), "text" or "blob".
 * Resolves with the parsed answer; rejects with an ApiError (status 0 when the server was not reached).
 */
export async function request(path, { method = 'GET', key, json, body, as = 'json', headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: 'omit', cache: 'no-store' };
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof json === 'string' ? json : JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, 'network_error', `The server could not be reached (${error.message}).`);
  }
  if (!response.ok) throw await errorOf(response);
  if (as === 'blob') return response.blob();
  if (as === 'text') return response.text();
  if (response.status === 204) return null;
  return response.json();
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || 'request failed';
  try {
    const body = await response.json();
    if (body && typeof body.code === 'string') code = body.code;
    if (body && typeof body.message === 'string') message = body.message;
  } catch {
    // Not JSON (a proxy's page, say): keep the status.
  }
  return new ApiError(response.status, code, message);
}

/** One `file` part per file, names kept. */
export function filesForm(files) {
  const form = new FormData();
  for (const file of files) form.append('file', file, file.name);
  return form;
}

/**
 * el('p', {class: 'x', text: 'hi', onclick: fn, 'aria-label': 'y'}, child, 'text', ...):
 * `text` sets textContent, `on*` functions become listeners, `class` the class list, `hidden`,
 * `disabled` and other booleans are set as properties when true; everything else is an attribute.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name === 'class') node.className = value;
    else if (name.startsWith('on') && typeof value === 'function') node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, '');
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A message box for an error: its code and message, in words. */
export function errorBox(error, lead) {
  const code = error instanceof ApiError ? error.code : 'error';
  return el('div', { class: 'message error', role: 'alert' },
    lead ? el('p', { text: lead }) : null,
    el('p', {}, el('span', { class: 'code', text: code }), error.message || String(error)));
}

/** "2025-01-02 13:45:06 UTC" style, in the reader's local time zone. */
export function formatTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** abcdef…7890 for long hex strings. */
export function shortHash(hex, keep = 10) {
  if (!hex) return '—';
  return hex.length > keep * 2 + 1 ? `${hex.slice(0, keep)}…${hex.slice(-6)}` : hex;
}

/** Object URLs made by a view, released together when it is redrawn. */
export class UrlBag {
  constructor() { this.urls = []; }
  add(blob) {
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    return url;
  }
  clear() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }
}

/** Wires drag-over styling on a drop zone whose file input covers it. */
export function dropZone(zone, input, onFiles) {
  const on = () => zone.classList.add('dragging');
  const off = () => zone.classList.remove('dragging');
  zone.addEventListener('dragenter', on);
  zone.addEventListener('dragover', on);
  zone.addEventListener('dragleave', off);
  zone.addEventListener('drop', off);
  input.addEventListener('change', () => {
    const files = Array.from(input.files || []);
    if (files.length) onFiles(files);
    input.value = '';
  });
}
