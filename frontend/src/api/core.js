// How the page talks to chatgate's native API: same-origin requests with the login cookie,
// JSON bodies (the server refuses cookie writes that are not JSON), errors in one shape.

export class ApiError extends Error {
  /** @param {number} status @param {string | null} code @param {string} message @param {string | null} [type] */
  constructor(status, code, message, type = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.type = type;
  }
}

/** @param {Response} res */
async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const e = body && (body.error || body.detail) ? body.error || body : null;
  const message =
    (e && typeof e.message === 'string' && e.message) ||
    (body && typeof body.detail === 'string' && body.detail) ||
    `${res.status} ${res.statusText}`;
  return new ApiError(res.status, (e && e.code) || null, message, (e && e.type) || null);
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {{signal?: AbortSignal, headers?: Record<string, string>}} [opts]
 * @returns {Promise<any>} parsed JSON, or null for an empty answer
 */
export async function request(method, path, body, opts = {}) {
  const headers = { accept: 'application/json', ...(opts.headers || {}) };
  /** @type {RequestInit} */
  const init = { method, headers, credentials: 'same-origin', signal: opts.signal };
  if (body !== undefined) {
    if (body instanceof FormData) init.body = body;
    else {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  if (type.includes('json')) return res.json();
  return res.text();
}

/**
 * Server-sent events from a POST or GET: calls `onEvent(name, data, id)` for each event and
 * resolves when the stream ends. Rejects with ApiError when the answer is not a stream.
 * @param {string} method
 * @param {string} path
 * @param {unknown} body
 * @param {(name: string, data: any, id: string | null) => void} onEvent
 * @param {{signal?: AbortSignal, headers?: Record<string, string>}} [opts]
 */
export async function sse(method, path, body, onEvent, opts = {}) {
  const headers = { accept: 'text/event-stream', ...(opts.headers || {}) };
  /** @type {RequestInit} */
  const init = { method, headers, credentials: 'same-origin', signal: opts.signal };
  if (body !== undefined && body !== null) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  const type = res.headers.get('content-type') || '';
  if (!type.includes('text/event-stream')) {
    // A whole JSON answer: hand it over as one event.
    onEvent('json', await res.json(), null);
    return;
  }
  const reader = /** @type {ReadableStream<Uint8Array>} */ (res.body)
    .pipeThrough(new TextDecoderStream())
    .getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const raw = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
      dispatch(raw, onEvent);
    }
  }
  if (buf.trim()) dispatch(buf, onEvent);
}

/** @param {string} raw @param {(name: string, data: any, id: string | null) => void} onEvent */
function dispatch(raw, onEvent) {
  let name = 'message';
  let id = null;
  const data = [];
  for (const line of raw.split(/\r?\n/)) {
    if (!line || line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') name = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  }
  if (!data.length) return;
  const text = data.join('\n');
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  onEvent(name, parsed, id);
}
