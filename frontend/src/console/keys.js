/**
 * Every API key: owner, label, prefix, created, last used, expiry and its own limits; set
 * those limits, or revoke the key after a confirmation.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { t } from '../i18n/index.js';
import { Dialog } from '../theme/dialog.js';
import { toast } from '../theme/toast.js';
import { listKeys, revokeKey, setKeyQuota } from './api.js';
import { ErrorLine, Loading, limitText, when } from './common.js';
import { QuotaForm } from './users.js';

/** @param {any} key */
function keyStatus(key) {
  if (key.revoked_at) return 'revoked';
  if (!key.active) return 'expired';
  return 'active';
}

/** A key's own limits in one line ("—" when it has none). @param {Record<string, number|null>} q */
function ownLimits(q) {
  const parts = [];
  if (q.daily_requests != null) parts.push(`${t('console.quota.short.dailyRequests')} ${limitText(q.daily_requests)}`);
  if (q.daily_tokens != null) parts.push(`${t('console.quota.short.dailyTokens')} ${limitText(q.daily_tokens)}`);
  if (q.rpm != null) parts.push(`${t('console.quota.short.rpm')} ${limitText(q.rpm)}`);
  if (q.max_streams != null) parts.push(`${t('console.quota.short.maxStreams')} ${limitText(q.max_streams)}`);
  return parts.length ? parts.join(' · ') : '—';
}

export function KeysSection() {
  const [keys, setKeys] = useState(/** @type {any[]|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [confirm, setConfirm] = useState(/** @type {any} */ (null));
  const [limits, setLimits] = useState(/** @type {any} */ (null));
  const [showRevoked, setShowRevoked] = useState(false);
  const load = () =>
    listKeys()
      .then(setKeys)
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);
  const revoke = async () => {
    const key = confirm;
    setConfirm(null);
    try {
      await revokeKey(key.id);
      toast(t('console.keys.revokedToast', { prefix: key.prefix }));
      await load();
    } catch (e) {
      setError(e.message);
    }
  };
  const shown = (keys || []).filter((k) => showRevoked || !k.revoked_at);
  return html`<div class="console-section">
    <h2 class="section-title">${t('console.keys')}</h2>
    <section>
      <div class="row">
        <span class="spacer"></span>
        <label><input type="checkbox" checked=${showRevoked} onChange=${(e) => setShowRevoked(e.currentTarget.checked)} />
          ${' '}${t('console.keys.showRevoked')}</label>
      </div>
      <${ErrorLine} error=${error} />
      ${keys === null
        ? html`<${Loading} />`
        : shown.length === 0
          ? html`<p class="muted">${t('console.keys.none')}</p>`
          : html`<div class="table-wrap"><table class="table keys-admin-table">
              <thead><tr>
                <th scope="col">${t('console.keys.owner')}</th>
                <th scope="col">${t('console.keys.label')}</th>
                <th scope="col">${t('console.keys.prefix')}</th>
                <th scope="col">${t('console.keys.created')}</th>
                <th scope="col">${t('console.keys.lastUsed')}</th>
                <th scope="col">${t('console.keys.expires')}</th>
                <th scope="col">${t('console.keys.limits')}</th>
                <th scope="col">${t('console.users.status')}</th>
                <th scope="col"><span class="sr-only">${t('console.keys.actions')}</span></th>
              </tr></thead>
              <tbody>${shown.map(
                (key) => html`<tr key=${key.id} data-key-id=${key.id}>
                  <td>${key.user}</td>
                  <td>${key.name || '—'}</td>
                  <td class="nowrap"><code>${key.prefix}…</code></td>
                  <td>${when(key.created_at)}</td>
                  <td>${key.last_used_at ? when(key.last_used_at) : t('account.never')}</td>
                  <td>${key.expires_at ? when(key.expires_at) : t('console.keys.noExpiry')}</td>
                  <td>${ownLimits(key.quota || {})}</td>
                  <td><span class=${`badge status-${keyStatus(key)}`}>${t(`console.keys.${keyStatus(key)}`)}</span></td>
                  <td><div class="actions">
                    ${!key.revoked_at && html`<button type="button" class="btn" onClick=${() => setLimits(key)}
                      aria-label=${t('console.keys.limitsLabel', { prefix: key.prefix })}>${t('console.keys.setLimits')}</button>
                    <button type="button" class="btn btn-danger" onClick=${() => setConfirm(key)}
                      aria-label=${t('console.keys.revokeLabel', { prefix: key.prefix, user: key.user })}>${t('console.keys.revoke')}</button>`}
                  </div></td>
                </tr>`,
              )}</tbody>
            </table></div>`}
    </section>
    <${Dialog} open=${confirm !== null} onClose=${() => setConfirm(null)} title=${t('console.keys.revoke')}
      footer=${html`<button type="button" class="btn" onClick=${() => setConfirm(null)}>${t('common.cancel')}</button>
        <button type="button" class="btn btn-primary" onClick=${revoke}>${t('console.keys.revoke')}</button>`}>
      <p>${confirm && t('console.keys.revokeConfirm', { prefix: confirm.prefix, user: confirm.user })}</p>
    <//>
    <${Dialog} open=${limits !== null} onClose=${() => setLimits(null)}
      title=${limits ? t('console.keys.limitsLabel', { prefix: limits.prefix }) : ''}>
      ${limits && html`<${QuotaForm} own=${limits.quota || {}} idPrefix="key-quota" onCancel=${() => setLimits(null)}
        onSave=${async (values) => {
          await setKeyQuota(limits.id, values);
          toast(t('common.saved'));
          setLimits(null);
          await load();
        }} />`}
    <//>
  </div>`;
}
