/* Bitween's frontend logic: picks the transport (Tauri commands and events in
   the desktop app; JSON-RPC over POST /api and server-sent events from
   /events when bitweend serves this page to a browser), keeps the backend's
   state in one object and renders the screens from it. Everything refreshes
   on backend events; a slow poll is only a fallback. No framework, no build
   step, no external resources. */
'use strict';

(() => {
  // ---- small helpers --------------------------------------------------------

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  let uid = 0;

  /** Builds an element: props are class, text, on<event> handlers, hidden,
   *  or attributes; children are nodes or strings. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k === 'hidden') node.hidden = true;
      else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c != null && c !== false) node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** Line icons on a 24x24 grid: path data, or [cx, cy, r] for a circle. */
  const ICONS = {
    folder: ['M3 7.5A2.5 2.5 0 0 1 5.5 5H9l2 2.2h7.5A2.5 2.5 0 0 1 21 9.7v7.8a2.5 2.5 0 0 1-2.5 2.5h-13A2.5 2.5 0 0 1 3 17.5z'],
    users: [[9, 7.8, 3.4], 'M2.8 20c.4-3.5 2.9-5.8 6.2-5.8s5.8 2.3 6.2 5.8', 'M15.8 4.6a3.3 3.3 0 0 1 0 6.3', 'M17.8 14.5c1.9.7 3.2 2.6 3.4 5.5'],
    transfers: ['M7 4v16', 'M3 16l4 4 4-4', 'M17 20V4', 'M13 8l4-4 4 4'],
    sliders: ['M4 6h9', 'M17 6h3', 'M4 12h3', 'M11 12h9', 'M4 18h11', 'M19 18h1', [15, 6, 2], [9, 12, 2], [17, 18, 2]],
    upload: ['M12 15V4', 'M7.5 8.5L12 4l4.5 4.5', 'M4 14v4a2.5 2.5 0 0 0 2.5 2.5h11A2.5 2.5 0 0 0 20 18v-4'],
    search: [[11, 11, 6.5], 'M20 20l-4.3-4.3'],
    file: ['M6.5 3h7.5l5 5v11a2 2 0 0 1-2 2H6.5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z', 'M14 3v5h5'],
    chevron: ['M9 6l6 6-6 6'],
    x: ['M6 6l12 12', 'M18 6L6 18'],
    user: [[12, 8, 3.8], 'M4.5 20.5c.6-4 3.6-6.5 7.5-6.5s6.9 2.5 7.5 6.5'],
  };

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('fill', 'none');
    svg.setAttribute('stroke', 'currentColor');
    svg.setAttribute('stroke-width', '1.8');
    svg.setAttribute('stroke-linecap', 'round');
    svg.setAttribute('stroke-linejoin', 'round');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    for (const shape of ICONS[name] || []) {
      let node;
      if (typeof shape === 'string') {
        node = document.createElementNS(SVG_NS, 'path');
        node.setAttribute('d', shape);
      } else {
        node = document.createElementNS(SVG_NS, 'circle');
        node.setAttribute('cx', shape[0]);
        node.setAttribute('cy', shape[1]);
        node.setAttribute('r', shape[2]);
      }
      svg.append(node);
    }
    return svg;
  }
  const iconSpan = (name, cls = 'icon') => el('span', { class: cls }, icon(name));
  const fileIcon = () => el('span', { class: 'file-icon', 'aria-hidden': 'true' }, iconSpan('file'));

  /** 1536 -> "1.5 KiB". */
  function humanSize(bytes) {
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
  const humanSpeed = (bps) => `${humanSize(bps)}/s`;

  /** 125 -> "2 min 5 s"; a day and more in days and hours. */
  function humanDuration(secs) {
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
  const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
  const bareJid = (jid) => String(jid || '').split('/')[0];
  const basename = (path) => String(path).replace(/[/\\]+$/, '').split(/[/\\]/).pop() || path;

  /** "a", "a and b", "a, b and 3 more". */
  function listNames(names, max = 3) {
    if (names.length <= 1) return names.join('');
    if (names.length <= max) return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
    return `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
  }

  /** "Cannot share x" + "cannot share x: no such file" says it once. */
  function explain(action, message) {
    const m = String(message || 'unknown error');
    const verb = action.split(' ').slice(0, 2).join(' ').toLowerCase();
    if (m.toLowerCase().startsWith(verb)) return m.charAt(0).toUpperCase() + m.slice(1);
    return `${action}: ${m}`;
  }

  const magnet = (s) => `magnet:?xt=urn:btih:${s.hash}&dn=${encodeURIComponent(s.name)}&xl=${s.size}`;

  /** Runs fn at most every `ms`, always once more after the last call. */
  function coalesce(fn, ms) {
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

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  /** Keeps `container`'s children in the order of `items`, one per key:
   *  existing nodes are updated in place (focus and state survive), new
   *  ones created, missing ones removed. */
  function syncList(container, items, key, create, update) {
    const existing = new Map();
    for (const child of Array.from(container.children)) existing.set(child.dataset.key, child);
    let prev = null;
    for (const item of items) {
      const k = key(item);
      let node = existing.get(k);
      if (node) existing.delete(k);
      else {
        node = create(item);
        node.dataset.key = k;
      }
      update(node, item);
      const want = prev ? prev.nextSibling : container.firstChild;
      if (node !== want) container.insertBefore(node, want);
      prev = node;
    }
    for (const node of existing.values()) node.remove();
  }

  function avatarFor(node, jid) {
    const name = String(jid || '?');
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    node.className = `avatar c${h % 8}`;
    node.textContent = name.charAt(0) || '?';
  }

  // ---- transport --------------------------------------------------------------

  const TAURI = window.__TAURI__;
  const DESKTOP = !!(TAURI && TAURI.core && typeof TAURI.core.invoke === 'function');
  const TOKEN_KEY = 'bitween-token';
  let token = null;
  let rpcId = 0;
  let eventSource = null;

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
  async function invoke(cmd, args = {}) {
    try {
      return await TAURI.core.invoke(cmd, args);
    } catch (e) {
      throw new BackendError(messageOf(e), e && e.code);
    }
  }

  /** One JSON-RPC method of the backend, the same in both transports. */
  async function api(method, params = null) {
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
      onUnauthorized();
      throw err;
    }
    if (!body) throw new BackendError(`bitweend answered HTTP ${res.status}`, 0, true);
    if (body.error) throw new BackendError(body.error.message, body.error.code);
    return body.result;
  }

  /** Calls `handler` with every backend event (one Event of src/events.rs:
   *  DemoActivity, for one, comes only from the desktop app's demo). */
  async function subscribe(handler) {
    if (DESKTOP) {
      await TAURI.event.listen('bitween-event', (e) => handler(e.payload));
      const drag = (on) => () => $('#drop-zone').classList.toggle('dragging', on);
      await TAURI.event.listen('tauri://drag-enter', () => {
        if (S.started) navigate('shares');
        drag(true)();
      });
      await TAURI.event.listen('tauri://drag-over', drag(true));
      await TAURI.event.listen('tauri://drag-leave', drag(false));
      await TAURI.event.listen('tauri://drag-drop', (e) => {
        drag(false)();
        const paths = (e.payload && e.payload.paths) || [];
        if (paths.length && S.started) sharePaths(paths);
      });
      return;
    }
    openEventStream(handler);
  }

  function openEventStream(handler) {
    if (eventSource) eventSource.close();
    const es = new EventSource(`/events?token=${encodeURIComponent(token)}`);
    eventSource = es;
    es.onopen = () => {
      S.streamDown = false;
      refreshAll(true);
    };
    es.onmessage = (m) => {
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch (_) {
        return;
      }
      handler(ev);
    };
    es.onerror = () => {
      if (eventSource !== es) return;
      S.streamDown = true;
      setConnection({ kind: 'offline', reason: 'lost the connection to bitweend; reconnecting…' });
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (bitweend gone or the token refused): try
        // again a little later; a refused token shows the token form.
        setTimeout(async () => {
          if (eventSource !== es || !token) return;
          try {
            await api('status');
            openEventStream(handler);
          } catch (e) {
            if (e.code !== -32001) setTimeout(() => es.onerror(), 4000);
          }
        }, 3000);
      }
    };
  }

  function onUnauthorized() {
    if (DESKTOP) return;
    sessionStorage.removeItem(TOKEN_KEY);
    token = null;
    if (eventSource) eventSource.close();
    eventSource = null;
    showTokenForm('bitweend did not accept this token. It makes a new one each time it starts: take the current one from its api-token file or from the link it prints.');
  }

  // ---- state --------------------------------------------------------------------

  /** What one account's backend told us; `resetData` starts it afresh. */
  function accountData() {
    return {
      me: '',
      status: null,
      addresses: [],
      mapping: null,
      mappingError: null,
      publicIpFailed: null,
      shares: [],
      localHashes: new Set(),
      transfers: new Map(),
      failures: new Map(), // hash -> {name, reason}: downloads that failed for good
      hashing: new Map(), // path -> {size, since, done?}
      starting: new Set(),
      contacts: [],
      catalog: new Map(), // jid -> ContactView
      catalogLoaded: false,
      byHash: new Map(), // hash -> {share, jids: Map jid -> online}
      requests: new Set(),
      expanded: new Set(),
      showAll: new Set(),
      diagnoses: new Map(),
      search: { text: '', seq: 0, groups: new Map(), limited: false },
      settings: null,
      demoSeen: null, // the demo's "seen" marks, kept in memory only
    };
  }

  const S = {
    started: false,
    view: 'shares',
    appState: null,
    conn: { kind: 'connecting' },
    streamDown: false,
    names: new Map(), // hash -> name, from anything seen
    ...accountData(),
  };

  // ---- toasts and dialogs ----------------------------------------------------------

  const recentToasts = new Map();

  /** A message in the corner: kind info|ok|warn|error, optional action. */
  function toast(message, opts = {}) {
    const kind = opts.kind || 'info';
    const now = Date.now();
    if (recentToasts.get(message) > now - 4000) return;
    if (recentToasts.size > 100) recentToasts.clear();
    recentToasts.set(message, now);
    const box = $('#toast');
    if (opts.key) {
      // A newer message about the same thing replaces the older one.
      for (const old of $$('.toast', box)) if (old.dataset.key === opts.key) old.remove();
    }
    // (The container is a polite live region; errors interrupt.)
    const node = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null, 'data-key': opts.key || null });
    let timer = null;
    const close = () => {
      clearTimeout(timer);
      node.remove();
    };
    node.append(el('p', { class: 'toast-text', text: message }));
    if (opts.action) {
      node.append(el('button', {
        type: 'button',
        class: 'small',
        text: opts.action.label,
        onclick: () => {
          close();
          opts.action.run();
        },
      }));
    }
    node.append(el('button', { type: 'button', class: 'ghost dismiss', 'aria-label': 'Dismiss this message', onclick: close }, iconSpan('x')));
    box.append(node);
    while (box.children.length > 4) box.firstElementChild.remove();
    const ms = opts.timeout || (kind === 'error' || kind === 'warn' ? 14000 : 6000);
    const arm = (t) => {
      clearTimeout(timer);
      timer = setTimeout(close, t);
    };
    arm(ms);
    node.addEventListener('mouseenter', () => clearTimeout(timer));
    node.addEventListener('mouseleave', () => arm(4000));
    node.addEventListener('focusin', () => clearTimeout(timer));
    node.addEventListener('focusout', () => arm(4000));
  }

  /** A modal question; resolves {ok, checked}. */
  function confirmDialog({ title, text, ok = 'OK', danger = false, check = null }) {
    const d = $('#confirm');
    if (typeof d.showModal !== 'function') {
      return Promise.resolve({ ok: window.confirm(`${title}\n\n${text}`), checked: false });
    }
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    const okBtn = $('#confirm-ok');
    const cancelBtn = $('#confirm-cancel');
    okBtn.textContent = ok;
    okBtn.className = danger ? 'danger' : 'primary';
    const checkLabel = $('#confirm-check-label');
    const checkBox = $('#confirm-check');
    checkLabel.hidden = !check;
    checkBox.checked = !!(check && check.checked);
    $('#confirm-check-text').textContent = check ? check.label : '';
    return new Promise((resolve) => {
      const finish = (result) => {
        okBtn.onclick = null;
        cancelBtn.onclick = null;
        d.oncancel = null;
        if (d.open) d.close();
        resolve(result);
      };
      okBtn.onclick = (e) => {
        e.preventDefault();
        finish({ ok: true, checked: checkBox.checked });
      };
      cancelBtn.onclick = () => finish({ ok: false, checked: false });
      d.oncancel = (e) => {
        e.preventDefault();
        finish({ ok: false, checked: false });
      };
      d.showModal();
      (danger ? cancelBtn : okBtn).focus();
    });
  }

  function showError(node, message) {
    const m = String(message || '');
    node.textContent = m.charAt(0).toUpperCase() + m.slice(1);
    node.hidden = !message;
  }

  // ---- screens -----------------------------------------------------------------------

  function showOnly(id) {
    for (const s of ['#boot', '#screen-token', '#screen-login', '#app']) $(s).hidden = s !== id;
  }

  function showTokenForm(error) {
    showOnly('#screen-token');
    showError($('#token-error'), error || '');
    $('#token-input').value = '';
    $('#token-input').focus();
  }

  async function showLogin() {
    S.started = false;
    showOnly('#screen-login');
    const st = S.appState || {};
    if (st.keyring_error) offerFileOption(st.keyring_error);
    // The saved account could not start (its password is gone from the
    // keyring, say): ask again, with what we know filled in.
    if (st.account && st.connection_error && !st.running) {
      $('#login-jid').value = st.account.jid || '';
      $('#login-server').value = st.account.server || '';
      showError($('#login-error'), st.connection_error);
    }
    const dir = $('#login-download-dir');
    if (!dir.value) {
      try {
        const settings = await invoke('get_settings');
        if (settings && settings.download_dir) dir.value = settings.download_dir;
      } catch (_) {
        /* the shell may have no settings before the first login */
      }
    }
    $('#login-jid').focus();
  }

  function offerFileOption(reason) {
    $('#login-file-option').hidden = false;
    $('#login-keyring-msg').textContent =
      `Your password cannot be kept in a system keyring here (${reason.replace(/^no keyring available:\s*/i, '')}). ` +
      'You can keep it in a file that only your user can read instead.';
    $('#login-secret-hint').textContent = 'No keyring on this system: see below.';
  }

  function showApp() {
    showOnly('#app');
    $('#drop-zone').hidden = !DESKTOP;
    $('#share-form').hidden = DESKTOP;
    $('#settings-form').hidden = !DESKTOP;
    $('#settings-readonly').hidden = DESKTOP;
    $('#account-card').hidden = !DESKTOP;
    const demo = inDemo();
    $('#demo-badge').hidden = !demo;
    $('#demo-banner').hidden = !demo;
    $('#logout').hidden = demo;
    $('#account-leave-demo').hidden = !demo;
    if (!DESKTOP) $('#settings-sub').textContent = 'How this bitweend runs (read-only here).';
    if (DESKTOP && S.appState && S.appState.account) setMe(S.appState.account.jid);
    if (DESKTOP && S.appState && !S.appState.running) {
      setConnection({ kind: 'offline', reason: S.appState.connection_error || 'the backend is not running' });
    }
    S.started = true;
    const saved = sessionStorage.getItem('bitween-view');
    navigate(['shares', 'contacts', 'transfers', 'settings'].includes(saved) ? saved : 'shares', false);
    refreshAll(true);
  }

  const inDemo = () => !!(DESKTOP && S.appState && S.appState.demo);
  /** No account, or the saved one cannot start (its password is gone):
   *  the account screen, rather than the main window. */
  const needsLogin = () => {
    const st = S.appState || {};
    return !st.account || !!(st.connection_error && !st.running);
  };

  function setMe(jid) {
    S.me = bareJid(jid);
    $('#me-jid').textContent = S.me;
    $('#me-jid').title = S.me;
    avatarFor($('#me-avatar'), S.me);
    $('#me-avatar').setAttribute('aria-hidden', 'true');
  }

  function navigate(view, focus = false) {
    S.view = view;
    sessionStorage.setItem('bitween-view', view);
    for (const v of ['shares', 'contacts', 'transfers', 'settings']) $(`#view-${v}`).hidden = v !== view;
    for (const b of $$('[data-nav]')) {
      if (b.dataset.nav === view) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
    $('#content').scrollTop = 0;
    if (view === 'settings') loadSettings();
    if (focus) $(`#h-${view}`).focus();
  }

  // ---- loading ---------------------------------------------------------------------------

  /** Refreshes everything; the catalog (possibly large) only when asked. */
  async function refreshAll(withCatalog = false) {
    const jobs = [refreshStatus(), refreshShares(), refreshTransfers(), refreshContacts()];
    if (withCatalog || !S.catalogLoaded) jobs.push(refreshCatalog());
    await Promise.allSettled(jobs);
  }

  /** Background refreshes do not toast; an unreachable backend shows in the
   *  status bar. */
  function quietly(p) {
    return p.catch((e) => {
      if (e && e.unreachable) setConnection({ kind: 'offline', reason: e.message });
      else if (DESKTOP && S.appState && !S.appState.running) { /* status bar says why */ } else console.warn(e);
    });
  }

  const refreshStatus = () => quietly((async () => {
    const st = await api('status');
    S.status = st;
    S.addresses = st.addresses || [];
    if (st.jid) setMe(st.jid);
    if (!S.streamDown) setConnection(connectionOf(st.connection));
    renderStatusBar();
    if (S.view === 'settings') renderSettingsFacts();
  })());

  const refreshShares = () => quietly((async () => {
    S.shares = (await api('shares')) || [];
    S.localHashes = new Set(S.shares.map((s) => s.hash));
    for (const s of S.shares) S.names.set(s.hash, s.name);
    renderShares();
    renderDownloadButtons();
  })());

  const refreshTransfers = () => quietly((async () => setTransfers((await api('transfers')) || []))());

  const refreshContacts = () => quietly((async () => {
    S.contacts = (await api('contacts')) || [];
    renderContacts();
  })());

  const refreshCatalog = () => quietly((async () => setCatalog((await api('catalog')) || []))());
  const refreshCatalogSoon = coalesce(refreshCatalog, 400);
  const refreshContactsSoon = coalesce(refreshContacts, 300);
  const refreshSharesSoon = coalesce(refreshShares, 300);

  // ---- events ----------------------------------------------------------------------------------

  function onEvent(ev) {
    if (!ev || typeof ev !== 'object') return;
    switch (ev.type) {
      case 'Connected':
        setMe(ev.jid);
        setConnection({ kind: 'online', jid: ev.jid });
        if (DESKTOP && S.appState) S.appState.running = true;
        if (S.started) refreshAll(true);
        break;
      case 'Disconnected':
        setConnection({ kind: 'offline', reason: ev.reason, retrying: ev.retrying });
        break;
      case 'ContactSharesChanged':
        refreshCatalogSoon();
        break;
      case 'ContactPresenceChanged':
        patchPresence(ev.jid, ev.resource, ev.online);
        break;
      case 'RosterChanged':
        refreshContactsSoon();
        break;
      case 'SubscriptionRequest':
        S.requests.add(bareJid(ev.jid));
        renderContacts();
        refreshContactsSoon();
        toast(`${ev.jid} wants to become your contact.`, {
          action: { label: 'Review', run: () => navigate('contacts', true) },
        });
        break;
      case 'LocalSharesChanged':
        refreshSharesSoon();
        break;
      case 'Transfers':
        setTransfers(ev.transfers || []);
        break;
      case 'DownloadFinished':
        S.names.set(ev.hash, ev.name);
        toast(`Downloaded ${ev.name}.`, {
          kind: 'ok',
          key: `download:${ev.hash}`,
          action: DESKTOP ? { label: 'Open', run: () => openPath(ev.hash, false) } : { label: 'Show', run: () => navigate('transfers', true) },
        });
        refreshTransfers();
        refreshSharesSoon();
        break;
      case 'DownloadFailed': {
        const name = nameOf(ev.hash);
        S.failures.set(ev.hash, { name, reason: ev.reason });
        toast(`The download of ${name} failed: ${ev.reason}`, { kind: 'error', key: `download:${ev.hash}` });
        refreshTransfers();
        break;
      }
      case 'ShareBroken':
        toast(ev.reason, { kind: 'warn' });
        refreshSharesSoon();
        break;
      case 'InvalidEntries':
        toast(`${ev.jid} published ${plural((ev.reasons || []).length, 'invalid entry', 'invalid entries')}; they were left out.`, { kind: 'warn' });
        break;
      case 'PublishTruncated':
        toast(`Your share list is too large for your server: only the first ${ev.published} of ${ev.total} shares are published.`, { kind: 'warn' });
        break;
      case 'PublishFailed':
        toast(`Publishing your share list failed: ${ev.reason}`, { kind: 'error' });
        break;
      case 'AddressesChanged':
        S.addresses = (ev.addresses || []).map(String);
        renderStatusBar();
        break;
      case 'PublicIpDecided':
        S.publicIpFailed = null;
        renderStatusBar();
        break;
      case 'PublicIpLookupFailed':
        S.publicIpFailed = ev.reason;
        renderStatusBar();
        break;
      case 'PortMappingChanged':
        S.mapping = ev.mapping || null;
        S.mappingError = null;
        renderStatusBar();
        break;
      case 'PortMappingFailed':
        S.mappingError = ev.reason;
        renderStatusBar();
        break;
      case 'Hashing':
        S.hashing.set(ev.path, { size: ev.size, since: Date.now() });
        renderHashing();
        break;
      case 'HashingProgress': {
        const h = S.hashing.get(ev.path) || { since: Date.now() };
        S.hashing.set(ev.path, { ...h, size: ev.size, done: ev.done });
        renderHashing();
        break;
      }
      case 'HashingDone':
        S.hashing.delete(ev.path);
        renderHashing();
        if (ev.error) toast(explain(`Cannot share ${basename(ev.path)}`, ev.error), { kind: 'error' });
        refreshSharesSoon();
        break;
      case 'DemoActivity':
        toast(ev.text, { kind: 'info' });
        break;
      case 'OwnItemPublished':
        break;
      default:
        // A newer backend may send more; nothing to do with it here.
        break;
    }
  }

  // ---- connection and status bar --------------------------------------------------------------

  function connectionOf(c) {
    if (c && typeof c === 'object' && c.Online) return { kind: 'online', jid: c.Online.jid };
    if (c && typeof c === 'object' && c.Offline) return { kind: 'offline', reason: c.Offline.reason, retrying: c.Offline.retrying };
    return { kind: 'connecting' };
  }

  function setConnection(c) {
    S.conn = c;
    const node = $('#status-connection');
    let text;
    if (c.kind === 'online') text = `Online as ${c.jid}`;
    else if (c.kind === 'connecting') text = 'Offline: connecting to your server…';
    else text = `Offline: ${c.reason || 'not connected'}${c.retrying ? ' (retrying)' : ''}`;
    if (node.textContent !== text) node.textContent = text; // (it is a live region)
    node.title = text;
    node.className = `conn ${c.kind}`;
  }

  /** loopback, private (LAN, VPN, ULA, link-local, documentation) or global. */
  function addressScope(addr) {
    let ip = String(addr);
    if (ip.startsWith('[')) ip = ip.slice(1, ip.indexOf(']'));
    else if (ip.includes('.')) ip = ip.split(':')[0];
    if (ip.includes('.')) {
      const [a, b, c] = ip.split('.').map(Number);
      if (a === 127) return 'loopback';
      if (a === 10 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b < 128) || (a === 169 && b === 254)) return 'private';
      if ((a === 192 && b === 0 && c === 2) || (a === 198 && b === 51 && c === 100) || (a === 203 && b === 0 && c === 113) || a === 0 || a >= 224) return 'private';
      return 'global';
    }
    const low = ip.toLowerCase();
    if (low === '::1') return 'loopback';
    if (/^f[cd]/.test(low) || /^fe[89ab]/.test(low) || low.startsWith('2001:db8')) return 'private';
    if (/^[23]/.test(low)) return 'global';
    return 'private';
  }

  function reachabilityHint() {
    const addrs = S.addresses;
    if (!addrs.length) return 'Not reachable yet: no address published.';
    const scopes = new Set(addrs.map(addressScope));
    const ports = [...new Set(addrs.map((a) => String(a).split(':').pop()))].join(', ');
    let hint;
    if (S.mapping) hint = `Reachable from the internet: your router forwards port ${S.mapping.external_port}.`;
    else if (scopes.has('global')) hint = `Reachable from the internet if port ${ports} is open in your firewall or router.`;
    else if (scopes.has('private')) hint = 'Only contacts on your network or VPN can connect to you; you can still download from contacts they can reach.';
    else hint = 'Only this computer can connect to you (loopback).';
    if (S.publicIpFailed && !scopes.has('global')) hint += ' Your public IPv4 address is unknown for now.';
    return hint;
  }

  function renderStatusBar() {
    const addrs = S.addresses;
    const node = $('#status-addresses');
    if (addrs.length) {
      const shown = addrs.slice(0, 2).join(', ');
      node.textContent = `Published: ${shown}${addrs.length > 2 ? ` +${addrs.length - 2} more` : ''}`;
      node.title = `Addresses and ports your contacts see: ${addrs.join(', ')}`;
    } else {
      node.textContent = 'No address published yet';
      node.title = '';
    }
    const reach = $('#status-reach');
    reach.textContent = reachabilityHint();
    reach.title = reach.textContent;
  }

  // ---- my shares -------------------------------------------------------------------------------

  function nameOf(hash) {
    const t = S.transfers.get(hash);
    if (t && t.name) return t.name;
    if (S.names.has(hash)) return S.names.get(hash);
    const info = S.byHash.get(hash);
    return info ? info.share.name : hash;
  }

  function peerNames(t) {
    return (t.peers || []).map((p) => p.contact || p.address);
  }

  function shareRow(share) {
    const hash = share.hash;
    const name = el('div', { class: 'name' });
    const kindTag = el('span', { class: 'tag', hidden: true });
    const size = el('span', { class: 'size' });
    const peers = el('span', { class: 'peers' });
    const uploaded = el('span', { class: 'uploaded' });
    const copy = el('button', { type: 'button', class: 'copy-magnet small', text: 'Copy magnet' });
    const remove = el('button', { type: 'button', class: 'unshare small danger', text: 'Remove' });
    copy.addEventListener('click', () => copyMagnet(hash));
    remove.addEventListener('click', () => unshare(hash));
    const li = el('li', { class: 'row', 'data-share': hash },
      el('div', { class: 'row-main' }, fileIcon(),
        el('div', { class: 'row-text' }, el('div', { class: 'name-line' }, name, kindTag), el('div', { class: 'meta' }, size, peers, uploaded))),
      el('div', { class: 'row-actions' }, copy, remove));
    li._r = { name, size, peers, uploaded, copy, remove, kindTag };
    return li;
  }

  function updateShareRow(li, share) {
    const r = li._r;
    const t = S.transfers.get(share.hash);
    r.name.textContent = share.name;
    r.name.title = share.name;
    r.size.textContent = humanSize(share.size);
    const names = t ? peerNames(t) : [];
    r.peers.textContent = names.length ? `${plural(names.length, 'peer')}: ${listNames(names, 2)}` : 'no peers';
    r.peers.title = names.join('\n');
    const up = t ? t.uploaded_bytes : 0;
    r.uploaded.textContent = `${humanSize(up)} uploaded${t && t.up_bytes_per_sec ? ` · ↑ ${humanSpeed(t.up_bytes_per_sec)}` : ''}`;
    const isDownload = t && t.kind === 'download';
    r.kindTag.hidden = !isDownload;
    r.kindTag.textContent = isDownload ? (t.state === 'seeding' ? 'downloaded' : 'downloading') : '';
    r.copy.setAttribute('aria-label', `Copy the magnet link of ${share.name}`);
    r.remove.setAttribute('aria-label', `Stop sharing ${share.name}`);
  }

  function renderShares() {
    const list = $('#shares-list');
    syncList(list, S.shares, (s) => s.hash, shareRow, updateShareRow);
    $('#shares-empty').hidden = S.shares.length > 0;
    const total = S.shares.reduce((n, s) => n + (Number(s.size) || 0), 0);
    $('#shares-total').textContent = S.shares.length ? `${plural(S.shares.length, 'item')}, ${humanSize(total)}` : '';
  }

  function renderHashing() {
    const list = $('#hashing-list');
    const items = [...S.hashing.entries()].map(([path, h]) => ({ path, ...h }));
    list.hidden = items.length === 0;
    syncList(list, items, (h) => h.path, (h) => {
      const name = el('div', { class: 'name', text: basename(h.path), title: h.path });
      const meta = el('span', { class: 'hashing-meta' });
      const bar = el('progress', { 'aria-label': `Preparing ${basename(h.path)}` });
      const li = el('li', { class: 'row', 'data-hashing': h.path },
        el('div', { class: 'row-main' }, fileIcon(), el('div', { class: 'row-text' }, name, el('div', { class: 'meta' }, meta))),
        el('div', { class: 'row-actions' }, bar));
      li._r = { meta, bar };
      return li;
    }, (li, h) => {
      const secs = Math.round((Date.now() - h.since) / 1000);
      // Until the first progress report the bar stays indeterminate.
      if (h.done != null && h.size) {
        li._r.bar.max = h.size;
        li._r.bar.value = h.done;
        li._r.meta.textContent = `${humanSize(h.done)} of ${humanSize(h.size)} · hashing… ${humanDuration(secs)}`;
      } else {
        li._r.meta.textContent = `${h.size != null ? `${humanSize(h.size)} · ` : ''}hashing… ${humanDuration(secs)}`;
      }
    });
    const badge = $('#badge-shares');
    badge.hidden = items.length === 0;
    badge.textContent = items.length ? String(items.length) : '';
    badge.title = items.length ? `${plural(items.length, 'item')} being prepared` : '';
  }
  setInterval(() => {
    if (S.hashing.size) renderHashing();
  }, 1000);

  async function copyMagnet(hash) {
    const share = S.shares.find((s) => s.hash === hash);
    if (!share) return;
    const link = magnet(share);
    let ok = false;
    try {
      await navigator.clipboard.writeText(link);
      ok = true;
    } catch (_) {
      const ta = el('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true' });
      ta.value = link;
      document.body.append(ta);
      ta.select();
      try {
        ok = document.execCommand('copy');
      } catch (__) {
        ok = false;
      }
      ta.remove();
    }
    if (ok) toast(`Magnet link of ${share.name} copied.`, { kind: 'ok' });
    else toast(`Could not copy to the clipboard; the magnet link is: ${link}`, { kind: 'warn', timeout: 30000 });
  }

  async function unshare(hash) {
    const name = nameOf(hash);
    const answer = await confirmDialog({
      title: 'Stop sharing?',
      text: `Your contacts will no longer be able to download “${name}” from you. The files stay on your disk.`,
      ok: 'Stop sharing',
      danger: true,
    });
    if (!answer.ok) return;
    try {
      await api('unshare', { hash });
      toast(`${name} is no longer shared.`, { kind: 'ok' });
    } catch (e) {
      toast(explain(`Cannot stop sharing ${name}`, e.message), { kind: 'error' });
    }
    refreshShares();
    refreshTransfers();
  }

  /** Reports what sharing gave: [{path, share?, error?}]. */
  function reportShared(results) {
    const ok = results.filter((r) => r.share).map((r) => r.share);
    for (const r of results) {
      S.hashing.delete(r.path);
      if (r.error) toast(explain(`Cannot share ${basename(r.path)}`, r.error), { kind: 'error' });
    }
    renderHashing();
    if (ok.length === 1) toast(`Sharing ${ok[0].name} (${humanSize(ok[0].size)}).`, { kind: 'ok' });
    else if (ok.length > 1) toast(`Sharing ${ok.length} items: ${listNames(ok.map((s) => s.name))}.`, { kind: 'ok' });
    if (ok.length) refreshShares();
  }

  async function sharePaths(paths) {
    for (const p of paths) if (!S.hashing.has(p)) S.hashing.set(p, { size: null, since: Date.now() });
    renderHashing();
    try {
      reportShared((await invoke('share_paths', { paths })) || []);
    } catch (e) {
      for (const p of paths) S.hashing.delete(p);
      renderHashing();
      toast(explain('Cannot share', e.message), { kind: 'error' });
    }
  }

  async function pickAndShare(folder) {
    try {
      reportShared((await invoke('pick_and_share', { folder })) || []);
    } catch (e) {
      toast(explain('Cannot share', e.message), { kind: 'error' });
    }
  }

  async function shareFromBrowser(ev) {
    ev.preventDefault();
    const input = $('#share-path');
    const errorNode = $('#share-path-error');
    const path = input.value.trim();
    if (!path) {
      showError(errorNode, "Enter the full path of a file or folder on the daemon's computer.");
      input.focus();
      return;
    }
    showError(errorNode, '');
    S.hashing.set(path, { size: null, since: Date.now() });
    renderHashing();
    await whileBusy($('#share-path-submit'), null, async () => {
      try {
        const share = await api('share', { path });
        input.value = '';
        reportShared([{ path, share }]);
      } catch (e) {
        S.hashing.delete(path);
        renderHashing();
        showError(errorNode, e.message);
        toast(explain(`Cannot share ${path}`, e.message), { kind: 'error' });
      }
    });
  }

  // ---- catalog and contacts ------------------------------------------------------------------

  const SEEN_PREFIX = 'bitween-seen:';
  const pendingNotices = new Map(); // jid -> [names]
  const flushNotices = debounce(() => {
    for (const [jid, names] of pendingNotices) {
      const text = names.length === 1
        ? `${jid} shared a new file: ${names[0]}`
        : `${jid} shared ${names.length} new files: ${listNames(names)}`;
      toast(text, {
        action: {
          label: 'Show',
          run: () => {
            S.expanded.add(jid);
            navigate('contacts');
            renderContacts();
            const row = $(`[data-jid="${CSS.escape(jid)}"] .expand`);
            if (row) row.focus();
          },
        },
      });
    }
    pendingNotices.clear();
  }, 2500);

  function loadSeen() {
    // The demo's contacts are not remembered: it leaves nothing behind.
    if (inDemo()) return S.demoSeen || {};
    try {
      return JSON.parse(localStorage.getItem(SEEN_PREFIX + S.me) || '{}') || {};
    } catch (_) {
      return {};
    }
  }

  /** Notes the shares of each contact that are new since we last looked
   *  (remembered across runs), batched into one message per contact. A
   *  contact seen for the first time sets the baseline quietly. */
  function noticeNewShares(list) {
    const seen = loadSeen();
    for (const c of list) {
      const shares = c.resources.flatMap((r) => r.shares);
      if (!shares.length) continue;
      const before = seen[c.jid] ? new Set(seen[c.jid]) : null;
      if (before) {
        const fresh = [];
        const names = new Set();
        for (const s of shares) {
          if (!before.has(s.hash) && !names.has(s.name)) {
            names.add(s.name);
            fresh.push(s.name);
          }
        }
        if (fresh.length && shares.length <= 5000) {
          pendingNotices.set(c.jid, [...(pendingNotices.get(c.jid) || []), ...fresh]);
        }
      }
      seen[c.jid] = [...new Set(shares.map((s) => s.hash))].slice(0, 5000);
    }
    if (inDemo()) S.demoSeen = seen;
    else try {
      localStorage.setItem(SEEN_PREFIX + S.me, JSON.stringify(seen));
    } catch (_) {
      /* storage full or unavailable: notices then only last a session */
    }
    if (pendingNotices.size) flushNotices();
  }

  function setCatalog(list) {
    if (S.me) noticeNewShares(list);
    S.catalog = new Map(list.map((c) => [c.jid, c]));
    S.catalogLoaded = true;
    indexCatalog();
    renderContacts();
    if (S.search.text) runSearch();
  }

  function indexCatalog() {
    S.byHash = new Map();
    for (const c of S.catalog.values()) {
      for (const r of c.resources) {
        for (const s of r.shares) {
          let e = S.byHash.get(s.hash);
          if (!e) S.byHash.set(s.hash, (e = { share: s, jids: new Map() }));
          e.jids.set(c.jid, e.jids.get(c.jid) || !!r.online);
        }
      }
    }
  }

  /** A resource came or went: patch the catalog without fetching it all. */
  function patchPresence(jid, resource, online) {
    const c = S.catalog.get(jid);
    if (!c) {
      refreshCatalogSoon();
      return;
    }
    const set = new Set(c.online);
    if (online) set.add(resource);
    else set.delete(resource);
    c.online = [...set];
    for (const r of c.resources) if (r.resource === resource) r.online = online;
    indexCatalog();
    renderContacts();
    if (S.search.text) runSearch();
    // A resource that comes online publishes (again): its item follows.
    if (online) refreshCatalogSoon();
  }

  function subscriptionText(c) {
    if (!c.roster) return 'not in your contact list';
    const sub = c.roster.subscription;
    if (sub === 'both') return 'you share with each other';
    if (sub === 'to') return c.roster.pending_in ? 'asks to see your shares' : 'sees nothing of yours';
    if (sub === 'from') return c.roster.pending_out ? 'request sent, waiting for them to accept' : 'sees your shares; you do not see theirs';
    return c.roster.pending_out ? 'request sent, waiting for them to accept' : 'not connected';
  }

  /** Roster entries plus anyone else the catalog knows (never ourselves). */
  function contactModels() {
    const out = new Map();
    for (const r of S.contacts) out.set(bareJid(r.jid), { jid: bareJid(r.jid), roster: r, view: null });
    for (const [jid, view] of S.catalog) {
      if (jid === S.me) continue;
      const m = out.get(jid) || { jid, roster: null, view: null };
      m.view = view;
      out.set(jid, m);
    }
    for (const m of out.values()) {
      m.online = !!(m.view && m.view.online.length);
      m.shares = m.view ? m.view.resources.reduce((n, r) => n + r.shares.length, 0) : 0;
      m.name = (m.roster && m.roster.name) || '';
    }
    return [...out.values()].sort((a, b) => (b.online - a.online) || (a.name || a.jid).localeCompare(b.name || b.jid));
  }

  function contactRow(m) {
    const bodyId = `contact-body-${++uid}`;
    const av = el('span', { class: 'avatar', 'aria-hidden': 'true' });
    const jidEl = el('span', { class: 'jid' });
    const subEl = el('span', { class: 'subscription' });
    const expand = el('button', { type: 'button', class: 'expand', 'aria-expanded': 'false', 'aria-controls': bodyId },
      iconSpan('chevron', 'icon chevron'), av, el('span', { class: 'who' }, jidEl, subEl));
    const presence = el('span', { class: 'presence' });
    const count = el('span', { class: 'share-count' });
    const body = el('div', { class: 'contact-body', id: bodyId, hidden: true });
    const li = el('li', { class: 'contact', 'data-jid': m.jid },
      el('div', { class: 'contact-head' }, expand, presence, count), body);
    expand.addEventListener('click', () => {
      if (S.expanded.has(m.jid)) S.expanded.delete(m.jid);
      else S.expanded.add(m.jid);
      renderContacts();
    });
    li._r = { av, jidEl, subEl, expand, presence, count, body };
    return li;
  }

  function updateContactRow(li, m) {
    const r = li._r;
    avatarFor(r.av, m.name || m.jid);
    r.jidEl.textContent = m.name ? `${m.name} (${m.jid})` : m.jid;
    r.jidEl.title = m.jid;
    r.subEl.textContent = subscriptionText(m);
    r.presence.textContent = m.online ? 'online' : 'offline';
    r.presence.className = `presence ${m.online ? 'online' : 'offline'}`;
    r.count.textContent = plural(m.shares, 'share');
    const open = S.expanded.has(m.jid);
    r.expand.setAttribute('aria-expanded', String(open));
    r.body.hidden = !open;
    if (open) renderContactBody(r.body, m);
    else r.body.replaceChildren();
  }

  const SHOWN_PER_RESOURCE = 200;

  function renderContactBody(body, m) {
    const resources = m.view ? [...m.view.resources] : [];
    // Online resources that published nothing still show, as devices.
    if (m.view) {
      for (const res of m.view.online) {
        if (!resources.some((r) => r.resource === res)) resources.push({ resource: res, online: true, addresses: [], shares: [] });
      }
    }
    if (!resources.length) {
      body.replaceChildren(el('p', { class: 'muted', text: m.online ? 'Online, but shares nothing (or uses no Bitween).' : 'Nothing known: they share nothing, or have not been online since you started.' }));
      return;
    }
    if (body.firstElementChild && body.firstElementChild.tagName === 'P') body.replaceChildren();
    let holder = body.querySelector(':scope > .resources');
    if (!holder) {
      holder = el('div', { class: 'resources' });
      body.append(holder);
      body.append(diagnoseBlock(m.jid));
    }
    syncList(holder, resources, (r) => r.resource, (r) => {
      const title = el('h3', { class: 'resource-name' });
      const state = el('span', { class: 'availability' });
      const addresses = el('span', { class: 'addresses' });
      const list = el('ul', { class: 'list' });
      const more = el('button', { type: 'button', class: 'small ghost more', hidden: true });
      const key = `${m.jid}/${r.resource}`;
      more.addEventListener('click', () => {
        S.showAll.add(key);
        renderContacts();
      });
      const node = el('div', { class: 'resource' }, el('div', { class: 'resource-head' }, iconSpan('user'), title, state, addresses), list, more);
      node._r = { title, state, addresses, list, more, key };
      return node;
    }, (node, r) => {
      const x = node._r;
      x.title.textContent = r.resource;
      x.state.textContent = r.online ? 'online' : 'offline';
      x.state.className = `availability ${r.online ? 'online' : 'offline'}`;
      x.addresses.textContent = r.addresses.length ? `at ${r.addresses.join(', ')}` : '';
      const all = S.showAll.has(x.key);
      const shares = all ? r.shares : r.shares.slice(0, SHOWN_PER_RESOURCE);
      syncList(x.list, shares, (s) => s.hash, catalogShareRow, (li, s) => updateCatalogShareRow(li, s, true));
      x.more.hidden = all || r.shares.length <= SHOWN_PER_RESOURCE;
      x.more.textContent = `Show all ${r.shares.length} shares`;
      if (!r.shares.length) x.list.replaceChildren(el('li', { class: 'muted', text: 'No shares on this device.' }));
    });
  }

  function diagnoseBlock(jid) {
    const out = el('div', { class: 'diagnosis', 'aria-live': 'polite' });
    const button = el('button', { type: 'button', class: 'small', text: 'Check connection', 'aria-label': `Check whether ${jid} can be reached` });
    button.addEventListener('click', () => whileBusy(button, null, async () => {
      out.replaceChildren(el('p', { class: 'muted', text: 'Checking…' }));
      try {
        const result = (await api('diagnose', { jid })) || [];
        out.replaceChildren(...(result.length ? result.map((d) => el('div', {},
          el('p', {}, el('strong', { text: `${d.resource}: ` }), d.diagnosis.message),
          el('ul', {}, (d.diagnosis.checks || []).map((c) => el('li', { text: c.message }))))) : [el('p', { class: 'muted', text: 'They published no address to check.' })]));
      } catch (e) {
        out.replaceChildren(el('p', { class: 'form-error', text: e.message }));
      }
    }));
    return el('div', { class: 'actions' }, button, out);
  }

  /** A share of a contact (or a search hit): name, size, who has it, and
   *  the one-click download. */
  function catalogShareRow(share) {
    const name = el('div', { class: 'name' });
    const size = el('span', { class: 'size' });
    const holders = el('span', { class: 'holders' });
    const from = el('span', { class: 'from' });
    const availability = el('span', { class: 'availability offline' });
    const button = el('button', { type: 'button', class: 'download small primary', text: 'Download' });
    button.addEventListener('click', () => startDownload(share.hash));
    const li = el('li', { class: 'row', 'data-hash': share.hash },
      el('div', { class: 'row-main' }, fileIcon(),
        el('div', { class: 'row-text' }, name, el('div', { class: 'meta' }, size, holders, from, availability))),
      el('div', { class: 'row-actions' }, button));
    li._r = { name, size, holders, from, availability, button };
    return li;
  }

  function updateCatalogShareRow(li, share, underContact = false) {
    const r = li._r;
    const info = S.byHash.get(share.hash) || S.search.groups.get(share.hash);
    const jids = info ? [...info.jids.keys()] : [];
    const online = info ? [...info.jids.values()].some(Boolean) : false;
    r.name.textContent = share.name;
    r.name.title = share.name;
    r.size.textContent = humanSize(share.size);
    r.holders.textContent = plural(jids.length, 'contact');
    r.holders.title = `Shared by ${listNames(jids, 10)}`;
    r.from.textContent = underContact ? '' : listNames(jids, 2);
    r.from.hidden = !r.from.textContent;
    r.availability.textContent = online ? '' : 'offline';
    r.availability.hidden = online;
    r.availability.title = online ? '' : 'Nobody who shares this is online now: a download waits for them.';
    r.button.dataset.name = share.name;
    updateDownloadButton(r.button, share.hash, share.name);
  }

  function downloadState(hash) {
    const t = S.transfers.get(hash);
    if (t) {
      if (t.kind === 'share') return { text: 'Shared by you', done: true };
      if (t.state === 'seeding') return { text: 'Downloaded', done: true };
      if (t.state === 'paused') return { text: 'Paused', busy: true };
      if (t.state === 'error') return { text: 'Failed', busy: true };
      return { text: 'Downloading', busy: true };
    }
    if (S.starting.has(hash)) return { text: 'Starting…', busy: true };
    if (S.localHashes.has(hash)) return { text: 'Shared by you', done: true };
    return null;
  }

  function updateDownloadButton(button, hash, name) {
    const st = downloadState(hash);
    const text = st ? st.text : 'Download';
    if (button.textContent !== text) button.textContent = text;
    button.disabled = !!st;
    button.classList.toggle('primary', !st);
    button.classList.toggle('done-state', !!(st && st.done));
    button.classList.toggle('busy-state', !!(st && st.busy));
    button.setAttribute('aria-label', st ? `${name}: ${text.toLowerCase()}` : `Download ${name}`);
  }

  function renderDownloadButtons() {
    for (const b of $$('button.download')) {
      const row = b.closest('[data-hash]');
      if (row) updateDownloadButton(b, row.dataset.hash, b.dataset.name || row.dataset.hash);
    }
  }

  async function startDownload(hash) {
    const info = S.byHash.get(hash) || S.search.groups.get(hash);
    const name = info ? info.share.name : hash;
    S.names.set(hash, name);
    const sources = info ? [...info.jids.entries()] : [];
    const anyOnline = sources.some(([, on]) => on);
    S.starting.add(hash);
    renderDownloadButtons();
    try {
      await api('download', { hash });
      S.failures.delete(hash);
      if (!sources.length) {
        toast(`No contact lists ${name} right now: the download will start when one does.`, { kind: 'warn' });
      } else if (!anyOnline) {
        const who = listNames(sources.map(([jid]) => jid));
        toast(`${who} ${sources.length === 1 ? 'is' : 'are'} offline: the download will start when they come back.`, { kind: 'warn', timeout: 20000, key: `download:${hash}` });
      } else {
        toast(`Downloading ${name}.`, { key: `download:${hash}`, action: { label: 'Show', run: () => navigate('transfers', true) } });
      }
      await refreshTransfers();
    } catch (e) {
      toast(explain(`Cannot download ${name}`, e.message), { kind: 'error', key: `download:${hash}` });
    } finally {
      S.starting.delete(hash);
      renderDownloadButtons();
    }
  }

  function requestRow(jid) {
    const av = el('span', { class: 'avatar', 'aria-hidden': 'true' });
    avatarFor(av, jid);
    const accept = el('button', { type: 'button', class: 'accept small primary', text: 'Accept', 'aria-label': `Accept ${jid} as a contact` });
    const decline = el('button', { type: 'button', class: 'decline small', text: 'Decline', 'aria-label': `Decline ${jid}'s request` });
    accept.addEventListener('click', () => answerRequest(jid, true));
    decline.addEventListener('click', () => answerRequest(jid, false));
    return el('li', { class: 'row request', 'data-request': jid },
      el('div', { class: 'row-main' }, av, el('div', { class: 'row-text' },
        el('div', { class: 'name', text: jid }),
        el('div', { class: 'meta' }, el('span', { text: 'wants to share with you and see what you share' })))),
      el('div', { class: 'row-actions' }, accept, decline));
  }

  async function answerRequest(jid, accept) {
    try {
      await api(accept ? 'accept_contact' : 'decline_contact', { jid });
      S.requests.delete(jid);
      toast(accept ? `${jid} is now your contact.` : `Declined ${jid}'s request.`, { kind: 'ok' });
    } catch (e) {
      toast(`Cannot answer ${jid}: ${e.message}`, { kind: 'error' });
    }
    renderContacts();
    refreshContacts();
  }

  function renderContacts() {
    const models = contactModels();
    syncList($('#contacts-list'), models, (m) => m.jid, contactRow, updateContactRow);
    $('#contacts-empty').hidden = models.length > 0;
    const online = models.filter((m) => m.online).length;
    $('#contacts-total').textContent = models.length ? `${online} of ${models.length} online` : '';
    for (const c of S.contacts) if (c.pending_in) S.requests.add(bareJid(c.jid));
    for (const jid of [...S.requests]) {
      const c = S.contacts.find((x) => bareJid(x.jid) === jid);
      if (c && !c.pending_in && (c.subscription === 'from' || c.subscription === 'both')) S.requests.delete(jid);
    }
    const requests = [...S.requests].sort();
    $('#requests').hidden = requests.length === 0;
    syncList($('#requests-list'), requests, (j) => j, requestRow, () => {});
    const badge = $('#badge-contacts');
    badge.hidden = requests.length === 0;
    badge.textContent = String(requests.length);
    badge.title = requests.length ? `${plural(requests.length, 'contact request')} waiting` : '';
  }

  async function addContact(ev) {
    ev.preventDefault();
    const input = $('#add-contact-jid');
    const errorNode = $('#add-contact-error');
    const jid = input.value.trim();
    if (!/^[^@\s/]+@[^@\s/]+$/.test(jid)) {
      showError(errorNode, 'Enter an XMPP address like friend@example.org.');
      input.focus();
      return;
    }
    showError(errorNode, '');
    await whileBusy($('#add-contact-submit'), null, async () => {
      try {
        await api('add_contact', { jid });
        input.value = '';
        toast(`Request sent to ${jid}: you see each other's shares once they accept.`, { kind: 'ok' });
        refreshContacts();
      } catch (e) {
        showError(errorNode, e.message);
        toast(explain(`Cannot add ${jid}`, e.message), { kind: 'error' });
      }
    });
  }

  // ---- search ------------------------------------------------------------------------------------

  const SEARCH_LIMIT = 200;

  async function runSearch() {
    const text = S.search.text;
    const seq = ++S.search.seq;
    if (!text) {
      $('#search-results').hidden = true;
      $('#roster').hidden = false;
      return;
    }
    let hits;
    try {
      hits = (await api('search', { text, limit: SEARCH_LIMIT })) || [];
    } catch (e) {
      if (seq === S.search.seq) toast(`Search failed: ${e.message}`, { kind: 'error' });
      return;
    }
    if (seq !== S.search.seq) return; // a newer search is on its way
    const groups = new Map();
    for (const h of hits) {
      let g = groups.get(h.share.hash);
      if (!g) groups.set(h.share.hash, (g = { share: h.share, jids: new Map() }));
      g.jids.set(h.jid, g.jids.get(h.jid) || !!h.online);
    }
    S.search.groups = groups;
    S.search.limited = hits.length >= SEARCH_LIMIT;
    const shares = [...groups.values()].map((g) => g.share);
    $('#search-results').hidden = false;
    $('#h-search').textContent = shares.length
      ? `${plural(shares.length, 'file')} matching “${text}”${S.search.limited ? ` (the first ${SEARCH_LIMIT} matches)` : ''}`
      : `Results for “${text}”`;
    syncList($('#search-list'), shares, (s) => s.hash, catalogShareRow, updateCatalogShareRow);
    const empty = $('#search-empty');
    empty.hidden = shares.length > 0;
    empty.textContent = `None of your contacts shares anything named like “${text}”.`;
  }
  const searchSoon = debounce(runSearch, 250);

  // ---- transfers --------------------------------------------------------------------------------------

  function setTransfers(list) {
    S.transfers = new Map(list.map((t) => [t.hash, t]));
    for (const t of list) if (t.name) S.names.set(t.hash, t.name);
    renderTransfers();
    renderShares();
    renderDownloadButtons();
  }

  function stateLabel(t) {
    if (t.synthetic) return 'Failed';
    if (t.kind === 'share') return t.state === 'paused' ? 'Paused' : t.state === 'checking' ? 'Checking' : t.state === 'error' ? 'Failed' : 'Seeding';
    switch (t.state) {
      case 'fetching_metadata': return 'Waiting for a source';
      case 'checking': return 'Checking';
      case 'downloading': return 'Downloading';
      case 'seeding': return 'Done';
      case 'paused': return 'Paused';
      case 'error': return 'Failed';
      default: return t.state;
    }
  }

  function transferRow(t) {
    const hash = t.hash;
    const name = el('span', { class: 'name' });
    const state = el('span', { class: 'state' });
    const bar = el('progress', { max: '1', value: '0' });
    const amount = el('span', { class: 'amount' });
    const speed = el('span', { class: 'speed' });
    const eta = el('span', { class: 'eta' });
    const peers = el('span', { class: 'peers' });
    const diskName = el('p', { class: 'disk-name', hidden: true });
    const reason = el('p', { class: 'reason', hidden: true });
    const mk = (cls, text) => el('button', { type: 'button', class: `${cls} small`, text });
    const pause = mk('pause', 'Pause');
    const resume = mk('resume', 'Resume');
    const cancel = mk('cancel danger', 'Cancel');
    const openFile = mk('open-file', 'Open');
    const openFolder = mk('open-folder', 'Show in folder');
    pause.addEventListener('click', () => transferAction('pause', hash));
    resume.addEventListener('click', () => transferAction('resume', hash));
    cancel.addEventListener('click', () => cancelTransfer(hash));
    openFile.addEventListener('click', () => openPath(hash, false));
    openFolder.addEventListener('click', () => openPath(hash, true));
    const li = el('li', { class: 'transfer', 'data-transfer': hash },
      el('div', { class: 't-top' }, fileIcon(), name, state),
      bar,
      diskName,
      el('div', { class: 't-meta' }, amount, speed, eta, peers),
      reason,
      el('div', { class: 't-actions' }, pause, resume, cancel, openFile, openFolder));
    li._r = { name, state, bar, amount, speed, eta, peers, diskName, reason, pause, resume, cancel, openFile, openFolder };
    return li;
  }

  function updateTransferRow(li, t) {
    const r = li._r;
    const failed = !!t.synthetic || t.state === 'error';
    const done = t.kind === 'share' || t.state === 'seeding';
    li.dataset.state = t.synthetic ? 'failed' : t.state;
    li.classList.toggle('done', done && !failed);
    li.classList.toggle('failed', failed);
    li.classList.toggle('paused', t.state === 'paused');
    li.classList.toggle('waiting', t.state === 'fetching_metadata');
    r.name.textContent = t.name;
    r.name.title = t.name;
    // Where the name on disk differs (the name was taken, or the contact's
    // list named it otherwise), say both.
    const onDisk = t.kind === 'download' && t.path ? String(t.path).split(/[\\/]/).pop() : '';
    const notes = [];
    if (t.listed_name && t.listed_name !== t.name) notes.push(`listed as “${t.listed_name}”`);
    if (onDisk && t.total_bytes > 0 && onDisk !== t.name) notes.push(`saved as “${onDisk}”`);
    r.diskName.textContent = notes.join(' · ');
    r.diskName.hidden = !notes.length;
    r.state.textContent = stateLabel(t);
    const total = Number(t.total_bytes) || 0;
    const have = Number(t.done_bytes) || 0;
    if (total > 0) {
      r.bar.max = total;
      r.bar.value = Math.min(have, total);
      const pct = Math.floor((have / total) * 100);
      r.amount.textContent = done ? humanSize(total) : `${humanSize(have)} of ${humanSize(total)} · ${pct}%`;
    } else if (t.synthetic) {
      r.bar.max = 1;
      r.bar.value = 0;
      r.amount.textContent = '';
    } else {
      r.bar.removeAttribute('value'); // indeterminate: size not known yet
      const info = S.byHash.get(t.hash);
      const sources = info ? [...info.jids.entries()] : [];
      const online = sources.filter(([, on]) => on).map(([jid]) => jid);
      if (!sources.length) r.amount.textContent = 'waiting for a contact who shares it';
      else if (!online.length) r.amount.textContent = `waiting for ${listNames(sources.map(([jid]) => jid))} to come online`;
      else r.amount.textContent = `getting the file list from ${listNames(online)}…`;
    }
    r.bar.setAttribute('aria-label', `Progress of ${t.name}`);
    const down = Number(t.down_bytes_per_sec) || 0;
    const up = Number(t.up_bytes_per_sec) || 0;
    if (t.synthetic || t.state === 'fetching_metadata') r.speed.textContent = '';
    else if (t.kind === 'download' && !done) r.speed.textContent = `↓ ${humanSpeed(down)}${up ? ` · ↑ ${humanSpeed(up)}` : ''}`;
    else r.speed.textContent = `${up ? `↑ ${humanSpeed(up)} · ` : ''}${humanSize(t.uploaded_bytes || 0)} uploaded`;
    r.speed.hidden = !r.speed.textContent;
    if (t.state === 'downloading') r.eta.textContent = t.eta_secs != null ? `${humanDuration(t.eta_secs)} left` : down ? '' : 'stalled';
    else r.eta.textContent = '';
    r.eta.hidden = !r.eta.textContent;
    const names = t.synthetic ? [] : peerNames(t);
    r.peers.textContent = t.synthetic ? '' : names.length ? `${plural(names.length, 'peer')}: ${listNames(names, 3)}` : 'no peers connected';
    r.peers.title = names.join('\n');
    const why = t.synthetic ? t.reason : t.error || (failed && S.failures.get(t.hash) ? S.failures.get(t.hash).reason : '');
    r.reason.textContent = why ? `Failed: ${why}` : '';
    r.reason.hidden = !why;
    // (No pausing while the file list is still awaited: there is nothing
    // to pause yet; Cancel stops the wait.)
    const active = ['downloading', 'seeding', 'checking'].includes(t.state);
    r.pause.hidden = t.synthetic || !active;
    r.resume.hidden = t.synthetic || !(t.state === 'paused' || t.state === 'error');
    r.cancel.hidden = t.kind === 'share';
    r.cancel.textContent = t.synthetic || done ? 'Remove' : 'Cancel';
    r.openFile.hidden = !DESKTOP || t.synthetic || !done;
    r.openFolder.hidden = !DESKTOP || t.synthetic;
    r.pause.setAttribute('aria-label', `Pause ${t.name}`);
    r.resume.setAttribute('aria-label', `Resume ${t.name}`);
    r.cancel.setAttribute('aria-label', `${r.cancel.textContent} ${t.name}`);
    r.openFile.setAttribute('aria-label', `Open ${t.name}`);
    r.openFolder.setAttribute('aria-label', `Show ${t.name} in its folder`);
  }

  function renderTransfers() {
    const all = [...S.transfers.values()];
    const downloads = all.filter((t) => t.kind === 'download');
    for (const [hash, f] of S.failures) {
      if (!S.transfers.has(hash)) downloads.push({ hash, name: f.name, kind: 'download', state: 'error', synthetic: true, reason: f.reason });
    }
    const uploads = all.filter((t) => t.kind === 'share' && ((t.peers || []).length || t.up_bytes_per_sec || t.state === 'paused' || t.state === 'checking' || t.state === 'error'));
    syncList($('#downloads-list'), downloads, (t) => t.hash, transferRow, updateTransferRow);
    syncList($('#uploads-list'), uploads, (t) => t.hash, transferRow, updateTransferRow);
    $('#downloads-empty').hidden = downloads.length > 0;
    $('#uploads-empty').hidden = uploads.length > 0;
    const active = downloads.filter((t) => !t.synthetic && t.state !== 'seeding').length;
    const badge = $('#badge-transfers');
    badge.hidden = active === 0;
    badge.textContent = String(active);
    badge.title = active ? `${plural(active, 'download')} in progress` : '';
  }

  async function transferAction(method, hash) {
    try {
      await api(method, { hash });
    } catch (e) {
      toast(explain(`Cannot ${method} ${nameOf(hash)}`, e.message), { kind: 'error' });
    }
    refreshTransfers();
  }

  async function cancelTransfer(hash) {
    if (!S.transfers.has(hash)) {
      S.failures.delete(hash);
      renderTransfers();
      return;
    }
    const t = S.transfers.get(hash);
    const done = t.state === 'seeding';
    const answer = await confirmDialog(done
      ? {
        title: 'Remove from transfers?',
        text: `Bitween stops sharing “${t.name}” with your contacts.`,
        ok: 'Remove',
        danger: true,
        check: { label: 'Also delete the downloaded files from disk', checked: false },
      }
      : {
        title: 'Cancel this download?',
        text: `“${t.name}” stops downloading.`,
        ok: 'Cancel download',
        danger: true,
        check: { label: 'Also delete what was downloaded so far', checked: true },
      });
    if (!answer.ok) return;
    try {
      await api('cancel', { hash, delete: answer.checked });
      S.failures.delete(hash);
      toast(done ? `${t.name} removed.` : `Download of ${t.name} cancelled.`, { kind: 'ok' });
    } catch (e) {
      toast(explain(`Cannot cancel ${t.name}`, e.message), { kind: 'error' });
    }
    refreshTransfers();
    refreshShares();
  }

  async function openPath(hash, folder) {
    try {
      await invoke('open_path', { hash, folder });
    } catch (e) {
      toast(explain(`Cannot open ${nameOf(hash)}`, e.message), { kind: 'error' });
    }
  }

  // ---- settings ----------------------------------------------------------------------------------------

  async function loadSettings() {
    if (!DESKTOP) {
      renderSettingsFacts();
      if (!S.versions) {
        try {
          S.versions = await api('Api.versions');
          renderSettingsFacts();
        } catch (_) {
          /* shown without a version */
        }
      }
      return;
    }
    renderAccount();
    try {
      fillSettings(await invoke('get_settings'));
    } catch (e) {
      showError($('#settings-error'), `Cannot read the settings: ${e.message}`);
    }
  }

  function fillSettings(s) {
    if (!s) return;
    S.settings = s;
    const demo = inDemo();
    $('#settings-demo-note').hidden = !demo;
    for (const e of $$('#settings-form input, #settings-form button')) e.disabled = demo;
    $('#set-download-dir').value = s.download_dir || '';
    $('#set-bt-port').value = s.bt_port != null ? s.bt_port : 0;
    $('#set-ipv4').checked = !!s.ipv4;
    $('#set-ipv6').checked = !!s.ipv6;
    $('#set-lan').checked = !!s.lan;
    $('#set-upnp').checked = !!s.upnp;
    $('#set-start-at-login').checked = !!s.start_at_login;
    $('#set-start-hidden').checked = !!s.start_hidden;
    $('#set-upload-limit').value = s.upload_limit_kib != null ? s.upload_limit_kib : '';
    $('#set-download-limit').value = s.download_limit_kib != null ? s.download_limit_kib : '';
    showError($('#settings-error'), '');
  }

  async function saveSettings(ev) {
    ev.preventDefault();
    const errorNode = $('#settings-error');
    const port = Number($('#set-bt-port').value || 0);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      showError(errorNode, 'The BitTorrent port is a whole number from 0 to 65535 (0 picks one).');
      $('#set-bt-port').focus();
      return;
    }
    const limit = (id, what) => {
      const raw = $(id).value.trim();
      if (!raw) return null;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) throw new Error(`The ${what} limit is a whole number of KiB/s, or empty for no limit.`);
      return n;
    };
    let settings;
    try {
      settings = {
        ...(S.settings || {}),
        download_dir: $('#set-download-dir').value.trim(),
        bt_port: port,
        ipv4: $('#set-ipv4').checked,
        ipv6: $('#set-ipv6').checked,
        lan: $('#set-lan').checked,
        upnp: $('#set-upnp').checked,
        start_at_login: $('#set-start-at-login').checked,
        start_hidden: $('#set-start-hidden').checked,
        upload_limit_kib: limit('#set-upload-limit', 'upload'),
        download_limit_kib: limit('#set-download-limit', 'download'),
      };
    } catch (e) {
      showError(errorNode, e.message);
      return;
    }
    if (!settings.download_dir) {
      showError(errorNode, 'Choose a download folder.');
      $('#set-download-dir').focus();
      return;
    }
    showError(errorNode, '');
    await whileBusy($('#settings-save'), 'Saving…', async () => {
      try {
        fillSettings((await invoke('save_settings', { settings })) || settings);
        toast('Settings saved.', { kind: 'ok' });
        setTimeout(() => refreshAll(true), 1500);
      } catch (e) {
        showError(errorNode, e.message);
        toast(`Settings not saved: ${e.message}`, { kind: 'error' });
      }
    });
  }

  function facts(dl, rows) {
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  }

  function renderAccount() {
    const st = S.appState || {};
    const acct = st.account || {};
    if (inDemo()) {
      facts($('#account-facts'), [
        ['Address', acct.jid || S.me || '—'],
        ['Server', `a private Prosody on this computer${acct.server ? ` (${acct.server})` : ''}`],
        ['Password', 'made up for the demo, forgotten when it ends'],
        ['Your own account', st.real_account ? `${st.real_account}, untouched` : 'none yet'],
      ]);
      return;
    }
    const store = st.secret_store === 'keyring' ? 'in the system keyring'
      : st.secret_store === 'file' ? 'in a file readable only by you' : 'not stored';
    facts($('#account-facts'), [
      ['Address', acct.jid || S.me || '—'],
      ['Server', acct.server || 'found from the address'],
      ['Password', store],
    ]);
  }

  function renderSettingsFacts() {
    if (DESKTOP) return;
    const st = S.status || {};
    const conn = $('#status-connection').textContent;
    const cat = st.catalog || {};
    const rows = [
      ['Account', st.jid || '—'],
      ['Connection', conn],
      ['BitTorrent port', st.bt_port != null ? String(st.bt_port) : '—'],
      ['Published addresses', S.addresses.length ? S.addresses.join(', ') : 'none yet'],
      ['Reachability', reachabilityHint()],
      ['Contacts\u2019 catalog', cat.contacts != null ? `${plural(cat.contacts, 'contact')}, ${plural(cat.shares, 'share')}` : '—'],
    ];
    if (S.versions) rows.push(['Version', `Bitween ${S.versions.bitween} (API ${S.versions.api})`]);
    facts($('#settings-facts'), rows);
  }

  async function logout() {
    const answer = await confirmDialog({
      title: 'Sign out?',
      text: 'Bitween stops sharing from this computer and forgets the account and its password. Your files and downloads stay on disk.',
      ok: 'Sign out',
      danger: true,
    });
    if (!answer.ok) return;
    try {
      await invoke('logout');
    } catch (e) {
      toast(`Cannot sign out: ${e.message}`, { kind: 'error' });
      return;
    }
    try {
      S.appState = await invoke('app_state');
    } catch (_) {
      S.appState = { account: null };
    }
    resetData();
    showLogin();
  }

  /** Forgets what the last account's backend told us (after signing out,
   *  and on entering or leaving the demo). */
  function resetData() {
    Object.assign(S, accountData());
    $('#contact-search').value = '';
    $('#search-results').hidden = true;
    $('#roster').hidden = false;
    $('#me-jid').textContent = '';
    setConnection({ kind: 'connecting' });
    renderShares();
    renderHashing();
    renderContacts();
    renderTransfers();
    renderStatusBar();
  }

  // ---- demo mode ----------------------------------------------------------------------------------

  /** What the shell says about the account and mode; none if it cannot say. */
  async function reloadAppState() {
    try {
      S.appState = await invoke('app_state');
    } catch (_) {
      S.appState = { account: null };
    }
  }

  /** Runs `work` with `button` disabled, saying `busyText` meanwhile if
   *  given; the button comes back however `work` ends. */
  async function whileBusy(button, busyText, work) {
    const text = button.textContent;
    button.disabled = true;
    if (busyText) button.textContent = busyText;
    try {
      return await work();
    } finally {
      button.disabled = false;
      if (busyText) button.textContent = text;
    }
  }

  function showBusy(text) {
    S.started = false;
    showOnly('#boot');
    $('#boot').textContent = text;
  }

  /** "Try a demo" and `--demo`: the shell starts a private server with
   *  demo-alice and demo-bob and logs in as demo-alice; then the contacts
   *  screen shows demo-bob's shares. */
  async function enterDemo() {
    showBusy('Starting the demo: a private XMPP server and demo-bob, on this computer only…');
    try {
      await invoke('start_demo');
    } catch (e) {
      await reloadAppState();
      const message = explain('The demo could not start', e.message);
      if (!needsLogin()) {
        showApp();
        toast(message, { kind: 'error' });
      } else {
        await showLogin();
        showError($('#demo-error'), message);
      }
      return;
    }
    resetData();
    S.appState = await invoke('app_state');
    if (S.appState.demo_peer) S.expanded.add(S.appState.demo_peer);
    sessionStorage.setItem('bitween-view', 'contacts');
    showApp();
  }

  /** Stops the demo (its server, demo-bob, its files) and returns to the
   *  saved account, or to the first-run screen. */
  async function leaveDemo() {
    showBusy('Leaving the demo: stopping its server and removing its files…');
    try {
      await invoke('leave_demo');
    } catch (e) {
      toast(explain('Cannot leave the demo', e.message), { kind: 'error' });
    }
    await reloadAppState();
    resetData();
    toast('You left the demo: its server, demo-bob and the demo\u2019s files are gone.', { kind: 'ok' });
    if (needsLogin()) showLogin();
    else showApp();
  }

  // ---- login (desktop) and token (browser) ----------------------------------------------------------

  async function login(ev) {
    ev.preventDefault();
    const errorNode = $('#login-error');
    const jid = $('#login-jid').value.trim();
    const password = $('#login-password').value;
    const server = $('#login-server').value.trim();
    const downloadDir = $('#login-download-dir').value.trim();
    const useFile = $('#login-use-file').checked;
    if (!/^[^@\s/]+@[^@\s/]+$/.test(jid)) {
      showError(errorNode, 'Enter your XMPP address as user@domain, for example you@example.org.');
      $('#login-jid').focus();
      return;
    }
    if (!password) {
      showError(errorNode, 'Enter your password.');
      $('#login-password').focus();
      return;
    }
    if (server && !/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/.test(server)) {
      showError(errorNode, 'The server is host:port, for example xmpp.example.org:5222 (or leave it empty).');
      $('#login-server').focus();
      return;
    }
    showError(errorNode, '');
    await whileBusy($('#login-submit'), 'Signing in…', async () => {
      try {
        await invoke('login', { jid, password, server: server || null, downloadDir: downloadDir || null, useFile });
        $('#login-password').value = '';
        S.appState = await invoke('app_state');
        showApp();
      } catch (e) {
        const msg = e.message;
        showError(errorNode, msg);
        if (/keyring|secret service|secret-service|keychain/i.test(msg)) offerFileOption(msg);
      }
    });
  }

  async function submitToken(ev) {
    ev.preventDefault();
    const value = $('#token-input').value.trim();
    if (!value) {
      showError($('#token-error'), 'Paste the token from the api-token file.');
      return;
    }
    token = value;
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      await api('status');
    } catch (e) {
      if (e.code === -32001) return; // onUnauthorized showed the form again
    }
    startBrowser();
  }

  function startBrowser() {
    showApp();
    subscribe(onEvent);
  }

  // ---- start ----------------------------------------------------------------------------------------

  function wire() {
    for (const span of $$('[data-icon]')) span.append(icon(span.dataset.icon));
    for (const b of $$('[data-nav]')) b.addEventListener('click', () => navigate(b.dataset.nav));
    for (const v of ['shares', 'contacts', 'transfers', 'settings']) $(`#h-${v}`).tabIndex = -1;
    $('#token-form').addEventListener('submit', submitToken);
    $('#login-form').addEventListener('submit', login);
    $('#share-form').addEventListener('submit', shareFromBrowser);
    const sharePath = $('#share-path');
    for (const type of ['input', 'change']) {
      sharePath.addEventListener(type, () => {
        if (!sharePath.value) showError($('#share-path-error'), '');
      });
    }
    $('#add-contact-jid').addEventListener('input', () => showError($('#add-contact-error'), ''));
    $('#pick-files').addEventListener('click', () => pickAndShare(false));
    $('#pick-folder').addEventListener('click', () => pickAndShare(true));
    $('#add-contact-form').addEventListener('submit', addContact);
    $('#settings-form').addEventListener('submit', saveSettings);
    $('#logout').addEventListener('click', logout);
    $('#try-demo').addEventListener('click', () => {
      showError($('#demo-error'), '');
      enterDemo();
    });
    $('#leave-demo').addEventListener('click', leaveDemo);
    // Messages in the corner go below the demo banner, not over its button.
    const banner = $('#demo-banner');
    const placeToasts = () => {
      const bottom = banner.hidden ? 0 : banner.getBoundingClientRect().bottom;
      document.documentElement.style.setProperty('--toast-top', `${Math.round(bottom) + 12}px`);
    };
    if (typeof ResizeObserver === 'function') new ResizeObserver(placeToasts).observe(banner);
    $('#account-leave-demo').addEventListener('click', leaveDemo);
    const search = $('#contact-search');
    const searchChanged = () => {
      const text = search.value.trim();
      if (text === S.search.text) return;
      S.search.text = text;
      if (!text) runSearch();
      else searchSoon();
    };
    for (const type of ['input', 'change', 'search']) search.addEventListener(type, searchChanged);
    search.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        search.value = '';
        searchChanged();
      }
    });
    document.addEventListener('keydown', (e) => {
      if (!S.started || e.ctrlKey || e.metaKey) return;
      const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement && document.activeElement.tagName);
      if (e.altKey && /^[1-4]$/.test(e.key)) {
        e.preventDefault();
        navigate(['shares', 'contacts', 'transfers', 'settings'][Number(e.key) - 1], true);
      } else if (e.key === '/' && !typing && !e.altKey) {
        e.preventDefault();
        navigate('contacts');
        search.focus();
      }
    });
    // The fallback: a slow poll in case an event was missed.
    setInterval(() => {
      if (S.started && !document.hidden) refreshAll(false);
    }, 30000);
    document.addEventListener('visibilitychange', () => {
      if (S.started && !document.hidden) refreshAll(false);
    });
  }

  async function start() {
    wire();
    if (DESKTOP) {
      try {
        await subscribe(onEvent);
        S.appState = await invoke('app_state');
      } catch (e) {
        showOnly('#boot');
        $('#boot').textContent = `Bitween could not start: ${e.message}`;
        return;
      }
      if (S.appState.demo) enterDemo();
      else if (needsLogin()) showLogin();
      else showApp();
      return;
    }
    const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (m) {
      token = decodeURIComponent(m[1]);
      sessionStorage.setItem(TOKEN_KEY, token);
      history.replaceState(null, '', location.pathname + location.search);
    } else {
      token = sessionStorage.getItem(TOKEN_KEY);
    }
    if (!token) {
      showTokenForm('');
      return;
    }
    try {
      await api('status');
    } catch (e) {
      if (e.code === -32001) return;
    }
    startBrowser();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
