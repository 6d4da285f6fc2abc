// Placeholder until the settings panel lands.
export function ConversationSettings() { return null; }
/** @param {string | null} _id */
export function askParams(_id) { return {}; }
