/**
 * Usage as charts: requests and tokens per day stacked by user or by model, cost per day,
 * errors and 429s per day, time to first token and latency (p50, p95) over days; a date range;
 * under each chart its numbers, and a CSV download of the same rows.
 */
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { t, formatNumber } from '../i18n/index.js';
import { usageDaily, usageCsvUrl } from './api.js';
import { ErrorLine, Loading } from './common.js';
import { StackedBars, Lines, ChartTable } from './chart.js';

/** A local date as YYYY-MM-DD. @param {Date} d */
function isoDay(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** The last `n` days, today included. @param {number} n */
function lastDays(n) {
  const end = new Date();
  const start = new Date(end);
  start.setDate(end.getDate() - (n - 1));
  return { start: isoDay(start), end: isoDay(end) };
}

const money = (n) => `$${n.toFixed(n && n < 1 ? 4 : 2)}`;
const ms = (n) => (n >= 1000 ? `${(n / 1000).toFixed(n >= 10000 ? 0 : 1)} s` : `${Math.round(n)} ms`);

/** @param {{title: string, name: string, range: any, children: any, table: any}} props */
function ChartCard({ title, name, range, children, table }) {
  return html`<section class="chart-card" aria-labelledby=${`chart-${name}-title`}>
    <div class="row">
      <h2 id=${`chart-${name}-title`} class="grow">${title}</h2>
      <a class="btn" href=${usageCsvUrl(range, name)} download
        aria-label=${t('console.usage.csvLabel', { chart: title })}>${t('console.usage.csv')}</a>
    </div>
    ${children}
    <details class="chart-numbers">
      <summary>${t('console.usage.numbers')}</summary>
      ${table}
    </details>
  </section>`;
}

export function UsageSection() {
  // No dates at first: the server's last 14 days, in its own time zone.
  const [range, setRange] = useState({ start: '', end: '', by: 'user' });
  const [data, setData] = useState(/** @type {any} */ (null));
  const [error, setError] = useState(/** @type {string|null} */ (null));

  useEffect(() => {
    let live = true;
    setError(null);
    usageDaily(range)
      .then((d) => live && setData(d))
      .catch((e) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [range.start, range.end, range.by]);

  const pick = (event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const start = String(form.get('start') || '');
    const end = String(form.get('end') || '');
    if (start && end && start > end) return setError(t('console.usage.badRange'));
    setRange({ ...range, start, end });
  };

  const days = data?.days || [];
  const series = data?.series || [];
  const of = (field) => series.map((s) => ({ key: s.key, values: s[field] || [] }));
  const byLabel = range.by === 'user' ? t('console.usage.byUser') : t('console.usage.byModel');
  const faults = [
    { key: t('console.usage.errors'), values: data?.errors || [] },
    { key: t('console.usage.rateLimited'), values: data?.rate_limited || [] },
  ];
  const timing = [
    { key: t('console.usage.ttft', { p: 'p50' }), values: data?.first_token_ms?.p50 || [] },
    { key: t('console.usage.ttft', { p: 'p95' }), values: data?.first_token_ms?.p95 || [] },
    { key: t('console.usage.latency', { p: 'p50' }), values: data?.latency_ms?.p50 || [] },
    { key: t('console.usage.latency', { p: 'p95' }), values: data?.latency_ms?.p95 || [] },
  ];
  const total = (field) => series.reduce((sum, s) => sum + (s[field] || []).reduce((a, b) => a + (b || 0), 0), 0);

  return html`<div class="console-section usage-section">
    <h2 class="section-title">${t('console.usage')}</h2>
    <form class="row usage-range" onSubmit=${pick} aria-label=${t('console.usage.range')}>
      <label for="usage-start">${t('console.usage.from')}</label>
      <input id="usage-start" name="start" type="date" class="input narrow" value=${range.start || data?.start || ''} />
      <label for="usage-end">${t('console.usage.to')}</label>
      <input id="usage-end" name="end" type="date" class="input narrow" value=${range.end || data?.end || ''} />
      <button type="submit" class="btn">${t('console.usage.show')}</button>
      ${[7, 30, 90].map(
        (n) => html`<button type="button" class="btn btn-ghost" key=${n}
          onClick=${() => setRange({ ...range, ...lastDays(n) })}>${t('console.usage.lastDays', { n })}</button>`,
      )}
      <span class="spacer"></span>
      <fieldset class="row plain" role="radiogroup">
        <legend class="sr-only">${t('console.usage.stack')}</legend>
        ${['user', 'model'].map(
          (by) => html`<label key=${by}><input type="radio" name="by" value=${by} checked=${range.by === by}
            onChange=${() => setRange({ ...range, by })} /> ${by === 'user' ? t('console.usage.byUser') : t('console.usage.byModel')}</label>`,
        )}
      </fieldset>
    </form>
    <${ErrorLine} error=${error} />
    ${data === null && !error
      ? html`<${Loading} />`
      : data &&
        html`<div class="stats usage-totals">
            <div class="stat"><div class="value" data-total="requests">${formatNumber(total('requests'))}</div><div class="label">${t('console.usage.requests')}</div></div>
            <div class="stat"><div class="value" data-total="tokens">${formatNumber(total('tokens'))}</div><div class="label">${t('console.usage.tokens')}</div></div>
            <div class="stat"><div class="value" data-total="cost">${money(total('cost'))}</div><div class="label">${t('console.usage.cost')}</div></div>
          </div>
          <div class="charts">
            <${ChartCard} title=${t('console.usage.requestsPerDay', { by: byLabel })} name="requests" range=${range}
              table=${html`<${ChartTable} name="requests" days=${days} series=${of('requests')} caption=${t('console.usage.requests')} />`}>
              <${StackedBars} name="requests" days=${days} series=${of('requests')} label=${t('console.usage.requests')} />
            <//>
            <${ChartCard} title=${t('console.usage.tokensPerDay', { by: byLabel })} name="tokens" range=${range}
              table=${html`<${ChartTable} name="tokens" days=${days} series=${of('tokens')} caption=${t('console.usage.tokens')} />`}>
              <${StackedBars} name="tokens" days=${days} series=${of('tokens')} label=${t('console.usage.tokens')} />
            <//>
            <${ChartCard} title=${t('console.usage.costPerDay')} name="cost" range=${range}
              table=${html`<${ChartTable} name="cost" days=${days} series=${of('cost')} caption=${t('console.usage.cost')} format=${money} />`}>
              <${StackedBars} name="cost" days=${days} series=${of('cost')} label=${t('console.usage.cost')} format=${money} integer=${false} />
            <//>
            <${ChartCard} title=${t('console.usage.errorsPerDay')} name="errors" range=${range}
              table=${html`<${ChartTable} name="errors" days=${days} series=${faults} caption=${t('console.usage.errorsPerDay')} />`}>
              <${StackedBars} name="errors" days=${days} series=${faults} label=${t('console.usage.errorsPerDay')} />
            <//>
            <${ChartCard} title=${t('console.usage.timing')} name="latency" range=${range}
              table=${html`<${ChartTable} name="latency" days=${days} series=${timing} caption=${t('console.usage.timing')} format=${ms} total=${false} />`}>
              <${Lines} name="latency" days=${days} lines=${timing} label=${t('console.usage.timing')} format=${ms} />
            <//>
          </div>`}
  </div>`;
}
