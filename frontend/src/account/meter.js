// Placeholder until the meter lands.
export function Meter() { return null; }
