/**
 * The admin console (`/admin/...`): a nav of its sections and the section the path names.
 * Loaded by `import()` only when an admin opens it, so the chat page's first load does not
 * carry it. A non-admin is told plainly they may not be here (the API refuses them with 403
 * anyway, so nothing is hidden only by the page).
 */
import { html } from 'htm/preact';
import { route, navigate, me } from '../state.js';
import { t } from '../i18n/index.js';
import './strings.js';
import './console.css';
import { UsersSection } from './users.js';
import { KeysSection } from './keys.js';
import { UsageSection } from './usage.js';
import { UpstreamsSection } from './upstreams.js';
import { AuditSection } from './audit.js';
import { SignupSection } from './signup.js';

const SECTIONS = [
  { id: 'users', view: UsersSection },
  { id: 'keys', view: KeysSection },
  { id: 'usage', view: UsageSection },
  { id: 'upstreams', view: UpstreamsSection },
  { id: 'audit', view: AuditSection },
  { id: 'signup', view: SignupSection },
];

/** The section a path names (`/admin` is the users). @param {string} path */
function sectionOf(path) {
  const name = path.replace(/^\/admin\/?/, '').split('/')[0] || 'users';
  return SECTIONS.find((s) => s.id === name) || null;
}

/** @param {MouseEvent} event @param {string} path */
function go(event, path) {
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(path);
}

export function Refused() {
  return html`<div class="page console-page">
    <div class="alert alert-error console-refused" role="alert">
      <strong>${t('console.refused')}</strong>
      <p>${t('console.refusedHint')}</p>
    </div>
    <a href="/" onClick=${(e) => go(e, '/')}>${t('console.backToChat')}</a>
  </div>`;
}

export default function Console() {
  if (!me.value || me.value.role !== 'admin') return html`<${Refused} />`;
  const current = sectionOf(route.value);
  const View = current ? current.view : null;
  return html`<div class="console">
    <nav class="console-nav" aria-label=${t('console.nav')}>
      <h1 class="console-title">${t('console.title')}</h1>
      <ul>
        ${SECTIONS.map(
          (s) => html`<li key=${s.id}>
            <a
              href=${`/admin/${s.id}`}
              aria-current=${current && current.id === s.id ? 'page' : undefined}
              onClick=${(e) => go(e, `/admin/${s.id}`)}
              >${t(`console.${s.id}`)}</a
            >
          </li>`,
        )}
      </ul>
    </nav>
    <div class="console-body">
      ${View
        ? html`<${View} key=${current.id} />`
        : html`<div class="alert alert-error" role="alert">${t('console.noSuchPage')}</div>`}
    </div>
  </div>`;
}
