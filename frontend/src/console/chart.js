/**
 * The usage page's charts, drawn as SVG by Chartist (npm `chartist` 1.x): stacked bars per day
 * and lines over days with gaps. Chartist was chosen over frappe-charts for weight and fit: it is
 * an ES module whose bar and line charts tree-shake to about 13 KB gzip, it draws plain SVG that
 * the theme's CSS colours (light and dark), it stacks bars and keeps a line's holes, and it puts
 * each point's value (`ct:value`) and our day (`ct:meta`) on the element it draws. It is loaded
 * by `import()` the first time a chart is drawn, so neither the chat page nor the console's other
 * screens carry it. Each chart is an image labelled for screen readers; the exact figures are in
 * the table under it.
 */
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import { t } from '../i18n/index.js';

const HEIGHT = 220;
export const PALETTE_SIZE = 8;

/** @type {Promise<[any, any]>|null} */
let library = null;
/** Chartist and its stylesheet, fetched once, on the first chart drawn. */
const loadChartist = () => (library ??= Promise.all([import('chartist'), import('chartist/dist/index.css')]));

/** @param {number} n */
function short(n) {
  if (Math.abs(n) >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return String(+n.toFixed(n < 10 && n % 1 ? 2 : 0));
}

/** The x axis names a day as MM-DD, and only as many days as fit without crowding. */
function dayAxis(/** @type {string[]} */ days, /** @type {number} */ width) {
  const every = Math.max(1, Math.ceil(days.length / Math.max(2, Math.floor(width / 64))));
  return {
    showGrid: false,
    labelInterpolationFnc: (/** @type {string} */ day, /** @type {number} */ i) => (i % every === 0 ? day.slice(5) : null),
  };
}

/**
 * A chart drawn by Chartist into a figure, redrawn when its data or the figure's width change.
 * `draw(Chartist, element, width)` makes the chart; the figure keeps `data-chart=name`.
 * @param {{name: string, label: string, series: Array<{key: string}>, draw: (lib: any, el: HTMLElement, width: number) => any, deps: any[]}} props
 */
function Figure({ name, label, series, draw, deps }) {
  const ref = useRef(/** @type {HTMLDivElement|null} */ (null));
  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    let chart = /** @type {any} */ (null);
    let width = 0;
    let live = true;
    const render = (/** @type {any} */ lib) => {
      const now = Math.max(240, Math.round(el.clientWidth));
      if (!live || now === width) return;
      width = now;
      chart?.detach();
      el.replaceChildren();
      chart = draw(lib, el, width);
      chart.on('created', (/** @type {any} */ data) => {
        data.svg.attr({ role: 'img', 'aria-label': label });
        data.svg.elem('title', {}, '', true).text(label);
      });
    };
    /** @type {ResizeObserver|null} */
    let observer = null;
    loadChartist().then(([lib]) => {
      if (!live) return;
      render(lib);
      observer = new ResizeObserver(() => render(lib));
      observer.observe(el);
    });
    return () => {
      live = false;
      observer?.disconnect();
      chart?.detach();
    };
  }, deps);
  return html`<figure class="chart" data-chart=${name}>
    <div class="chart-plot" ref=${ref}></div>
    <${Legend} series=${series} />
  </figure>`;
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
 * Each series for Chartist: its name, its palette class, and a point per day carrying the day as
 * meta, so a bar or point says which day and series it stands for.
 * @param {string[]} days @param {Array<{key: string, values: Array<number|null>}>} series
 */
function toChartist(days, series) {
  return {
    labels: days,
    series: series.map((s, j) => ({
      name: s.key,
      className: `ct-series c${j % PALETTE_SIZE}`,
      data: days.map((day, i) => ({ value: s.values[i] ?? null, meta: day })),
    })),
  };
}

/** A hover title on a drawn bar or point: the day, the series and the value. */
function titled(/** @type {(n: number) => string} */ format) {
  return (/** @type {any} */ data) => {
    if (data.type !== 'bar' && data.type !== 'point') return;
    const value = typeof data.value === 'object' ? data.value?.y : data.value;
    if (value == null) return;
    data.element.elem('title').text(`${data.meta} · ${data.series.name}: ${format(value)}`);
  };
}

/**
 * Bars per day, the series stacked. Counts get whole-number ticks only (`integer`), so an empty
 * range shows 0 and 1, not quarters.
 * @param {{days: string[], series: Array<{key: string, values: number[]}>, label: string, format?: (n: number) => string, name: string, integer?: boolean}} props
 */
export function StackedBars({ days, series, label, format = short, name, integer = true }) {
  const draw = (/** @type {any} */ lib, /** @type {HTMLElement} */ el, /** @type {number} */ width) => {
    const plot = width - 64;
    const bar = Math.max(2, Math.min(48, (plot / Math.max(1, days.length)) * 0.7));
    const chart = new lib.BarChart(el, toChartist(days, series), {
      height: HEIGHT,
      stackBars: true,
      chartPadding: { top: 12, right: 12, bottom: 0, left: 4 },
      axisX: dayAxis(days, plot),
      axisY: { offset: 52, scaleMinSpace: 30, onlyInteger: integer, labelInterpolationFnc: format },
    });
    chart.on('draw', (/** @type {any} */ data) => {
      if (data.type === 'bar') data.element.attr({ style: `stroke-width: ${bar.toFixed(1)}px` });
      titled(format)(data);
    });
    return chart;
  };
  return html`<${Figure} name=${name} label=${label} series=${series} draw=${draw} deps=${[JSON.stringify([days, series, label])]} />`;
}

/**
 * Lines over days; a day without a value leaves a gap.
 * @param {{days: string[], lines: Array<{key: string, values: Array<number|null>}>, label: string, format?: (n: number) => string, name: string}} props
 */
export function Lines({ days, lines, label, format = short, name }) {
  const draw = (/** @type {any} */ lib, /** @type {HTMLElement} */ el, /** @type {number} */ width) => {
    const chart = new lib.LineChart(el, toChartist(days, lines), {
      height: HEIGHT,
      low: 0,
      lineSmooth: false,
      chartPadding: { top: 12, right: 12, bottom: 0, left: 4 },
      axisX: dayAxis(days, width - 64),
      axisY: { offset: 52, scaleMinSpace: 30, labelInterpolationFnc: format },
    });
    chart.on('draw', titled(format));
    return chart;
  };
  return html`<${Figure} name=${name} label=${label} series=${lines} draw=${draw} deps=${[JSON.stringify([days, lines, label])]} />`;
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
