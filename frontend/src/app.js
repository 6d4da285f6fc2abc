// The page's layout: the sidebar beside the chat, a top bar above, and the routes
// (`/` new chat, `/c/{id}`, `/login`, `/account`, the console `/admin/...`, `/setup`).
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { me, route, navigate, conversationId, conversationOf } from './state.js';
import { request, ApiError } from './api/core.js';
import { Sidebar, SidebarToggle } from './sidebar/sidebar.js';
import { Login } from './login/login.js';
import { AccountPage } from './account/page.js';
import { Meter } from './account/meter.js';
import { ConversationSettings } from './settings/panel.js';
import { ShortcutsHelp } from './shortcuts/help.js';
import { Chat } from './chat/chat.js';
import { t } from './i18n/index.js';
import './chat/strings.js';
import { convFor } from './chat/store.js';

// A conversation opened by its address is asked for at once, beside "who am I", not after it.
const opening = conversationOf(location.pathname);
if (opening) convFor(opening);

async function whoAmI() {
  try {
    const body = await request('GET', '/api/v1/auth/me');
    me.value = body && body.user ? body.user : body;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) me.value = null;
    else throw e;
  }
}

/**
 * A page that is loaded only when opened (`import()`), so that the chat's first load does not
 * carry it: the admin console, the first run's setup.
 * @param {{load: () => Promise<{default: any}>}} props
 */
function Later({ load }) {
  const [view, setView] = useState(/** @type {any} */ (null));
  const [failed, setFailed] = useState(/** @type {string|null} */ (null));
  useEffect(() => {
    load()
      .then((module) => setView(() => module.default))
      .catch((e) => setFailed(String(e && e.message ? e.message : e)));
  }, [load]);
  if (failed) return html`<div class="alert alert-error" role="alert">${failed}</div>`;
  if (!view) return html`<div class="boot" aria-busy="true"></div>`;
  const View = view;
  return html`<${View} />`;
}
const loadConsole = () => import('./console/console.js');
const loadSetup = () => import('./setup/setup.js');

// Asked at once too, not after the first frame.
whoAmI().catch(() => {
  me.value = null;
});

function TopBar() {
  const onChat = route.value === '/' || route.value.startsWith('/c/');
  return html`<header class="topbar">
    <${SidebarToggle} />
    <a class="brand" href="/" onClick=${(/** @type {MouseEvent} */ e) => {
      e.preventDefault();
      navigate('/');
    }}>chatgate</a>
    <div class="topbar-fill"></div>
    ${onChat && html`<${ConversationSettings} />`}
    <${Meter} />
    ${me.value?.role === 'admin' &&
    html`<a class="topbar-link" href="/admin" aria-current=${route.value.startsWith('/admin') ? 'page' : undefined}
      onClick=${(/** @type {MouseEvent} */ e) => {
        e.preventDefault();
        navigate('/admin');
      }}>${t('nav.admin')}</a>`}
    <a class="topbar-link" href="/account" onClick=${(/** @type {MouseEvent} */ e) => {
      e.preventDefault();
      navigate('/account');
    }}>${t('nav.account')}</a>
  </header>`;
}

export function App() {
  const path = route.value;
  useEffect(() => {
    conversationId.value = conversationOf(path);
  }, [path]);

  useEffect(() => {
    if (me.value === null && path !== '/login' && path !== '/setup') navigate('/login', { replace: true });
  }, [me.value, path]);

  if (path === '/setup') return html`<${Later} load=${loadSetup} />`;
  if (me.value === undefined) return html`<div class="boot" aria-busy="true"></div>`;
  if (path === '/login' || me.value === null) return html`<main class="page-login"><${Login} /></main>`;

  let main;
  if (path.startsWith('/account')) main = html`<${AccountPage} />`;
  else if (path === '/admin' || path.startsWith('/admin/')) main = html`<${Later} load=${loadConsole} />`;
  else main = html`<${Chat} />`;

  return html`<div class="layout">
    <${Sidebar} />
    <div class="main-col">
      <${TopBar} />
      <main id="main" class="main">${main}</main>
    </div>
    <${ShortcutsHelp} />
  </div>`;
}
