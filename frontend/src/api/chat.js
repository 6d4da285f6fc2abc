// The chat's routes: conversations with their trees, sending and branching (streamed, resumable
// replies, continuing a cut one), reattaching to a running reply, stopping one, switching branch.
import { request, sse } from './core.js';

const C = '/api/v1/conversations';

/** @param {string} id */
export const getConversation = (id) => request('GET', `${C}/${encodeURIComponent(id)}`);

/** @param {string} id @param {string} leaf */
export const setLeaf = (id, leaf) =>
  request('PATCH', `${C}/${encodeURIComponent(id)}`, { current_leaf_id: leaf });

/**
 * @typedef {(name: string, data: any, id: string | null) => void} OnEvent
 * @typedef {{signal?: AbortSignal}} Opts
 */

/**
 * Ask a question after `parent_id` (a new conversation when `conversation` is null).
 * @param {string | null} conversation @param {Record<string, unknown>} body @param {OnEvent} on @param {Opts} [opts]
 */
export function sendMessage(conversation, body, on, opts) {
  const id = conversation ? encodeURIComponent(conversation) : 'new';
  return sse('POST', `${C}/${id}/messages`, { ...body, stream: true, resumable: true }, on, opts);
}

/** @param {string} conversation @param {string} messageId @param {Record<string, unknown>} params @param {OnEvent} on @param {Opts} [opts] */
export function regenerate(conversation, messageId, params, on, opts) {
  const path = `${C}/${encodeURIComponent(conversation)}/messages/${encodeURIComponent(messageId)}/regenerate`;
  return sse('POST', path, { ...params, stream: true, resumable: true }, on, opts);
}

/**
 * Go on with the reply `messageId`, cut at the token limit: only the new text streams, and the
 * reply is stored as a new version of it holding the old text and the new.
 * @param {string} conversation @param {string} messageId @param {Record<string, unknown>} params @param {OnEvent} on @param {Opts} [opts]
 */
export function continueReply(conversation, messageId, params, on, opts) {
  const path = `${C}/${encodeURIComponent(conversation)}/messages`;
  return sse('POST', path, { ...params, continue: messageId, stream: true, resumable: true }, on, opts);
}

/** @param {string} conversation @param {string} messageId @param {string} content @param {Record<string, unknown>} params @param {OnEvent} on @param {Opts} [opts] */
export function edit(conversation, messageId, content, params, on, opts) {
  const path = `${C}/${encodeURIComponent(conversation)}/messages/${encodeURIComponent(messageId)}/edit`;
  return sse('POST', path, { ...params, content, stream: true, resumable: true }, on, opts);
}

/** Replies of a conversation that are running or just ended. @param {string} conversation */
export const runningReplies = (conversation) =>
  request('GET', `/api/v1/replies?conversation_id=${encodeURIComponent(conversation)}`);

/** Follow a reply from after event `after`. @param {string} replyId @param {number} after @param {OnEvent} on @param {Opts} [opts] */
export function attach(replyId, after, on, opts) {
  const headers = after > 0 ? { 'last-event-id': String(after) } : undefined;
  return sse('GET', `/api/v1/replies/${encodeURIComponent(replyId)}/events`, null, on, { ...opts, headers });
}

/** @param {string} replyId */
export const cancelReply = (replyId) =>
  request('POST', `/api/v1/replies/${encodeURIComponent(replyId)}/cancel`);
