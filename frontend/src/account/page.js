// Placeholder until the account page lands.
import { html } from 'htm/preact';
export function AccountPage() { return html`<p>account</p>`; }
