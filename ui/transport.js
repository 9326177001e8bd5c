/* The transport to the backend, the same calls in both front ends: Tauri
   commands and events in the desktop app (window.__TAURI__), JSON-RPC over
   POST /api and server-sent events from GET /events with the API token when
   bitweend serves this page to a browser. Knows nothing of the screens: the
   caller passes what to do on events, on the stream's ups and downs, and
   on a refused token. */



const TAURI = window.__TAURI__;
/** In the desktop app (Tauri), not in a browser. */
export const DESKTOP = !!(TAURI && TAURI.core && typeof TAURI.core.invoke === 'function');
const TOKEN_KEY = 'bitween-token';
let token = null;
let rpcId = 0;
let eventSource = null;
let whenUnauthorized = () => {};

class BackendError extends Error {
  constructor(message, code, unreachable = false) {
    super(message);
    this.code = code;
    this.unreachable = unreachable;
  }
}

function messageOf(e) {
  if (e == null) return 'unknown error';
  if (typeof e === 'string') return e;
  if (typeof e.message === 'string' && e.message) return e.message;
  try {
    return JSON.stringify(e);
  } catch (_) {
    return String(e);
  }
}

/** A Tauri command; rejects with a BackendError carrying the message. */
export async function invoke(cmd, args = {}) {
  try {
    return await TAURI.core.invoke(cmd, args);
  } catch (e) {
    throw new BackendError(messageOf(e), e && e.code);
  }
}

/** One JSON-RPC method of the backend, the same in both transports. */
export async function api(method, params = null) {
  if (DESKTOP) return invoke('api', { method, params });
  let res;
  try {
    res = await fetch('/api', {
      method: 'POST',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++rpcId, method, params }),
    });
  } catch (e) {
    throw new BackendError(`cannot reach bitweend (${messageOf(e)})`, 0, true);
  }
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    body = null;
  }
  if (res.status === 401) {
    const err = new BackendError((body && body.error && body.error.message) || 'wrong token', -32001);
    if (!DESKTOP) {
      forgetToken();
      whenUnauthorized();
    }
    throw err;
  }
  if (!body) throw new BackendError(`bitweend answered HTTP ${res.status}`, 0, true);
  if (body.error) throw new BackendError(body.error.message, body.error.code);
  return body.result;
}

/** Calls `handler` with each payload of the desktop shell's event `name`
 *  (`bitween-event`, or one of Tauri's `tauri://drag-*`). */
export async function listen(name, handler) {
  await TAURI.event.listen(name, (e) => handler(e.payload));
}

/** The browser's event stream from bitweend: `handlers.event` gets every
 *  backend event, `handlers.open` runs each time the stream (re)opens and
 *  `handlers.down` each time it is lost. The browser reconnects on its
 *  own, sending the last event's id so bitweend resends what was missed
 *  (or a Resync event when it cannot); when the browser gives up, this
 *  opens a new stream a little later. */
export function openEventStream(handlers) {
  if (eventSource) eventSource.close();
  const es = new EventSource(`/events?token=${encodeURIComponent(token)}`);
  eventSource = es;
  es.onopen = () => handlers.open();
  es.onmessage = (m) => {
    let ev;
    try {
      ev = JSON.parse(m.data);
    } catch (_) {
      return;
    }
    handlers.event(ev);
  };
  es.onerror = () => {
    if (eventSource !== es) return;
    handlers.down();
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (bitweend gone or the token refused): try
      // again a little later; a refused token shows the token form.
      setTimeout(async () => {
        if (eventSource !== es || !token) return;
        try {
          await api('status');
          openEventStream(handlers);
        } catch (e) {
          if (e.code !== -32001) setTimeout(() => es.onerror(), 4000);
        }
      }, 3000);
    }
  };
}

/** The browser's API token: from the address's `#token=` (then removed
 *  from the address bar), else the one this tab kept. */
export function tokenFromPage() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    setToken(decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  } else {
    token = sessionStorage.getItem(TOKEN_KEY);
  }
  return token;
}

/** Uses `value` as the API token from now on, for this tab. */
export function setToken(value) {
  token = value;
  sessionStorage.setItem(TOKEN_KEY, token);
}

/** What to do when bitweend refuses the token (it makes a new one each
 *  time it starts); the token and the stream are dropped before. */
export function onUnauthorized(fn) {
  whenUnauthorized = fn;
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  if (eventSource) eventSource.close();
  eventSource = null;
}
