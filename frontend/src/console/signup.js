/**
 * Sign-up settings: off, open with approval, or by invite; the invites, made (their code and
 * link are shown once), listed and withdrawn.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { t, formatNumber } from '../i18n/index.js';
import { Dialog } from '../theme/dialog.js';
import { toast } from '../theme/toast.js';
import { signupMode, setSignupMode, listInvites, createInvite, deleteInvite } from './api.js';
import { ErrorLine, Loading, when } from './common.js';
import { ShownOnce } from './users.js';

const MODES = ['off', 'approval', 'invite'];

export function SignupSection() {
  const [mode, setMode] = useState(/** @type {string|null} */ (null));
  const [invites, setInvites] = useState(/** @type {any[]|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [made, setMade] = useState(/** @type {any} */ (null));
  const [confirm, setConfirm] = useState(/** @type {any} */ (null));
  const load = () =>
    Promise.all([signupMode(), listInvites()])
      .then(([m, list]) => {
        setMode(m.mode);
        setInvites(list);
      })
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, []);

  const change = async (value) => {
    setError(null);
    try {
      setMode((await setSignupMode(value)).mode);
      toast(t('console.signup.saved'));
    } catch (e) {
      setError(e.message);
    }
  };
  const create = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    setError(null);
    try {
      const invite = await createInvite({
        uses: Number(data.get('uses') || 1),
        expires_in_hours: Number(data.get('hours') || 168),
        role: String(data.get('role') || 'user'),
        note: String(data.get('note') || '').trim() || undefined,
      });
      setMade({ ...invite, link: new URL(invite.url, location.origin).href });
      form.reset();
      await load();
    } catch (e) {
      setError(e.message);
    }
  };
  const remove = async () => {
    const invite = confirm;
    setConfirm(null);
    try {
      await deleteInvite(invite.id);
      await load();
    } catch (e) {
      setError(e.message);
    }
  };
  const now = Date.now() / 1000;

  return html`<div class="console-section">
    <h2 class="section-title">${t('console.signup')}</h2>
    <${ErrorLine} error=${error} />
    <section aria-labelledby="signup-mode-title">
      <h2 id="signup-mode-title">${t('console.signup.mode')}</h2>
      ${mode === null
        ? html`<${Loading} />`
        : html`<fieldset class="plain modes">
            <legend class="sr-only">${t('console.signup.mode')}</legend>
            ${MODES.map(
              (m) => html`<label key=${m} class="mode-choice">
                <input type="radio" name="signup-mode" value=${m} checked=${mode === m} onChange=${() => change(m)} />
                <span><strong>${t(`console.signup.${m}`)}</strong><br /><span class="muted">${t(`console.signup.${m}Hint`)}</span></span>
              </label>`,
            )}
          </fieldset>`}
    </section>
    <section aria-labelledby="invites-title">
      <h2 id="invites-title">${t('console.invites')}</h2>
      <form class="invite-form" onSubmit=${create}>
        <div class="field"><label for="invite-uses">${t('console.invites.uses')}</label>
          <input id="invite-uses" name="uses" type="number" min="1" max="10000" value="1" class="input" /></div>
        <div class="field"><label for="invite-hours">${t('console.invites.hours')}</label>
          <input id="invite-hours" name="hours" type="number" min="1" step="1" value="168" class="input" /></div>
        <div class="field"><label for="invite-role">${t('console.users.role')}</label>
          <select id="invite-role" name="role" class="input">
            <option value="user">${t('console.role.user')}</option>
            <option value="admin">${t('console.role.admin')}</option>
          </select></div>
        <div class="field"><label for="invite-note">${t('console.invites.note')}</label>
          <input id="invite-note" name="note" class="input" maxlength="255" /></div>
        <div class="field invite-submit"><button type="submit" class="btn btn-primary">${t('console.invites.create')}</button></div>
      </form>
      ${made &&
      html`<${ShownOnce} label=${t('console.invites.link')} hint=${t('console.invites.once')} value=${made.link} attr="data-invite-link" />
        <p class="muted">${t('console.invites.code')}: <code data-invite-code>${made.code}</code></p>`}
      ${invites === null
        ? html`<${Loading} />`
        : invites.length === 0
          ? html`<p class="muted">${t('console.invites.none')}</p>`
          : html`<div class="table-wrap"><table class="table invites-table">
              <thead><tr>
                <th scope="col">${t('console.invites.prefix')}</th>
                <th scope="col">${t('console.invites.note')}</th>
                <th scope="col">${t('console.users.role')}</th>
                <th scope="col">${t('console.invites.used')}</th>
                <th scope="col">${t('console.invites.expires')}</th>
                <th scope="col">${t('console.invites.by')}</th>
                <th scope="col"><span class="sr-only">${t('console.invites.delete')}</span></th>
              </tr></thead>
              <tbody>${invites.map(
                (i) => html`<tr key=${i.id} data-invite=${i.id}>
                  <td><code>${i.prefix}…</code></td>
                  <td>${i.note || '—'}</td>
                  <td>${t(`console.role.${i.role}`)}</td>
                  <td class="num">${formatNumber(i.used)} / ${formatNumber(i.uses)}</td>
                  <td class=${i.expires_at < now ? 'muted' : ''}>${when(i.expires_at)}${i.expires_at < now ? ` (${t('console.invites.expired')})` : ''}</td>
                  <td>${i.created_by}</td>
                  <td><button type="button" class="btn btn-danger" onClick=${() => setConfirm(i)}
                    aria-label=${t('console.invites.deleteLabel', { prefix: i.prefix })}>${t('console.invites.delete')}</button></td>
                </tr>`,
              )}</tbody>
            </table></div>`}
    </section>
    <${Dialog} open=${confirm !== null} onClose=${() => setConfirm(null)} title=${t('console.invites.delete')}
      footer=${html`<button type="button" class="btn" onClick=${() => setConfirm(null)}>${t('common.cancel')}</button>
        <button type="button" class="btn btn-primary" onClick=${remove}>${t('console.invites.delete')}</button>`}>
      <p>${confirm && t('console.invites.deleteConfirm', { prefix: confirm.prefix })}</p>
    <//>
  </div>`;
}
