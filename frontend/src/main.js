// Entry point: styles, then the app into #app.
import { render } from 'preact';
import { html } from 'htm/preact';
import './theme/theme.css';
import './app.css';
import './chat/chat.css';
import './markdown/markdown.css';
import { App } from './app.js';

render(html`<${App} />`, /** @type {HTMLElement} */ (document.getElementById('app')));
