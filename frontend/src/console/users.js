/**
 * Users: search, role, status (and whether a one-time password is still to be replaced) and
 * today's use against each effective limit; create one (with a generated password shown once,
 * one-time unless unticked, or an invite link), approve, disable and enable, reset a password
 * (chosen, or generated and one-time), change a role, set quotas, and import many from a CSV
 * with a report per row.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { t, formatNumber } from '../i18n/index.js';
import { me } from '../state.js';
import { CopyButton } from '../theme/copy.js';
import { Dialog } from '../theme/dialog.js';
import { toast } from '../theme/toast.js';
import { listUsers, createUser, patchUser, setUserQuota, createInvite } from './api.js';
import { ErrorLine, Loading, UsedOf, limitText } from './common.js';
import { ImportUsers } from './import.js';

/** @param {any} user */
export function statusOf(user) {
  if (user.status && user.status !== 'active') return user.status;
  return user.disabled ? 'disabled' : 'active';
}

/** A secret shown once, with a copy button. @param {{label: string, value: string, hint: string, attr?: string}} props */
export function ShownOnce({ label, value, hint, attr = 'data-secret' }) {
  return html`<div class="alert shown-once" role="status">
    <strong>${label}</strong>
    <p>${hint}</p>
    <div class="secret"><code ...${{ [attr]: '' }}>${value}</code><${CopyButton} text=${value} /></div>
  </div>`;
}

const QUOTA_FIELDS = [
  ['daily_requests', 'console.quota.dailyRequests'],
  ['daily_tokens', 'console.quota.dailyTokens'],
  ['rpm', 'console.quota.rpm'],
  ['max_streams', 'console.quota.maxStreams'],
];

/**
 * The limits form, for a user or a key: an empty field means the default, -1 no limit.
 * @param {{own: Record<string, number|null>, effective?: Record<string, number|null>, idPrefix: string,
 *   onSave: (limits: Record<string, number|null>) => Promise<void>, onCancel: () => void}} props
 */
export function QuotaForm({ own, effective, idPrefix, onSave, onCancel }) {
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    /** @type {Record<string, number|null>} */
    const limits = {};
    for (const [field] of QUOTA_FIELDS) {
      const raw = String(form.get(field) ?? '').trim();
      if (raw === '') limits[field] = null;
      else if (/^-?\d+$/.test(raw) && Number(raw) >= -1) limits[field] = Number(raw);
      else return setError(t('console.quota.bad', { value: raw }));
    }
    setBusy(true);
    setError(null);
    try {
      await onSave(limits);
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  };
  return html`<form class="quota-form" onSubmit=${submit}>
    <p class="muted">${t('console.quota.hint')}</p>
    <${ErrorLine} error=${error} />
    <div class="settings-grid">
      ${QUOTA_FIELDS.map(
        ([field, label]) => html`<div class="field" key=${field}>
          <label for=${`${idPrefix}-${field}`}>${t(label)}</label>
          <input id=${`${idPrefix}-${field}`} name=${field} class="input" inputmode="numeric"
            value=${own[field] == null ? '' : String(own[field])}
            placeholder=${effective ? limitText(effective[field]) : t('common.default')} />
        </div>`,
      )}
    </div>
    <div class="row">
      <span class="spacer"></span>
      <button type="button" class="btn" onClick=${onCancel}>${t('common.cancel')}</button>
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t('common.save')}</button>
    </div>
  </form>`;
}

function CreateUser({ onDone }) {
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [busy, setBusy] = useState(false);
  const [how, setHow] = useState('password');
  const [made, setMade] = useState(/** @type {any} */ (null));
  const submit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const role = String(data.get('role') || 'user');
    setBusy(true);
    setError(null);
    setMade(null);
    try {
      if (how === 'invite') {
        const invite = await createInvite({ uses: 1, expires_in_hours: 72, role, note: String(data.get('name') || '') });
        setMade({ invite: new URL(invite.url, location.origin).href });
      } else {
        const name = String(data.get('name') || '').trim();
        const oneTime = data.get('one_time') === 'on';
        const user = await createUser({ name, role, one_time: oneTime });
        setMade({ name, password: user.password, oneTime });
      }
      form.reset();
      onDone();
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<section aria-labelledby="create-user-title">
    <h2 id="create-user-title">${t('console.users.create')}</h2>
    <${ErrorLine} error=${error} />
    <form class="row create-user" onSubmit=${submit}>
      <fieldset class="row plain">
        <legend class="sr-only">${t('console.users.how')}</legend>
        <label><input type="radio" name="how" value="password" checked=${how === 'password'}
          onChange=${() => setHow('password')} /> ${t('console.users.withPassword')}</label>
        <label><input type="radio" name="how" value="invite" checked=${how === 'invite'}
          onChange=${() => setHow('invite')} /> ${t('console.users.withInvite')}</label>
      </fieldset>
      <label for="new-user-name" class="sr-only">${how === 'invite' ? t('console.invites.note') : t('console.users.name')}</label>
      <input id="new-user-name" name="name" class="input grow" maxlength="64" required=${how !== 'invite'}
        autocomplete="off" autocapitalize="none" spellcheck=${false}
        placeholder=${how === 'invite' ? t('console.invites.note') : t('console.users.name')} />
      <label for="new-user-role" class="sr-only">${t('console.users.role')}</label>
      <select id="new-user-role" name="role" class="input narrow">
        <option value="user">${t('console.role.user')}</option>
        <option value="admin">${t('console.role.admin')}</option>
      </select>
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t('console.users.createButton')}</button>
      ${how === 'password' &&
      html`<label><input type="checkbox" name="one_time" checked /> ${t('console.users.oneTime')}</label>`}
    </form>
    ${made?.password &&
    html`<${ShownOnce} label=${t('console.users.passwordFor', { name: made.name })}
      hint=${t(made.oneTime ? 'console.users.passwordOnce' : 'console.users.passwordLasting')} value=${made.password}
      attr="data-new-password" />`}
    ${made && !made.password && made.name &&
    html`<div class="alert" role="status">${t('console.users.createdNoPassword', { name: made.name })}</div>`}
    ${made?.invite &&
    html`<${ShownOnce} label=${t('console.invites.link')} hint=${t('console.invites.once')}
      value=${made.invite} attr="data-invite-link" />`}
  </section>`;
}

function UserRow({ user, onEdit, onApprove }) {
  const status = statusOf(user);
  const lim = user.limits || {};
  const today = user.today || { requests: 0, tokens: 0 };
  return html`<tr data-user=${user.name}>
    <th scope="row">${user.name}</th>
    <td>${t(`console.role.${user.role}`)}</td>
    <td><span class=${`badge status-${status}`}>${t(`console.status.${status}`)}</span>
      ${user.password_change_required &&
      html` <span class="badge status-pending" data-must-change title=${t('console.users.mustChangeHint', { name: user.name })}>
        ${t('console.users.mustChange')}</span>`}</td>
    <td><${UsedOf} used=${today.requests} limit=${lim.daily_requests} label=${t('console.quota.dailyRequests')} /></td>
    <td><${UsedOf} used=${today.tokens} limit=${lim.daily_tokens} label=${t('console.quota.dailyTokens')} /></td>
    <td class="num">${limitText(lim.rpm)}</td>
    <td class="num">${limitText(lim.max_streams)}</td>
    <td><div class="actions">
      ${status === 'pending' &&
      html`<button type="button" class="btn btn-primary" onClick=${() => onApprove(user)}
        aria-label=${t('console.users.approveLabel', { name: user.name })}>${t('console.users.approve')}</button>`}
      <button type="button" class="btn" aria-label=${t('console.users.manageLabel', { name: user.name })}
        onClick=${() => onEdit(user)}>${t('console.users.manage')}</button>
    </div></td>
  </tr>`;
}

function ManageUser({ user, onClose, onChanged }) {
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [password, setPassword] = useState(/** @type {{value: string, oneTime: boolean}|null} */ (null));
  const [tab, setTab] = useState('account');
  if (!user) return null;
  const status = statusOf(user);
  const self = me.value && me.value.username === user.name;
  const act = async (patch, message) => {
    setError(null);
    try {
      await patchUser(user.name, patch);
      toast(message);
      await onChanged();
    } catch (e) {
      setError(e.message);
    }
  };
  /** A new password: the one typed (one-time if ticked), or a generated one-time one. */
  const reset = async (event) => {
    event.preventDefault();
    const form = /** @type {HTMLFormElement} */ (event.currentTarget);
    const data = new FormData(form);
    const generate = /** @type {SubmitEvent} */ (event).submitter?.getAttribute('name') === 'generate';
    const oneTime = generate || data.get('one_time') === 'on';
    setError(null);
    try {
      const patch = generate ? { generate_password: true } : { password: String(data.get('password') || ''), one_time: oneTime };
      const answer = await patchUser(user.name, patch);
      setPassword({ value: generate ? answer.password : patch.password, oneTime });
      form.reset();
      await onChanged();
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<div class="manage-user">
    <div class="tabs" role="tablist" aria-label=${t('console.users.manageLabel', { name: user.name })}>
      ${['account', 'quota'].map(
        (id) => html`<button type="button" role="tab" aria-selected=${tab === id ? 'true' : 'false'}
          onClick=${() => setTab(id)}>${t(`console.users.tab.${id}`)}</button>`,
      )}
    </div>
    <${ErrorLine} error=${error} />
    ${tab === 'quota'
      ? html`<${QuotaForm} own=${user.quota || {}} effective=${user.limits} idPrefix="user-quota"
          onCancel=${onClose}
          onSave=${async (limits) => {
            await setUserQuota(user.name, limits);
            toast(t('console.quota.saved', { name: user.name }));
            await onChanged();
            onClose();
          }} />`
      : html`<div class="manage-account">
          <p>${t('console.users.statusIs', { status: t(`console.status.${status}`) })}</p>
          <div class="row">
            ${status === 'pending' &&
            html`<button type="button" class="btn btn-primary" onClick=${() => act({ status: 'active' }, t('console.users.approved', { name: user.name }))}>
              ${t('console.users.approve')}</button>`}
            ${status === 'disabled' &&
            html`<button type="button" class="btn" onClick=${() => act({ disabled: false }, t('console.users.enabled', { name: user.name }))}>
              ${t('console.users.enable')}</button>`}
            ${status === 'active' && !self &&
            html`<button type="button" class="btn btn-danger" onClick=${() => act({ disabled: true }, t('console.users.disabled', { name: user.name }))}>
              ${t('console.users.disable')}</button>`}
            ${!self &&
            html`<button type="button" class="btn" onClick=${() =>
              act({ role: user.role === 'admin' ? 'user' : 'admin' }, t('console.users.roleChanged', { name: user.name }))}>
              ${user.role === 'admin' ? t('console.users.makeUser') : t('console.users.makeAdmin')}</button>`}
          </div>
          <form class="row reset-password" onSubmit=${reset}>
            <label for="reset-password">${t('console.users.newPassword')}</label>
            <input id="reset-password" name="password" type="password" class="input grow" minlength="8"
              autocomplete="new-password" required />
            <button type="submit" class="btn" name="set">${t('console.users.resetPassword')}</button>
            <label><input type="checkbox" name="one_time" /> ${t('console.users.oneTime')}</label>
            <button type="submit" class="btn" name="generate" formnovalidate>${t('console.users.generatePassword')}</button>
          </form>
          ${password && html`<${ShownOnce} label=${t('console.users.passwordFor', { name: user.name })}
            hint=${`${t('console.users.passwordSet')} ${password.oneTime ? t('console.users.passwordOnce') : ''}`}
            value=${password.value} attr="data-reset-password" />`}
        </div>`}
  </div>`;
}

export function UsersSection() {
  const [users, setUsers] = useState(/** @type {any[]|null} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [q, setQ] = useState('');
  const [editing, setEditing] = useState(/** @type {string|null} */ (null));
  const load = () =>
    listUsers(q)
      .then((list) => {
        setUsers(list);
        setError(null);
      })
      .catch((e) => setError(e.message));
  useEffect(() => {
    const timer = setTimeout(load, q ? 200 : 0);
    return () => clearTimeout(timer);
  }, [q]);
  const user = users && editing ? users.find((u) => u.name === editing) : null;
  const approve = async (u) => {
    try {
      await patchUser(u.name, { status: 'active' });
      toast(t('console.users.approved', { name: u.name }));
      await load();
    } catch (e) {
      setError(e.message);
    }
  };
  const pending = (users || []).filter((u) => statusOf(u) === 'pending').length;
  return html`<div class="console-section" aria-labelledby="users-title">
    <h2 id="users-title" class="section-title">${t('console.users')}</h2>
    <${CreateUser} onDone=${load} />
    <section aria-labelledby="user-list-title">
      <div class="row">
        <h2 id="user-list-title" class="grow">${t('console.users.list')}
          ${pending > 0 && html` <span class="badge status-pending">${t('console.users.pendingCount', { n: pending })}</span>`}</h2>
        <label for="user-search" class="sr-only">${t('console.users.search')}</label>
        <input id="user-search" type="search" class="input narrow" placeholder=${t('console.users.search')}
          value=${q} onInput=${(e) => setQ(e.currentTarget.value)} />
      </div>
      <${ErrorLine} error=${error} />
      ${users === null
        ? html`<${Loading} />`
        : html`<div class="table-wrap">
            <table class="table users-table">
              <caption class="sr-only">${t('console.users.caption', { n: formatNumber(users.length) })}</caption>
              <thead><tr>
                <th scope="col">${t('console.users.name')}</th>
                <th scope="col">${t('console.users.role')}</th>
                <th scope="col">${t('console.users.status')}</th>
                <th scope="col">${t('console.users.requestsToday')}</th>
                <th scope="col">${t('console.users.tokensToday')}</th>
                <th scope="col">${t('console.quota.rpm')}</th>
                <th scope="col">${t('console.quota.maxStreams')}</th>
                <th scope="col"><span class="sr-only">${t('console.users.manage')}</span></th>
              </tr></thead>
              <tbody>${users.map((u) => html`<${UserRow} key=${u.name} user=${u} onEdit=${(x) => setEditing(x.name)} onApprove=${approve} />`)}</tbody>
            </table>
          </div>`}
    </section>
    <${ImportUsers} onDone=${load} />
    <${Dialog} open=${user != null} onClose=${() => setEditing(null)} wide
      title=${user ? t('console.users.manageLabel', { name: user.name }) : ''}>
      ${user && html`<${ManageUser} key=${user.name} user=${user} onClose=${() => setEditing(null)} onChanged=${load} />`}
    <//>
  </div>`;
}
