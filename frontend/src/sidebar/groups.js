/**
 * How the sidebar groups conversations: pinned ones first, then by the day they last changed
 * (today, yesterday, the previous 7 days), then by month. Days are the browser's local days.
 */
import { t, formatMonth } from '../i18n/index.js';

const DAY = 24 * 60 * 60 * 1000;

function startOfDay(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/**
 * The group's key and label for a conversation last changed at `seconds`.
 * @param {number} seconds
 * @param {number} now milliseconds
 */
export function groupOf(seconds, now = Date.now()) {
  const ms = seconds * 1000;
  const today = startOfDay(now);
  if (ms >= today) return { key: 'today', label: t('sidebar.today') };
  if (ms >= today - DAY) return { key: 'yesterday', label: t('sidebar.yesterday') };
  if (ms >= today - 7 * DAY) return { key: 'week', label: t('sidebar.week') };
  const d = new Date(ms);
  return { key: `m${d.getFullYear()}-${d.getMonth()}`, label: formatMonth(d) };
}

/**
 * Conversations (newest first) in their groups, in order; pinned ones make the first group.
 * @template {{updated_at: number, pinned?: boolean}} C
 * @param {C[]} conversations
 * @returns {{key: string, label: string, items: C[]}[]}
 */
export function groupConversations(conversations, now = Date.now()) {
  /** @type {{key: string, label: string, items: C[]}[]} */
  const groups = [];
  const pinned = conversations.filter((c) => c.pinned);
  if (pinned.length) groups.push({ key: 'pinned', label: t('sidebar.pinned'), items: pinned });
  for (const c of conversations) {
    if (c.pinned) continue;
    const { key, label } = groupOf(c.updated_at, now);
    const last = groups[groups.length - 1];
    if (last && last.key === key) last.items.push(c);
    else groups.push({ key, label, items: [c] });
  }
  return groups;
}
