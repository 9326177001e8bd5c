/* A stand-in for the Tauri shell, for tests/apps/webui/: defines
   window.__TAURI__ with the commands and events the desktop shell provides
   (see the contract in ui/transport.js) so the page runs its
   desktop code paths in a plain browser. `api` and the event stream go to a
   real bitweend (same origin, token below); login, keyring, pickers,
   settings and open_path are simulated and recorded in __TAURI__.__test. */
(() => {
  const TOKEN = '__TOKEN__';
  const listeners = {};
  const calls = [];
  let account = null;
  let source = null;
  const settings = {
    download_dir: '/home/alice/Downloads/Bitween', bt_port: 0, ipv4: true, ipv6: true, lan: true,
    upnp: true, relay: true, start_at_login: false, start_hidden: false, upload_limit_kib: null, download_limit_kib: null,
  };
  const emit = (name, payload) => (listeners[name] || []).forEach((cb) => cb({ event: name, payload }));
  async function rpc(method, params) {
    const r = await fetch('/api', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const body = await r.json();
    if (body.error) throw { code: body.error.code, message: body.error.message };
    return body.result;
  }
  const commands = {
    app_state: () => ({
      mode: 'desktop', account, running: !!account, connection_error: null,
      secret_store: account ? (account.file ? 'file' : 'keyring') : null, keyring_error: null, demo: false,
    }),
    login: (a) => {
      if (a.password !== 'correct horse') throw { message: `wrong password: the server refused the password of ${a.jid}` };
      if (!a.useFile) throw { message: 'no keyring available: the Secret Service (org.freedesktop.secrets) is not running' };
      account = { jid: a.jid, server: a.server, download_dir: a.downloadDir || settings.download_dir, file: true };
      source = new EventSource(`/events?token=${TOKEN}`);
      source.onmessage = (m) => emit('bitween-event', JSON.parse(m.data));
      return null;
    },
    start_demo: () => {
      throw {
        kind: 'demo',
        message: 'the demo needs Prosody, the XMPP server (prosody was not found): install it with `sudo apt install prosody` (scripts/run.sh does this), then try again',
      };
    },
    logout: () => {
      account = null;
      if (source) source.close();
      return null;
    },
    api: ({ method, params }) => {
      if (!account) throw { message: 'not signed in' };
      return rpc(method, params);
    },
    get_settings: () => ({ ...settings }),
    save_settings: ({ settings: s }) => {
      if (s.bt_port === 1) throw { message: 'port 1 needs privileges' };
      Object.assign(settings, s);
      return { ...settings };
    },
    pick_and_share: () => [],
    share_paths: async ({ paths, to }) => {
      const out = [];
      for (const path of paths) {
        emit('bitween-event', { type: 'Hashing', path, size: null });
        try {
          out.push({ path, share: await rpc('share', { path, to: to || [] }) });
          emit('bitween-event', { type: 'HashingDone', path, error: null });
        } catch (e) {
          out.push({ path, error: e.message });
          emit('bitween-event', { type: 'HashingDone', path, error: e.message });
        }
      }
      return out;
    },
    open_path: () => null,
  };
  window.__TAURI__ = {
    core: {
      invoke: async (cmd, args) => {
        calls.push([cmd, args || {}]);
        const f = commands[cmd];
        if (!f) throw { message: `no command ${cmd}` };
        return f(args || {});
      },
    },
    event: {
      listen: async (name, cb) => {
        (listeners[name] = listeners[name] || []).push(cb);
        return () => {};
      },
    },
    __test: { emit, calls },
  };
})();
