/* Words and numbers for people (sizes, speeds, durations, lists of names,
   error messages said once), and timing helpers (coalesce, debounce). */

/** 1536 -> "1.5 KiB". */



export function humanSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}
export const humanSpeed = (bps) => `${humanSize(bps)}/s`;

/** 125 -> "2 min 5 s"; a day and more in days and hours. */
export function humanDuration(secs) {
  if (secs == null || !Number.isFinite(Number(secs))) return '';
  const s = Math.max(0, Math.round(Number(secs)));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return m < 10 && s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
export const bareJid = (jid) => String(jid || '').split('/')[0];
export const basename = (path) => String(path).replace(/[/\\]+$/, '').split(/[/\\]/).pop() || path;

/** "a", "a and b", "a, b and 3 more". */
export function listNames(names, max = 3) {
  if (names.length <= 1) return names.join('');
  if (names.length <= max) return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** "Cannot share x" + "cannot share x: no such file" says it once. */
export function explain(action, message) {
  const m = String(message || 'unknown error');
  const verb = action.split(' ').slice(0, 2).join(' ').toLowerCase();
  if (m.toLowerCase().startsWith(verb)) return m.charAt(0).toUpperCase() + m.slice(1);
  return `${action}: ${m}`;
}

export const magnet = (s) => `magnet:?xt=urn:btih:${s.hash}&dn=${encodeURIComponent(s.name)}&xl=${s.size}`;

/** Runs fn at most every `ms`, always once more after the last call. */
export function coalesce(fn, ms) {
  let timer = null;
  let again = false;
  const run = async () => {
    again = false;
    try {
      await fn();
    } finally {
      timer = setTimeout(() => {
        timer = null;
        if (again) schedule();
      }, ms);
    }
  };
  const schedule = () => {
    if (timer) again = true;
    else {
      timer = true;
      run();
    }
  };
  return schedule;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
