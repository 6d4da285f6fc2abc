/**
 * Charts drawn as SVG by the page itself: stacked bars per day and lines over days. A few
 * dozen elements each, so no charting library is worth its weight here; every bar and point
 * has a <title> for its number, and each chart has a table beside it for screen readers and
 * for reading exact figures.
 */
import { html } from 'htm/preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { t } from '../i18n/index.js';

const H = 220;
const PAD = { left: 52, right: 12, top: 12, bottom: 28 };
export const PALETTE_SIZE = 8;

/**
 * The figure's width in CSS pixels, followed as it changes: the chart is drawn at its real size,
 * so its text stays legible and unstretched at any width.
 */
function useWidth() {
  const ref = useRef(/** @type {HTMLElement|null} */ (null));
  const [width, setWidth] = useState(720);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    const measure = () => setWidth(Math.max(240, Math.round(el.clientWidth)));
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return /** @type {const} */ ([ref, width]);
}

/** Round a maximum up to a tidy axis top (1, 2, 2.5 or 5 times a power of ten). @param {number} max */
function niceTop(max) {
  if (!(max > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

/** @param {number} n */
function short(n) {
  if (Math.abs(n) >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return String(+n.toFixed(n < 10 && n % 1 ? 2 : 0));
}

/** @param {{days: string[], top: number, format: (n: number) => string, W: number}} props */
function Axes({ days, top, format, W }) {
  const plotH = H - PAD.top - PAD.bottom;
  const plotW = W - PAD.left - PAD.right;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const every = Math.max(1, Math.ceil(days.length / Math.max(2, Math.floor(plotW / 64))));
  const step = plotW / Math.max(1, days.length);
  return html`<g class="axes" aria-hidden="true">
    ${ticks.map((f) => {
      const y = PAD.top + plotH * (1 - f);
      return html`<g key=${f}>
        <line x1=${PAD.left} x2=${W - PAD.right} y1=${y} y2=${y} class="grid" />
        <text x=${PAD.left - 6} y=${y + 4} text-anchor="end">${format(top * f)}</text>
      </g>`;
    })}
    ${days.map((d, i) =>
      i % every === 0
        ? html`<text key=${d} x=${PAD.left + step * (i + 0.5)} y=${H - 8} text-anchor="middle">${d.slice(5)}</text>`
        : null,
    )}
  </g>`;
}

/** @param {{series: Array<{key: string}>}} props */
export function Legend({ series }) {
  return html`<ul class="legend" aria-hidden="true">
    ${series.map(
      (s, i) => html`<li key=${s.key}><span class=${`swatch c${i % PALETTE_SIZE}`}></span>${s.key}</li>`,
    )}
  </ul>`;
}

/**
 * Bars per day, the series stacked.
 * @param {{days: string[], series: Array<{key: string, values: number[]}>, label: string, format?: (n: number) => string, name: string}} props
 */
export function StackedBars({ days, series, label, format = short, name }) {
  const [ref, W] = useWidth();
  const totals = days.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] || 0), 0));
  const top = niceTop(Math.max(0, ...totals));
  const plotH = H - PAD.top - PAD.bottom;
  const step = (W - PAD.left - PAD.right) / Math.max(1, days.length);
  const width = Math.max(2, step * 0.7);
  return html`<figure class="chart" data-chart=${name} ref=${ref}>
    <svg viewBox=${`0 0 ${W} ${H}`} width=${W} height=${H} role="img" aria-label=${label}>
      <${Axes} days=${days} top=${top} format=${format} W=${W} />
      ${days.map((day, i) => {
        let base = 0;
        const x = PAD.left + step * i + (step - width) / 2;
        return html`<g key=${day} data-day=${day}>
          ${series.map((s, j) => {
            const v = s.values[i] || 0;
            if (!v) return null;
            const h = (v / top) * plotH;
            const y = PAD.top + plotH - ((base + v) / top) * plotH;
            base += v;
            return html`<rect key=${s.key} class=${`c${j % PALETTE_SIZE}`} x=${x} y=${y} width=${width} height=${Math.max(h, 0.5)}
              data-key=${s.key} data-value=${v}><title>${`${day} · ${s.key}: ${format(v)}`}</title></rect>`;
          })}
        </g>`;
      })}
    </svg>
    <${Legend} series=${series} />
  </figure>`;
}

/**
 * Lines over days; a day without a value leaves a gap.
 * @param {{days: string[], lines: Array<{key: string, values: Array<number|null>}>, label: string, format?: (n: number) => string, name: string}} props
 */
export function Lines({ days, lines, label, format = short, name }) {
  const [ref, W] = useWidth();
  const all = lines.flatMap((l) => l.values.filter((v) => v != null));
  const top = niceTop(Math.max(0, .../** @type {number[]} */ (all)));
  const plotH = H - PAD.top - PAD.bottom;
  const step = (W - PAD.left - PAD.right) / Math.max(1, days.length);
  const at = (i, v) => [PAD.left + step * (i + 0.5), PAD.top + plotH - (v / top) * plotH];
  return html`<figure class="chart" data-chart=${name} ref=${ref}>
    <svg viewBox=${`0 0 ${W} ${H}`} width=${W} height=${H} role="img" aria-label=${label}>
      <${Axes} days=${days} top=${top} format=${format} W=${W} />
      ${lines.map((line, j) => {
        let d = '';
        let pen = false;
        line.values.forEach((v, i) => {
          if (v == null) {
            pen = false;
            return;
          }
          const [x, y] = at(i, v);
          d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
          pen = true;
        });
        return html`<g key=${line.key} class=${`line c${j % PALETTE_SIZE}`}>
          <path d=${d} fill="none" />
          ${line.values.map((v, i) => {
            if (v == null) return null;
            const [x, y] = at(i, v);
            return html`<circle cx=${x} cy=${y} r="3" data-key=${line.key} data-value=${v}>
              <title>${`${days[i]} · ${line.key}: ${format(v)}`}</title></circle>`;
          })}
        </g>`;
      })}
    </svg>
    <${Legend} series=${lines} />
  </figure>`;
}

/**
 * The numbers behind a chart: a row per day, a column per series, and a total.
 * @param {{days: string[], series: Array<{key: string, values: Array<number|null>}>, caption: string, format?: (n: number) => string, total?: boolean, name: string}} props
 */
export function ChartTable({ days, series, caption, format = (n) => n.toLocaleString(), total = true, name }) {
  return html`<div class="table-wrap chart-table">
    <table class="table" data-table=${name}>
      <caption>${caption}</caption>
      <thead><tr>
        <th scope="col">${t('console.usage.day')}</th>
        ${series.map((s) => html`<th scope="col" key=${s.key}>${s.key}</th>`)}
        ${total && html`<th scope="col">${t('console.usage.total')}</th>`}
      </tr></thead>
      <tbody>${days.map(
        (day, i) => html`<tr key=${day} data-day=${day}>
          <th scope="row">${day}</th>
          ${series.map((s) => html`<td class="num" key=${s.key} data-key=${s.key}>${s.values[i] == null ? '—' : format(s.values[i])}</td>`)}
          ${total && html`<td class="num" data-key="total">${format(series.reduce((sum, s) => sum + (s.values[i] || 0), 0))}</td>`}
        </tr>`,
      )}</tbody>
    </table>
  </div>`;
}
