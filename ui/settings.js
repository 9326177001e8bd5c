/* Settings: the desktop app's form and account card (sign out), or the
   read-only facts of bitweend in a browser. */

import { api, DESKTOP, invoke } from './transport.js';
import { inDemo, S } from './state.js';
import { $, $$, el, showError, whileBusy } from './dom.js';
import { plural } from './format.js';
import { confirmDialog, toast } from './messages.js';
import { refreshAll, resetData } from './views.js';
import { reachabilityHint } from './status.js';
import { showLogin } from './account.js';

export async function loadSettings() {
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
  $('#set-relay').checked = s.relay !== false;
  $('#set-start-at-login').checked = !!s.start_at_login;
  $('#set-start-hidden').checked = !!s.start_hidden;
  $('#set-upload-limit').value = s.upload_limit_kib != null ? s.upload_limit_kib : '';
  $('#set-download-limit').value = s.download_limit_kib != null ? s.download_limit_kib : '';
  $('#set-tls-ca').value = s.tls_ca || '';
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
      relay: $('#set-relay').checked,
      start_at_login: $('#set-start-at-login').checked,
      start_hidden: $('#set-start-hidden').checked,
      upload_limit_kib: limit('#set-upload-limit', 'upload'),
      download_limit_kib: limit('#set-download-limit', 'download'),
      tls_ca: $('#set-tls-ca').value.trim() || null,
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

export function renderSettingsFacts() {
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

export function wireSettings() {
  $('#settings-form').addEventListener('submit', saveSettings);
  $('#logout').addEventListener('click', logout);
}
