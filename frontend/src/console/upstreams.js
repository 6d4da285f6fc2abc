/**
 * Upstreams: each provider with its health (recent errors, resting deployments, latency, the
 * models found) and the model list with aliases; add or edit a provider (a form over
 * `PUT /api/v1/admin/providers/{name}`), and reload them all from the server's file.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { t, formatNumber } from '../i18n/index.js';
import { Dialog } from '../theme/dialog.js';
import { toast } from '../theme/toast.js';
import {
  listProviders,
  putProvider,
  deleteProvider,
  reloadProviders,
  listModels,
  putModel,
  providerHealth,
} from './api.js';
import { ErrorLine, Loading, when } from './common.js';

const KINDS = ['openai-compatible', 'azure-openai', 'demo'];

/** The health report's providers, by name. @param {any} health */
function healthByName(health) {
  return Object.fromEntries((health?.providers || []).map((h) => [h.name, h]));
}

/** A mean in ms, or a dash. @param {number|null|undefined} v */
const msText = (v) => (v == null ? '—' : `${Math.round(v)} ms`);

function ProviderForm({ provider, onSaved, onCancel }) {
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [busy, setBusy] = useState(false);
  const fresh = !provider;
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const name = fresh ? String(form.get('name') || '').trim() : provider.name;
    /** @type {Record<string, unknown>} */
    const body = {
      kind: String(form.get('kind')),
      base_url: String(form.get('base_url') || '').trim(),
      discover_models: form.get('discover_models') === 'on',
    };
    for (const field of ['api_version', 'deployment']) {
      const v = String(form.get(field) || '').trim();
      body[field] = v || null;
    }
    const keys = String(form.get('api_keys') || '').split('\n').map((k) => k.trim()).filter(Boolean);
    if (keys.length) body.api_keys = keys;
    setBusy(true);
    setError(null);
    try {
      await putProvider(name, body);
      toast(t('console.upstreams.saved', { name }));
      onSaved();
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  };
  return html`<form onSubmit=${submit} class="provider-form">
    <${ErrorLine} error=${error} />
    ${fresh &&
    html`<div class="field">
      <label for="provider-name">${t('console.upstreams.name')}</label>
      <input id="provider-name" name="name" class="input" required maxlength="64" pattern="[A-Za-z0-9._\\-]+" />
    </div>`}
    <div class="field">
      <label for="provider-kind">${t('console.upstreams.kind')}</label>
      <select id="provider-kind" name="kind" class="input" value=${provider?.kind || 'openai-compatible'}>
        ${KINDS.map((k) => html`<option value=${k}>${k}</option>`)}
      </select>
    </div>
    <div class="field">
      <label for="provider-url">${t('console.upstreams.baseUrl')}</label>
      <input id="provider-url" name="base_url" class="input" type="url" required
        value=${provider?.base_url || ''} placeholder="https://api.example.com/v1" />
    </div>
    <div class="field">
      <label for="provider-keys">${t('console.upstreams.keys')}</label>
      <textarea id="provider-keys" name="api_keys" class="input mono" rows="2" autocomplete="off" spellcheck=${false}></textarea>
      <span class="hint">${fresh ? t('console.upstreams.keysHintNew') : t('console.upstreams.keysHint', { n: provider.keys })}</span>
    </div>
    <div class="settings-grid">
      <div class="field">
        <label for="provider-version">${t('console.upstreams.apiVersion')}</label>
        <input id="provider-version" name="api_version" class="input" value=${provider?.api_version || ''} />
      </div>
      <div class="field">
        <label for="provider-deployment">${t('console.upstreams.deployment')}</label>
        <input id="provider-deployment" name="deployment" class="input" value=${provider?.deployment || ''} />
      </div>
    </div>
    <label class="row"><input type="checkbox" name="discover_models" checked=${provider ? provider.discover_models : true} />
      ${t('console.upstreams.discover')}</label>
    <div class="row">
      <span class="spacer"></span>
      <button type="button" class="btn" onClick=${onCancel}>${t('common.cancel')}</button>
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t('common.save')}</button>
    </div>
  </form>`;
}

/** A comma- or line-separated list. @param {FormDataEntryValue|null} v */
const listOf = (v) => String(v || '').split(/[\n,]/).map((x) => x.trim()).filter(Boolean);

function ModelForm({ model, onSaved, onCancel }) {
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [busy, setBusy] = useState(false);
  const fresh = !model;
  const submit = async (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const name = fresh ? String(form.get('name') || '').trim() : model.name;
    // The whole model is sent: what the form does not show is kept as it was.
    const { discovered, name: _name, ...kept } = model || {};
    const body = {
      ...kept,
      aliases: listOf(form.get('aliases')),
      deployments: listOf(form.get('deployments')),
      context_window: Number(form.get('context_window') || 8192),
      input_price: Number(form.get('input_price') || 0),
      output_price: Number(form.get('output_price') || 0),
    };
    setBusy(true);
    setError(null);
    try {
      await putModel(name, body);
      toast(t('console.upstreams.modelSaved', { name }));
      onSaved();
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  };
  return html`<form onSubmit=${submit} class="model-form">
    <${ErrorLine} error=${error} />
    ${fresh &&
    html`<div class="field">
      <label for="model-name">${t('console.upstreams.model')}</label>
      <input id="model-name" name="name" class="input" required maxlength="128" />
    </div>`}
    <div class="field">
      <label for="model-aliases">${t('console.upstreams.aliases')}</label>
      <input id="model-aliases" name="aliases" class="input" value=${(model?.aliases || []).join(', ')} />
      <span class="hint">${t('console.upstreams.listHint')}</span>
    </div>
    <div class="field">
      <label for="model-deployments">${t('console.upstreams.deployments')}</label>
      <input id="model-deployments" name="deployments" class="input" required value=${(model?.deployments || []).join(', ')}
        placeholder="openai, deepseek" />
      <span class="hint">${t('console.upstreams.deploymentsHint')}</span>
    </div>
    <div class="settings-grid">
      <div class="field">
        <label for="model-context">${t('console.upstreams.context')}</label>
        <input id="model-context" name="context_window" type="number" min="1" class="input" value=${model?.context_window ?? 8192} />
      </div>
      <div class="field">
        <label for="model-in">${t('console.upstreams.inputPrice')}</label>
        <input id="model-in" name="input_price" type="number" min="0" step="any" class="input" value=${model?.input_price ?? 0} />
      </div>
      <div class="field">
        <label for="model-out">${t('console.upstreams.outputPrice')}</label>
        <input id="model-out" name="output_price" type="number" min="0" step="any" class="input" value=${model?.output_price ?? 0} />
      </div>
    </div>
    <div class="row">
      <span class="spacer"></span>
      <button type="button" class="btn" onClick=${onCancel}>${t('common.cancel')}</button>
      <button type="submit" class="btn btn-primary" disabled=${busy}>${t('common.save')}</button>
    </div>
  </form>`;
}

/**
 * One provider: its health over the report's window (requests, errors, mean latency and time
 * to the first token, from every server's request log; this server's failed tries and
 * breakers), its deployments, and the models it listed.
 */
function ProviderCard({ name, provider, health, window, routed, onEdit, onRemove }) {
  const traffic = health?.traffic;
  const failures = health?.failures;
  const deployments = health?.deployments || [];
  const resting = deployments.filter((d) => d.resting);
  const breakers = provider?.breakers || [];
  const state = resting.length || breakers.length ? 'resting' : traffic?.errors || failures?.count ? 'errors' : 'ok';
  const found = health?.models_found;
  return html`<li class="provider-card" data-provider=${name}>
    <div class="row">
      <h3 class="grow">${name} <span class="muted">· ${provider?.kind || health?.kind || ''}</span></h3>
      <span class=${`badge health-${state}`}>${t(`console.upstreams.state.${state}`)}</span>
      ${provider &&
      html`<button type="button" class="btn" onClick=${() => onEdit(provider)}
          aria-label=${t('console.upstreams.editLabel', { name })}>${t('console.upstreams.edit')}</button>
        <button type="button" class="btn btn-danger" onClick=${() => onRemove(provider)}
          aria-label=${t('console.upstreams.removeLabel', { name })}>${t('console.upstreams.remove')}</button>`}
    </div>
    <dl class="facts">
      <dt>${t('console.upstreams.baseUrl')}</dt><dd><code>${provider?.base_url || health?.base_url || '—'}</code></dd>
      ${provider && html`<dt>${t('console.upstreams.keyCount')}</dt><dd>${formatNumber(provider.keys || 0)}</dd>`}
      <dt>${t('console.upstreams.traffic', { minutes: Math.round((window || 3600) / 60) })}</dt>
      <dd>${traffic
        ? t('console.upstreams.trafficText', { requests: formatNumber(traffic.requests), errors: formatNumber(traffic.errors) })
        : '—'}</dd>
      <dt>${t('console.upstreams.latency')}</dt>
      <dd>${traffic && traffic.latency_ms != null
        ? t('console.upstreams.latencyText', { latency: msText(traffic.latency_ms), first: msText(traffic.first_token_ms) })
        : '—'}</dd>
      <dt>${t('console.upstreams.recentErrors')}</dt>
      <dd>${failures?.last
        ? html`${formatNumber(failures.count)} · <span class="muted">${when(failures.last.at)}</span> <code>${failures.last.code}</code> ${failures.last.message}`
        : failures ? formatNumber(failures.count) : '—'}</dd>
      <dt>${t('console.upstreams.resting')}</dt>
      <dd>${resting.length || breakers.length
        ? [...resting, ...breakers].map((r) => `${r.model} (${r.state}${r.retry_in ? `, ${Math.ceil(r.retry_in)} s` : ''})`).join(', ')
        : t('console.upstreams.notResting')}</dd>
      <dt>${t('console.upstreams.modelsFound')}</dt>
      <dd>${health?.models_error
        ? html`<span class="error-text">${health.models_error}</span>`
        : found?.length ? found.join(', ')
          : health ? (found == null ? t('console.upstreams.notRead') : '—')
          : routed.join(', ') || '—'}</dd>
    </dl>
    ${deployments.length > 0 &&
    html`<div class="table-wrap"><table class="table deployments-table">
      <caption class="sr-only">${t('console.upstreams.deploymentsOf', { name })}</caption>
      <thead><tr>
        <th scope="col">${t('console.upstreams.model')}</th>
        <th scope="col">${t('console.upstreams.upstreamModel')}</th>
        <th scope="col">${t('console.upstreams.breaker')}</th>
        <th scope="col">${t('console.usage.requests')}</th>
        <th scope="col">${t('console.usage.errors')}</th>
        <th scope="col">${t('console.upstreams.latency')}</th>
      </tr></thead>
      <tbody>${deployments.map(
        (d) => html`<tr key=${d.model} data-deployment=${d.model}>
          <td>${d.model}</td><td><code>${d.upstream_model}</code></td>
          <td><span class=${`badge health-${d.resting ? 'resting' : d.state === 'closed' ? 'ok' : 'errors'}`}>${d.state}</span></td>
          <td class="num">${formatNumber(d.traffic.requests)}</td>
          <td class="num">${formatNumber(d.traffic.errors + d.failures.count)}</td>
          <td class="num">${msText(d.traffic.latency_ms)}</td>
        </tr>`,
      )}</tbody>
    </table></div>`}
  </li>`;
}

export function UpstreamsSection() {
  const [providers, setProviders] = useState(/** @type {any[]|null} */ (null));
  const [models, setModels] = useState(/** @type {any[]} */ ([]));
  const [health, setHealth] = useState(/** @type {any} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));
  const [editing, setEditing] = useState(/** @type {any} */ (undefined));
  const [editingModel, setEditingModel] = useState(/** @type {any} */ (undefined));
  const [removing, setRemoving] = useState(/** @type {any} */ (null));
  const load = async () => {
    try {
      const [p, m] = await Promise.all([listProviders(), listModels()]);
      setProviders(p.data || []);
      setModels(m.data || []);
      setError(null);
    } catch (e) {
      setError(e.message);
    }
    providerHealth()
      .then(setHealth)
      .catch(() => setHealth(null));
  };
  useEffect(() => {
    load();
  }, []);
  const reload = async () => {
    try {
      const counts = await reloadProviders();
      toast(t('console.upstreams.reloaded', { providers: counts.providers ?? '?', models: counts.models ?? '?' }));
      await load();
    } catch (e) {
      setError(e.message);
    }
  };
  // Configured providers, and any other the health report knows (the built-in demo).
  const byName = Object.fromEntries((providers || []).map((p) => [p.name, p]));
  const reports = healthByName(health);
  const names = [...new Set([...Object.keys(byName), ...Object.keys(reports)])];
  const remove = async () => {
    const provider = removing;
    setRemoving(null);
    try {
      await deleteProvider(provider.name);
      toast(t('console.upstreams.removed', { name: provider.name }));
      await load();
    } catch (e) {
      setError(e.message);
    }
  };
  return html`<div class="console-section">
    <div class="row">
      <h2 class="section-title grow">${t('console.upstreams')}</h2>
      <button type="button" class="btn" onClick=${reload}>${t('console.upstreams.reload')}</button>
      <button type="button" class="btn btn-primary" onClick=${() => setEditing(null)}>${t('console.upstreams.add')}</button>
    </div>
    <${ErrorLine} error=${error} />
    ${providers === null
      ? html`<${Loading} />`
      : html`<ul class="provider-list">
          ${names.map((n) => html`<${ProviderCard} key=${n} name=${n} provider=${byName[n]} health=${reports[n]}
            window=${health?.window_seconds} onEdit=${setEditing}
            routed=${models.filter((m) => (m.deployments || []).includes(n)).map((m) => m.name)} onRemove=${setRemoving} />`)}
        </ul>`}
    <section aria-labelledby="models-title">
      <div class="row">
        <h2 id="models-title" class="grow">${t('console.upstreams.models')}</h2>
        <button type="button" class="btn" onClick=${() => setEditingModel(null)}>${t('console.upstreams.addModel')}</button>
      </div>
      <div class="table-wrap"><table class="table models-table">
        <thead><tr>
          <th scope="col">${t('console.upstreams.model')}</th>
          <th scope="col">${t('console.upstreams.aliases')}</th>
          <th scope="col">${t('console.upstreams.deployments')}</th>
          <th scope="col">${t('console.upstreams.context')}</th>
          <th scope="col">${t('console.upstreams.prices')}</th>
          <th scope="col"><span class="sr-only">${t('console.upstreams.edit')}</span></th>
        </tr></thead>
        <tbody>${models.map(
          (m) => html`<tr key=${m.name} data-model=${m.name}>
            <th scope="row">${m.name}${m.discovered ? html` <span class="badge">${t('console.upstreams.discovered')}</span>` : ''}</th>
            <td>${(m.aliases || []).join(', ') || '—'}</td>
            <td>${(m.deployments || []).join(', ') || '—'}</td>
            <td class="num">${m.context_window ? formatNumber(m.context_window) : '—'}</td>
            <td>${m.input_price != null ? `$${m.input_price} / $${m.output_price}` : '—'}</td>
            <td><button type="button" class="btn" onClick=${() => setEditingModel(m)}
              aria-label=${t('console.upstreams.editModelLabel', { name: m.name })}>${t('console.upstreams.edit')}</button></td>
          </tr>`,
        )}</tbody>
      </table></div>
    </section>
    <${Dialog} open=${editing !== undefined} onClose=${() => setEditing(undefined)} wide
      title=${editing ? t('console.upstreams.editLabel', { name: editing.name }) : t('console.upstreams.add')}>
      ${editing !== undefined && html`<${ProviderForm} key=${editing ? editing.name : '+'} provider=${editing}
        onCancel=${() => setEditing(undefined)} onSaved=${() => { setEditing(undefined); load(); }} />`}
    <//>
    <${Dialog} open=${editingModel !== undefined} onClose=${() => setEditingModel(undefined)} wide
      title=${editingModel ? t('console.upstreams.editModelLabel', { name: editingModel.name }) : t('console.upstreams.addModel')}>
      ${editingModel !== undefined && html`<${ModelForm} key=${editingModel ? editingModel.name : '+'} model=${editingModel}
        onCancel=${() => setEditingModel(undefined)} onSaved=${() => { setEditingModel(undefined); load(); }} />`}
    <//>
    <${Dialog} open=${removing !== null} onClose=${() => setRemoving(null)} title=${t('console.upstreams.remove')}
      footer=${html`<button type="button" class="btn" onClick=${() => setRemoving(null)}>${t('common.cancel')}</button>
        <button type="button" class="btn btn-primary" onClick=${remove}>${t('console.upstreams.remove')}</button>`}>
      <p>${removing && t('console.upstreams.removeConfirm', { name: removing.name })}</p>
    <//>
  </div>`;
}
