// Placeholder until the login page lands.
import { html } from 'htm/preact';
export function Login() { return html`<p>login</p>`; }
