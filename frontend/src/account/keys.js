/**
 * One's own API keys: create (the key is shown once, with snippets that use it), list, revoke
 * (after a confirmation).
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { listKeys, createKey, revokeKey } from '../api/account.js';
import { t, formatDate } from '../i18n/index.js';
import { CopyButton } from '../theme/copy.js';
import { Dialog } from '../theme/dialog.js';
import { defaultModel, loadModels } from '../settings/models.js';
import { snippets } from './snippets.js';

function Snippets({ secret }) {
  const [tab, setTab] = useState('python');
  const list = snippets({
    base: `${location.origin}/v1`,
    key: secret || 'YOUR_CHATGATE_KEY',
    model: defaultModel.value || 'demo',
  });
  const current = list.find((s) => s.id === tab) || list[0];
  return html`<div class="snippets">
    <div class="tabs" role="tablist" aria-label=${t('account.snippets')}>
      ${list.map(
        (s) => html`<button
          type="button"
          role="tab"
          id=${`snippet-tab-${s.id}`}
          aria-selected=${s.id === current.id ? 'true' : 'false'}
          aria-controls="snippet-panel"
          tabindex=${s.id === current.id ? 0 : -1}
          onClick=${() => setTab(s.id)}
          onKeyDown=${(e) => {
            const i = list.indexOf(s);
            const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
            if (!step) return;
            const next = list[(i + step + list.length) % list.length];
            setTab(next.id);
            document.getElementById(`snippet-tab-${next.id}`)?.focus();
          }}
        >
          ${s.label}
        </button>`,
      )}
    </div>
    <div class="snippet" id="snippet-panel" role="tabpanel" aria-labelledby=${`snippet-tab-${current.id}`}>
      <pre tabindex="0"><code data-snippet=${current.id}>${current.text}</code></pre>
      <${CopyButton} text=${current.text} />
    </div>
  </div>`;
}

function status(key) {
  if (key.revoked_at) return t('account.revoked');
  if (!key.active) return t('account.expired');
  return t('account.active');
}

export function Keys() {
  const [keys, setKeys] = useState(/** @type {any[]|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [created, setCreated] = useState(/** @type {any|null} */ (null));
  const [busy, setBusy] = useState(false);
  const [confirm, setConfirm] = useState(/** @type {any|null} */ (null));

  const load = () =>
    listKeys()
      .then(setKeys)
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
    loadModels();
  }, []);

  const create = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const name = String(new FormData(form).get('name') || '').trim();
    setBusy(true);
    setError(null);
    try {
      setCreated(await createKey(name));
      form.reset();
      await load();
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };

  const revoke = async () => {
    const key = confirm;
    setConfirm(null);
    try {
      await revokeKey(key.id);
      if (created && created.id === key.id) setCreated(null);
      await load();
    } catch (e) {
      setError(e.message);
    }
  };

  const shown = (keys || []).filter((k) => !k.revoked_at);
  return html`<section aria-labelledby="keys-title">
    <h2 id="keys-title">${t('account.keys')}</h2>
    <p class="muted">${t('account.keysIntro')}</p>
    ${error && html`<div class="alert alert-error" role="alert">${error}</div>`}
    <form class="row" onSubmit=${create}>
      <label for="key-name" class="sr-only">${t('account.keyName')}</label>
      <input
        id="key-name"
        name="name"
        class="input"
        style="flex: 1; min-width: 10rem"
        maxlength="128"
        placeholder=${t('account.keyNamePlaceholder')}
        aria-label=${t('account.keyName')}
      />
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t('account.create')}</button>
    </form>
    ${created &&
    html`<div class="alert new-key" role="status">
      <strong>${t('account.newKey')}${created.name ? ` — ${created.name}` : ''}</strong>
      <p>${t('account.newKeyHint')}</p>
      <div class="secret" style="margin-top: 0.5rem">
        <code data-new-key>${created.key}</code>
        <${CopyButton} text=${created.key} label=${t('account.copyKey')} />
      </div>
    </div>`}
    <h3>${t('account.snippets')}</h3>
    <${Snippets} secret=${created?.key} />
    ${keys === null
      ? html`<p class="muted">${t('common.loading')}</p>`
      : shown.length === 0
        ? html`<p class="muted">${t('account.noKeys')}</p>`
        : html`<div class="table-wrap">
            <table class="table keys-table">
              <thead>
                <tr>
                  <th scope="col">${t('account.nameCol')}</th>
                  <th scope="col">${t('account.keyCol')}</th>
                  <th scope="col">${t('account.createdCol')}</th>
                  <th scope="col">${t('account.lastUsedCol')}</th>
                  <th scope="col">${t('account.statusCol')}</th>
                  <th scope="col"><span class="sr-only">${t('account.revoke')}</span></th>
                </tr>
              </thead>
              <tbody>
                ${shown.map(
                  (key) => html`<tr key=${key.id} data-key-id=${key.id}>
                    <td>${key.name || '—'}</td>
                    <td><code>${key.prefix}…</code></td>
                    <td>${formatDate(key.created_at)}</td>
                    <td>${key.last_used_at ? formatDate(key.last_used_at) : t('account.never')}</td>
                    <td>${status(key)}</td>
                    <td>
                      <button
                        type="button"
                        class="btn btn-danger"
                        aria-label=${t('account.revokeLabel', { name: key.name || key.prefix })}
                        onClick=${() => setConfirm(key)}
                      >
                        ${t('account.revoke')}
                      </button>
                    </td>
                  </tr>`,
                )}
              </tbody>
            </table>
          </div>`}
    <${Dialog}
      open=${confirm !== null}
      onClose=${() => setConfirm(null)}
      title=${t('account.revoke')}
      footer=${html`<button type="button" class="btn" onClick=${() => setConfirm(null)}>
          ${t('common.cancel')}
        </button>
        <button type="button" class="btn btn-primary" onClick=${revoke}>${t('account.revoke')}</button>`}
    >
      <p>${confirm && t('account.revokeConfirm', { name: confirm.name || confirm.prefix })}</p>
    <//>
  </section>`;
}
