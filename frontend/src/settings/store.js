/**
 * Each conversation's settings (model, system prompt, temperature, max tokens). The server
 * keeps them on the conversation and applies them to every message sent without its own; a new
 * chat keeps them here until its conversation exists, then they are saved onto it.
 */
import { signal } from '@preact/signals';
import { bus } from '../state.js';
import { changeConversation, getConversation } from '../api/conversations.js';

/** @typedef {{model: string|null, system: string|null, temperature: number|null, max_tokens: number|null}} Settings */

/** @returns {Settings} */
export const blank = () => ({ model: null, system: null, temperature: null, max_tokens: null });

/** What the next new chat will use. */
export const pending = signal(blank());
/** Settings known for conversations, by id. @type {import('@preact/signals').Signal<Record<string, Settings>>} */
export const known = signal({});

/** Keep the settings a conversation object carries. @param {any} conversation */
export function remember(conversation) {
  known.value = {
    ...known.value,
    [conversation.id]: {
      model: conversation.model ?? null,
      system: conversation.system ?? null,
      temperature: conversation.temperature ?? null,
      max_tokens: conversation.max_tokens ?? null,
    },
  };
}

// The chat fetches a conversation when it opens it; its settings come with it.
bus.addEventListener('conversation-loaded', (e) => remember(/** @type {CustomEvent} */ (e).detail));

/** Fetch a conversation's settings (and its messages, for the context view). */
export async function load(conversationId) {
  const conversation = await getConversation(conversationId);
  remember(conversation);
  return conversation;
}

/**
 * Save settings: onto the conversation, or as the pending ones of a new chat.
 * @param {string|null} conversationId
 * @param {Partial<Settings>} changes
 */
export async function save(conversationId, changes) {
  if (!conversationId) {
    pending.value = { ...pending.value, ...changes };
    return;
  }
  const body = { ...changes };
  if ('system' in body && body.system === null) body.system = '';
  remember(await changeConversation(conversationId, body));
}

/**
 * The fields to send with a message, so the model picker, temperature and max tokens apply.
 * @param {string|null} conversationId ('new' or null for a new chat)
 */
export function askParams(conversationId) {
  const source =
    !conversationId || conversationId === 'new' ? pending.value : known.value[conversationId];
  if (!source) return {};
  /** @type {Record<string, unknown>} */
  const params = {};
  if (source.model) params.model = source.model;
  if (source.temperature != null) params.temperature = source.temperature;
  if (source.max_tokens != null) params.max_tokens = source.max_tokens;
  if ((!conversationId || conversationId === 'new') && source.system) params.system = source.system;
  return params;
}

/** When a new chat's conversation appears, it takes the pending settings with it. */
function adopt(event) {
  const id = event.detail?.id;
  const wanted = pending.value;
  if (!id || known.value[id]) return;
  const changes = Object.fromEntries(Object.entries(wanted).filter(([, v]) => v != null));
  pending.value = blank();
  if (Object.keys(changes).length === 0) return;
  known.value = { ...known.value, [id]: { ...blank(), ...changes } };
  const { system, ...rest } = changes;
  // The system prompt went with the first message; the rest is stored for the next ones.
  if (Object.keys(rest).length) save(id, rest).catch(() => {});
}
bus.addEventListener('conversations-changed', adopt);
