/**
 * Export of the open conversation (Markdown of the current path, JSON of the whole tree) as a
 * download, and import of a ChatGPT export by upload.
 */
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { conversationId, emit } from '../state.js';
import { exportConversation, importChatGPT } from '../api/conversations.js';
import { t } from '../i18n/index.js';
import { Icon } from '../theme/icons.js';

/** A file name from a title: letters of any script kept, the rest made dashes. */
function fileName(title, id, extension) {
  const base = (title || '').trim().replace(/[^\p{L}\p{N}]+/gu, '-').replace(/^-+|-+$/g, '').slice(0, 60);
  return `${base || `conversation-${id.slice(0, 8)}`}.${extension}`;
}

/** Hand the browser a file to save. */
function download(text, name, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function ExportImport({ conversation }) {
  const id = conversationId.value;
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [result, setResult] = useState(/** @type {string|null} */ (null));
  const [busy, setBusy] = useState(false);

  const save = async (format) => {
    setError(null);
    try {
      const body = await exportConversation(id, format);
      const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
      const type = format === 'md' ? 'text/markdown;charset=utf-8' : 'application/json';
      download(text, fileName(conversation?.title, id, format), type);
    } catch (e) {
      setError(e.message);
    }
  };

  const upload = async (event) => {
    event.preventDefault();
    const form = /** @type {HTMLFormElement} */ (event.currentTarget);
    const input = /** @type {HTMLInputElement} */ (form.elements.namedItem('file'));
    const file = input.files?.[0];
    if (!file) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const answer = await importChatGPT(file);
      setResult(t('settings.imported', answer));
      form.reset();
      emit('conversations-changed', {});
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };

  return html`<div>
    ${error && html`<div class="alert alert-error" role="alert">${error}</div>`}
    <h3>${t('settings.export')}</h3>
    ${id
      ? html`<div class="row">
          <button type="button" class="btn" data-export="md" onClick=${() => save('md')}>
            <${Icon} name="download" /> ${t('settings.exportMd')}
          </button>
          <button type="button" class="btn" data-export="json" onClick=${() => save('json')}>
            <${Icon} name="download" /> ${t('settings.exportJson')}
          </button>
        </div>`
      : html`<p class="muted">${t('settings.exportNone')}</p>`}
    <h3>${t('settings.import')}</h3>
    <form onSubmit=${upload}>
      <div class="field">
        <label for="import-file">${t('settings.importFile')}</label>
        <input
          id="import-file"
          name="file"
          type="file"
          class="input"
          accept=".zip,.json,application/zip,application/json"
          aria-describedby="import-hint"
          required
        />
        <span class="hint" id="import-hint">${t('settings.importHint')}</span>
      </div>
      <button type="submit" class="btn" disabled=${busy}>
        <${Icon} name="upload" /> ${busy ? t('settings.importing') : t('settings.import')}
      </button>
    </form>
    ${result && html`<div class="alert import-result" role="status" style="margin-top: 1rem">${result}</div>`}
  </div>`;
}
