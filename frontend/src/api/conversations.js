/**
 * The conversation routes of the native API that the sidebar and the settings use: the list
 * (paged by cursor, searched with `q`), rename, pin, delete, the context preview, export and
 * import. The chat's own message routes live in chat.js.
 */
import { request, ApiError } from './core.js';

const BASE = '/api/v1/conversations';
const id = (value) => encodeURIComponent(value);

/**
 * One page of the user's conversations, newest first.
 * @param {{limit?: number, cursor?: string|null, q?: string}} options
 */
export function listConversations({ limit = 30, cursor = null, q = '' } = {}) {
  const params = new URLSearchParams({ limit: String(limit), pinned_first: 'true' });
  if (cursor) params.set('cursor', cursor);
  if (q) params.set('q', q);
  return request('GET', `${BASE}?${params}`);
}

export function getConversation(conversationId) {
  return request('GET', `${BASE}/${id(conversationId)}`);
}

/** @param {{title?: string, system?: string, model?: string}} fields */
export function createConversation(fields) {
  return request('POST', BASE, fields);
}

/** @param {{title?: string, system?: string, pinned?: boolean, model?: string}} fields */
export function changeConversation(conversationId, fields) {
  return request('PATCH', `${BASE}/${id(conversationId)}`, fields);
}

/** Pin a conversation to the top of the list, or unpin it. */
export function pinConversation(conversationId, pinned) {
  return request('PATCH', `${BASE}/${id(conversationId)}`, { pinned });
}

export function deleteConversation(conversationId) {
  return request('DELETE', `${BASE}/${id(conversationId)}`);
}

/** Which earlier turns the next question would send, and how many tokens they take. */
export function contextPreview(conversationId, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const suffix = query.size ? `?${query}` : '';
  return request('GET', `${BASE}/${id(conversationId)}/context${suffix}`);
}

/** The export as text: Markdown of the current path, or JSON of the whole tree. */
export function exportConversation(conversationId, format) {
  return request('GET', `${BASE}/${id(conversationId)}/export?format=${format}`, undefined, {
    headers: { accept: format === 'md' ? 'text/markdown' : 'application/json' },
  });
}

/**
 * Import a ChatGPT export: the .zip as downloaded, or its conversations.json, sent as it is.
 * @param {File} file
 */
export async function importChatGPT(file) {
  const zip = /\.zip$/i.test(file.name) || file.type === 'application/zip';
  const response = await fetch(`${BASE}/import`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { accept: 'application/json', 'content-type': zip ? 'application/zip' : 'application/json' },
    body: file,
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  if (!response.ok) {
    const error = body?.error || {};
    throw new ApiError(
      response.status,
      error.code || null,
      error.message || `${response.status} ${response.statusText}`,
      error.type || null,
    );
  }
  return body;
}
