// A small SVG line chart for the operator dashboard: time on x, values on y, gaps where a value is null, axes with
// "nice" ticks and clock-time labels, and the current value of each series above the plot. No dependencies: it
// ships with the gateway and works offline.

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 170;
const MARGIN = { top: 10, right: 14, bottom: 24, left: 48 };
const MINUTE = 60_000;

function svg(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, String(value));
  }
  if (parent) parent.append(element);
  return element;
}

/** A step of 1, 2 or 5 times a power of ten that splits `range` into about `count` parts. */
export function niceStep(range, count) {
  if (!(range > 0)) return 1;
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

/** A readable number: whole numbers stay whole, small ones keep a decimal or two. */
export function formatNumber(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  const digits = Math.abs(value) >= 100 || Number.isInteger(value) ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return value.toLocaleString(undefined, { maximumFractionDigits: digits });
}

const timeLabel = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/**
 * A line chart drawn into `container`.
 * options: { label, series: [{ name }], format(value) → text, minTop: the least top of the y axis (so an empty chart
 * still has a readable scale), integer: whether values are counts (no fractional ticks) }
 * update(points, { from, to }): points are { t (ms since epoch), values: [number | null per series] }, oldest first.
 */
export class LineChart {
  constructor(container, { label, series, format = formatNumber, minTop = 1, integer = false }) {
    this.label = label;
    this.minTop = minTop;
    this.integer = integer;
    this.series = series;
    this.format = format;
    this.points = [];
    this.domain = null;

    this.values = document.createElement('dl');
    this.values.className = 'chart-values';
    this.plot = svg('svg', { class: 'chart-plot', role: 'img', height: HEIGHT, 'aria-label': label });
    this.title = svg('title', {}, this.plot);
    this.title.textContent = label;
    container.append(this.values, this.plot);

    // Redraw at the new width when the layout changes (a phone turned, a window resized).
    this.width = 0;
    this.resize = new ResizeObserver(() => {
      const width = Math.floor(this.plot.getBoundingClientRect().width);
      if (width > 0 && width !== this.width) {
        this.width = width;
        this.draw();
      }
    });
    this.resize.observe(this.plot);
  }

  update(points, domain) {
    this.points = points;
    this.domain = domain;
    this.showValues();
    this.draw();
  }

  /** The newest value of each series, as text above the plot and in the plot's accessible name. */
  showValues() {
    const newest = this.series.map((_, index) => {
      for (let i = this.points.length - 1; i >= 0; i--) {
        const value = this.points[i].values[index];
        if (value !== null && value !== undefined) return value;
      }
      return null;
    });
    this.values.replaceChildren();
    const spoken = [];
    this.series.forEach((series, index) => {
      const term = document.createElement('dt');
      const swatch = document.createElement('span');
      swatch.className = `chart-swatch chart-series-${index}`;
      swatch.setAttribute('aria-hidden', 'true');
      term.append(swatch, series.name);
      const value = document.createElement('dd');
      value.textContent = newest[index] === null ? '–' : this.format(newest[index]);
      this.values.append(term, value);
      spoken.push(`${series.name} ${value.textContent}`);
    });
    const summary = `${this.label}. Latest: ${spoken.join(', ')}.`;
    this.plot.setAttribute('aria-label', summary);
    this.title.textContent = summary;
  }

  draw() {
    const width = this.width || Math.floor(this.plot.getBoundingClientRect().width);
    if (!(width > 0) || !this.domain) return;
    this.plot.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
    // Keep the <title>; everything else is redrawn.
    for (const child of [...this.plot.children]) {
      if (child !== this.title) child.remove();
    }

    const { from, to } = this.domain;
    const inner = { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top, bottom: HEIGHT - MARGIN.bottom };
    let max = 0;
    for (const point of this.points) {
      for (const value of point.values) {
        if (value !== null && value > max) max = value;
      }
    }
    const reach = Math.max(max, this.minTop);
    const step = this.integer ? Math.max(1, niceStep(reach, 4)) : niceStep(reach, 4);
    const top = Math.max(step, Math.ceil(reach / step) * step);
    const x = (t) => inner.left + ((t - from) / Math.max(1, to - from)) * (inner.right - inner.left);
    const y = (v) => inner.bottom - (v / top) * (inner.bottom - inner.top);

    // Horizontal grid lines with their values on the left.
    const grid = svg('g', { class: 'chart-grid' }, this.plot);
    for (let value = 0; value <= top + step / 2; value += step) {
      const at = y(value);
      svg('line', { x1: inner.left, x2: inner.right, y1: at, y2: at }, grid);
      const text = svg('text', { x: inner.left - 6, y: at, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, grid);
      text.textContent = this.format(value);
    }

    // Clock times along the bottom, on round minutes, as many as fit.
    const axis = svg('g', { class: 'chart-axis' }, this.plot);
    svg('line', { x1: inner.left, x2: inner.right, y1: inner.bottom, y2: inner.bottom }, axis);
    const fit = Math.max(2, Math.floor((inner.right - inner.left) / 64));
    const tickMinutes = [1, 2, 5, 10, 15, 20, 30, 60].find((m) => (to - from) / (m * MINUTE) <= fit) ?? 60;
    const tickStep = tickMinutes * MINUTE;
    for (let t = Math.ceil(from / tickStep) * tickStep; t <= to; t += tickStep) {
      const at = x(t);
      svg('line', { x1: at, x2: at, y1: inner.bottom, y2: inner.bottom + 4 }, axis);
      const text = svg('text', { x: at, y: HEIGHT - 6, 'text-anchor': 'middle' }, axis);
      text.textContent = timeLabel.format(t);
    }

    // One path per series; a null value lifts the pen, so gaps stay gaps rather than false zeros. A value alone
    // between gaps (one request's wait in an hour) would be an invisible line, so it is drawn as a dot.
    this.series.forEach((_, index) => {
      const segments = [[]];
      for (const point of this.points) {
        const value = point.values[index];
        if (value === null || value === undefined || point.t < from || point.t > to) {
          if (segments.at(-1).length > 0) segments.push([]);
          continue;
        }
        segments.at(-1).push([x(point.t), y(value)]);
      }
      const d = segments
        .filter((segment) => segment.length > 1)
        .map((segment) => segment.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${px.toFixed(1)},${py.toFixed(1)}`).join(''))
        .join('');
      if (d) svg('path', { d, class: `chart-line chart-series-${index}` }, this.plot);
      for (const segment of segments.filter((s) => s.length === 1)) {
        svg('circle', { cx: segment[0][0].toFixed(1), cy: segment[0][1].toFixed(1), r: 2.5, class: `chart-dot chart-series-${index}` }, this.plot);
      }
    });
  }
}
