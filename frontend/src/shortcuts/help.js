// Placeholder until the shortcuts land.
export function ShortcutsHelp() { return null; }
