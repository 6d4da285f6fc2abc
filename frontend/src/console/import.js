/**
 * Import users from a CSV of `username,password` lines (a file or pasted text). The server
 * hashes each password and answers a report per row: created, skipped or refused, and why.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { t } from '../i18n/index.js';
import { importUsers } from './api.js';
import { ErrorLine } from './common.js';

export function ImportUsers({ onDone }) {
  const [text, setText] = useState('');
  const [report, setReport] = useState(/** @type {any} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [busy, setBusy] = useState(false);

  const pick = async (event) => {
    const file = event.currentTarget.files?.[0];
    if (file) setText(await file.text());
  };
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setReport(null);
    try {
      setReport(await importUsers(text));
      setText('');
      onDone();
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<section aria-labelledby="import-title">
    <h2 id="import-title">${t('console.import.title')}</h2>
    <p class="muted">${t('console.import.hint')}</p>
    <${ErrorLine} error=${error} />
    <form onSubmit=${submit}>
      <div class="field">
        <label for="import-file">${t('console.import.file')}</label>
        <input id="import-file" type="file" accept=".csv,text/csv,text/plain" onChange=${pick} />
      </div>
      <div class="field">
        <label for="import-text">${t('console.import.text')}</label>
        <textarea id="import-text" class="input mono" rows="4" spellcheck=${false}
          placeholder="username,password" value=${text} onInput=${(e) => setText(e.currentTarget.value)}></textarea>
      </div>
      <button type="submit" class="btn btn-primary" disabled=${busy || !text.trim()}>${t('console.import.submit')}</button>
    </form>
    ${report &&
    html`<div class="import-report" role="status">
      <p><strong>${t('console.import.summary', { created: report.created, skipped: report.skipped, refused: report.refused })}</strong></p>
      <div class="table-wrap">
        <table class="table">
          <thead><tr>
            <th scope="col">${t('console.import.line')}</th>
            <th scope="col">${t('console.users.name')}</th>
            <th scope="col">${t('console.import.result')}</th>
            <th scope="col">${t('console.import.reason')}</th>
          </tr></thead>
          <tbody>${(report.rows || []).map(
            (row) => html`<tr data-line=${row.line} data-result=${row.result}>
              <td class="num">${row.line}</td><td>${row.username || '—'}</td>
              <td><span class=${`badge result-${row.result}`}>${t(`console.import.${row.result}`)}</span></td>
              <td>${row.reason || ''}</td>
            </tr>`,
          )}</tbody>
        </table>
      </div>
    </div>`}
  </section>`;
}
