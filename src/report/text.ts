/** Plain-text helpers shared by the renderers (tables, byte sizes); no colour or TTY decisions here. */

/** Renders rows as an aligned text table (first row = header). */
export function formatTable(rows: string[][], align: ('l' | 'r')[] = []): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell))));
  return rows
    .map((r) => r.map((cell, i) => (align[i] === 'r' ? padStart(cell, widths[i]) : padEnd(cell, widths[i]))).join('  ').trimEnd())
    .join('\n');
}

const ansi = /\u001b\[[0-9;]*m/g;
function visibleLength(s: string): number {
  return s.replace(ansi, '').length;
}
function padEnd(s: string, w: number): string {
  return s + ' '.repeat(Math.max(0, w - visibleLength(s)));
}
function padStart(s: string, w: number): string {
  return ' '.repeat(Math.max(0, w - visibleLength(s))) + s;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}
