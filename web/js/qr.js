// Draws a QR code that the server encoded (rows of "0"/"1", dark modules as "1") as an SVG built
// with DOM methods: no markup from strings, and nothing a Content-Security-Policy would refuse.

const SVG = 'http://www.w3.org/2000/svg';
/** The light border around the code that scanners need (4 modules, per ISO/IEC 18004). */
const QUIET_ZONE = 4;

function svgElement(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  return el;
}

/**
 * An <svg> of the QR code `rows`, scaled by CSS (`className`), named for assistive technology
 * by `label`. Each run of dark modules in a row is one <rect>.
 */
export function qrSvg(rows, { label, className = 'qr', id = null } = {}) {
  const size = rows.length + 2 * QUIET_ZONE;
  const svg = svgElement('svg', {
    viewBox: `0 0 ${size} ${size}`,
    class: className,
    role: 'img',
    'shape-rendering': 'crispEdges',
    'aria-label': label,
  });
  if (id) svg.setAttribute('id', id);
  const title = svgElement('title', {});
  title.textContent = label;
  svg.append(title, svgElement('rect', { x: 0, y: 0, width: size, height: size, fill: '#ffffff' }));
  rows.forEach((row, y) => {
    let x = 0;
    while (x < row.length) {
      if (row[x] !== '1') {
        x += 1;
        continue;
      }
      const start = x;
      while (x < row.length && row[x] === '1') x += 1;
      svg.append(svgElement('rect', { x: start + QUIET_ZONE, y: y + QUIET_ZONE, width: x - start, height: 1, fill: '#000000' }));
    }
  });
  return svg;
}
