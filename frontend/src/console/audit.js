/**
 * The audit log: who changed users, quotas, keys, providers, models and sign-up, and when;
 * filtered by actor, action family, target and time, newest first, a page at a time
 * (`next_before` of one page asks for the next).
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { t } from '../i18n/index.js';
import { auditPage } from './api.js';
import { ErrorLine, Loading, when } from './common.js';

const FAMILIES = ['', 'user', 'user.quota', 'key', 'provider', 'model', 'signup', 'invite'];
const PAGE = 50;

/** A `datetime-local` value as Unix seconds, or undefined. @param {FormDataEntryValue|null} v */
function seconds(v) {
  const s = String(v || '');
  return s ? Math.floor(new Date(s).getTime() / 1000) : undefined;
}

/** A change's details in a line: `field: value`, values as JSON. @param {Record<string, unknown>} details */
function detailText(details) {
  return Object.entries(details || {})
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' · ');
}

export function AuditSection() {
  const [filters, setFilters] = useState(/** @type {Record<string, unknown>} */ ({}));
  const [cursors, setCursors] = useState(/** @type {Array<number|undefined>} */ ([undefined]));
  const [page, setPage] = useState(/** @type {any} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const before = cursors[cursors.length - 1];

  useEffect(() => {
    let live = true;
    setError(null);
    auditPage({ ...filters, before, limit: PAGE })
      .then((p) => live && setPage(p))
      .catch((e) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [filters, before]);

  const apply = (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setFilters({
      actor: String(form.get('actor') || '').trim() || undefined,
      action: String(form.get('action') || '') || undefined,
      target: String(form.get('target') || '').trim() || undefined,
      since: seconds(form.get('since')),
      until: seconds(form.get('until')),
    });
    setCursors([undefined]);
  };

  return html`<div class="console-section">
    <h2 class="section-title">${t('console.audit')}</h2>
    <form class="audit-filters" onSubmit=${apply} aria-label=${t('console.audit.filters')}>
      <div class="field"><label for="audit-actor">${t('console.audit.actor')}</label>
        <input id="audit-actor" name="actor" class="input" autocapitalize="none" /></div>
      <div class="field"><label for="audit-action">${t('console.audit.action')}</label>
        <select id="audit-action" name="action" class="input">
          ${FAMILIES.map((f) => html`<option value=${f}>${f ? t(`console.audit.family.${f}`) : t('console.audit.any')}</option>`)}
        </select></div>
      <div class="field"><label for="audit-target">${t('console.audit.target')}</label>
        <input id="audit-target" name="target" class="input" autocapitalize="none" /></div>
      <div class="field"><label for="audit-since">${t('console.audit.since')}</label>
        <input id="audit-since" name="since" type="datetime-local" class="input" /></div>
      <div class="field"><label for="audit-until">${t('console.audit.until')}</label>
        <input id="audit-until" name="until" type="datetime-local" class="input" /></div>
      <div class="field audit-apply"><button type="submit" class="btn btn-primary">${t('console.audit.apply')}</button></div>
    </form>
    <${ErrorLine} error=${error} />
    ${page === null
      ? !error && html`<${Loading} />`
      : page.data.length === 0
        ? html`<p class="muted">${t('console.audit.none')}</p>`
        : html`<div class="table-wrap"><table class="table audit-table">
            <thead><tr>
              <th scope="col">${t('console.audit.when')}</th>
              <th scope="col">${t('console.audit.actor')}</th>
              <th scope="col">${t('console.audit.action')}</th>
              <th scope="col">${t('console.audit.target')}</th>
              <th scope="col">${t('console.audit.details')}</th>
            </tr></thead>
            <tbody>${page.data.map(
              (e) => html`<tr key=${e.id} data-action=${e.action} data-target=${e.target}>
                <td class="nowrap">${when(e.at)}</td>
                <td>${e.actor}</td>
                <td><code>${e.action}</code></td>
                <td>${e.target}</td>
                <td class="details">${detailText(e.details)}</td>
              </tr>`,
            )}</tbody>
          </table></div>`}
    <div class="row pager">
      <button type="button" class="btn" disabled=${cursors.length < 2}
        onClick=${() => setCursors(cursors.slice(0, -1))}>${t('console.audit.newer')}</button>
      <button type="button" class="btn" disabled=${!page || page.next_before == null}
        onClick=${() => setCursors([...cursors, page.next_before])}>${t('console.audit.older')}</button>
    </div>
  </div>`;
}
