// Number, size, duration and time formatting shared by the views.

export function rate(v) {
  if (v === null || v === undefined) return '—';
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M/s';
  if (v >= 1e3) return (v / 1e3).toFixed(1) + 'k/s';
  return (v >= 10 ? Math.round(v) : Math.round(v * 10) / 10) + '/s';
}

export function count(v) {
  if (v === null || v === undefined) return '—';
  if (v >= 1e9) return (v / 1e9).toFixed(1) + 'G';
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  return String(v);
}

export function bytes(v) {
  if (v === null || v === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + ' ' + units[i];
}

export function seconds(v) {
  if (v === null || v === undefined) return '—';
  if (v < 1e-3) return Math.round(v * 1e6) + ' µs';
  if (v < 1) return Math.round(v * 1e3) + ' ms';
  if (v < 120) return v.toFixed(1) + ' s';
  return Math.round(v / 60) + ' min';
}

export function millis(v) { return v === null || v === undefined ? '—' : seconds(v / 1000); }

export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString(undefined, { hour12: false });
}

export function ago(iso) {
  if (!iso) return '—';
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (isNaN(s)) return iso;
  if (s < 5) return 'just now';
  if (s < 60) return Math.round(s) + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  if (s < 86400) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}
