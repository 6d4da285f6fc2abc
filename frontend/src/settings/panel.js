/**
 * Per-conversation settings in the top bar: the model picker (switchable at any point of a
 * conversation) and a dialog with the system prompt, temperature and max tokens, the "what
 * will be sent" view, export (Markdown of the current path, JSON of the tree) and import of a
 * ChatGPT export.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { conversationId, models } from '../state.js';
import { t } from '../i18n/index.js';
import { Icon } from '../theme/icons.js';
import { Dialog } from '../theme/dialog.js';
import { toast } from '../theme/toast.js';
import { defaultModel, loadModels } from './models.js';
import { known, pending, load, save, remember } from './store.js';
import { items } from '../sidebar/store.js';
import { ContextView } from './context.js';
import { ExportImport } from './export.js';

export { askParams } from './store.js';

/** The settings in force for the open conversation (or the new chat). */
function current() {
  const id = conversationId.value;
  return id ? known.value[id] : pending.value;
}

/** The model select shown in the top bar. */
function ModelPicker() {
  const settings = current();
  const chosen = settings?.model || '';
  const change = async (e) => {
    const value = e.currentTarget.value || null;
    try {
      await save(conversationId.value, { model: value });
    } catch (error) {
      toast(t('sidebar.failed', { message: error.message }));
    }
  };
  return html`<label class="sr-only" for="model-picker">${t('settings.model')}</label>
    <select id="model-picker" class="input model-picker" value=${chosen} onChange=${change}>
      <option value="">${t('settings.modelDefault', { model: defaultModel.value || '…' })}</option>
      ${models.value.map((m) => html`<option value=${m.id}>${m.id}</option>`)}
      ${chosen && !models.value.some((m) => m.id === chosen) && html`<option value=${chosen}>${chosen}</option>`}
    </select>`;
}

function General({ onSaved }) {
  const id = conversationId.value;
  const settings = current() || { model: null, system: null, temperature: null, max_tokens: null };
  const [temperature, setTemperature] = useState(settings.temperature);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(/** @type {string|null} */ (null));

  const submit = async (event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const maxTokens = String(data.get('max_tokens') || '').trim();
    setBusy(true);
    setError(null);
    try {
      await save(id, {
        model: String(data.get('model') || '') || null,
        system: String(data.get('system') || '').trim() || null,
        temperature,
        max_tokens: maxTokens ? Number(maxTokens) : null,
      });
      onSaved();
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };

  return html`<form onSubmit=${submit} class="settings-form">
    ${!id && html`<p class="muted">${t('settings.newChatNote')}</p>`}
    ${error && html`<div class="alert alert-error" role="alert">${error}</div>`}
    <div class="settings-grid">
      <div class="field wide">
        <label for="settings-model">${t('settings.model')}</label>
        <select id="settings-model" name="model" class="input" value=${settings.model || ''}>
          <option value="">${t('settings.modelDefault', { model: defaultModel.value || '…' })}</option>
          ${models.value.map((m) => html`<option value=${m.id}>${m.id}</option>`)}
        </select>
      </div>
      <div class="field wide">
        <label for="settings-system">${t('settings.system')}</label>
        <textarea
          id="settings-system"
          name="system"
          class="input"
          rows="4"
          aria-describedby="settings-system-hint"
        >${settings.system || ''}</textarea>
        <span class="hint" id="settings-system-hint">${t('settings.systemHint')}</span>
      </div>
      <div class="field">
        <label for="settings-temperature">
          ${temperature == null
            ? t('settings.temperatureDefault')
            : t('settings.temperatureValue', { value: temperature.toFixed(1) })}
        </label>
        <input
          id="settings-temperature"
          type="range"
          min="0"
          max="2"
          step="0.1"
          value=${temperature ?? 1}
          onInput=${(e) => setTemperature(Number(e.currentTarget.value))}
        />
        <label class="row" style="font-weight: normal; font-size: 0.88rem">
          <input
            type="checkbox"
            checked=${temperature == null}
            onChange=${(e) => setTemperature(e.currentTarget.checked ? null : 1)}
          />
          ${t('settings.useDefault')}
        </label>
      </div>
      <div class="field">
        <label for="settings-max-tokens">${t('settings.maxTokens')}</label>
        <input
          id="settings-max-tokens"
          name="max_tokens"
          type="number"
          min="1"
          step="1"
          inputmode="numeric"
          class="input"
          value=${settings.max_tokens ?? ''}
          aria-describedby="settings-max-hint"
        />
        <span class="hint" id="settings-max-hint">${t('settings.maxTokensHint')}</span>
      </div>
    </div>
    <div class="row">
      <span class="spacer"></span>
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t('common.save')}</button>
    </div>
  </form>`;
}

const TABS = [
  ['general', 'settings.tabGeneral'],
  ['context', 'settings.tabContext'],
  ['export', 'settings.tabExport'],
];

export function ConversationSettings() {
  const [open, setOpen] = useState(false);
  const [tab, setTab] = useState('general');
  const [conversation, setConversation] = useState(/** @type {any|null} */ (null));
  const id = conversationId.value;

  useEffect(() => {
    loadModels();
  }, []);
  useEffect(() => {
    setConversation(null);
    if (!id) return;
    // The sidebar's list already has the settings of the conversations it shows; the whole
    // conversation (for the context view's texts) is fetched only when the dialog opens.
    if (!open && !known.value[id]) {
      const listed = items.value.find((c) => c.id === id);
      if (listed) remember(listed);
    }
    // Otherwise the chat's own fetch of the conversation brings its settings.
    if (open) {
      load(id)
        .then(setConversation)
        .catch(() => {});
    }
  }, [id, open]);

  return html`<div class="conv-settings row" style="flex-wrap: nowrap">
    <${ModelPicker} />
    <button
      type="button"
      class="icon-btn"
      aria-label=${t('settings.open')}
      title=${t('settings.open')}
      aria-haspopup="dialog"
      onClick=${() => {
        setTab('general');
        setOpen(true);
      }}
    >
      <${Icon} name="gear" />
    </button>
    <${Dialog} open=${open} onClose=${() => setOpen(false)} title=${t('settings.title')} wide id="settings-dialog">
      <div class="tabs" role="tablist" aria-label=${t('settings.title')}>
        ${TABS.map(
          ([key, label]) => html`<button
            type="button"
            role="tab"
            id=${`settings-tab-${key}`}
            aria-selected=${tab === key ? 'true' : 'false'}
            aria-controls="settings-tabpanel"
            tabindex=${tab === key ? 0 : -1}
            onClick=${() => setTab(key)}
            onKeyDown=${(e) => {
              const i = TABS.findIndex(([k]) => k === key);
              const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
              if (!step) return;
              const next = TABS[(i + step + TABS.length) % TABS.length][0];
              setTab(next);
              document.getElementById(`settings-tab-${next}`)?.focus();
            }}
          >
            ${t(label)}
          </button>`,
        )}
      </div>
      <div id="settings-tabpanel" role="tabpanel" aria-labelledby=${`settings-tab-${tab}`} style="padding-top: 1rem">
        ${tab === 'general' &&
        (!id || conversation
          ? html`<${General}
              key=${id || 'new'}
              onSaved=${() => {
                setOpen(false);
                toast(t('settings.saved'), { ms: 2500 });
              }}
            />`
          : html`<p class="muted">${t('common.loading')}</p>`)}
        ${tab === 'context' && html`<${ContextView} conversation=${conversation} />`}
        ${tab === 'export' && html`<${ExportImport} conversation=${conversation} />`}
      </div>
    <//>
  </div>`;
}
