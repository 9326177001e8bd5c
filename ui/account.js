/* The account screens: the desktop app's sign-in (with the keyring's file
   fallback), the browser's token form, and entering and leaving the demo. */

import { api, invoke, onUnauthorized, setToken } from './transport.js';
import { needsLogin, S } from './state.js';
import { $, showError, whileBusy } from './dom.js';
import { explain } from './format.js';
import { toast } from './messages.js';
import { resetData, showApp, showOnly } from './views.js';
import { listenToBackend } from './events.js';

export function showTokenForm(error) {
  showOnly('#screen-token');
  showError($('#token-error'), error || '');
  $('#token-input').value = '';
  $('#token-input').focus();
}

export async function showLogin() {
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

/** What the shell says about the account and mode; none if it cannot say. */
async function reloadAppState() {
  try {
    S.appState = await invoke('app_state');
  } catch (_) {
    S.appState = { account: null };
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
export async function enterDemo() {
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

async function login(ev) {
  ev.preventDefault();
  const errorNode = $('#login-error');
  const jid = $('#login-jid').value.trim();
  const password = $('#login-password').value;
  const server = $('#login-server').value.trim();
  const downloadDir = $('#login-download-dir').value.trim();
  const tlsCa = $('#login-tls-ca').value.trim();
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
      await invoke('login', { jid, password, server: server || null, downloadDir: downloadDir || null, useFile, tlsCa: tlsCa || null });
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
  setToken(value);
  try {
    await api('status');
  } catch (e) {
    if (e.code === -32001) return; // onUnauthorized showed the form again
  }
  startBrowser();
}

/** The browser's main window, once bitweend took the token. */
export function startBrowser() {
  showApp();
  listenToBackend();
}

export function wireAccount() {
  $('#token-form').addEventListener('submit', submitToken);
  $('#login-form').addEventListener('submit', login);
  $('#try-demo').addEventListener('click', () => {
    showError($('#demo-error'), '');
    enterDemo();
  });
  $('#leave-demo').addEventListener('click', leaveDemo);
  $('#account-leave-demo').addEventListener('click', leaveDemo);
  onUnauthorized(() => showTokenForm('bitweend did not accept this token. It makes a new one each time it starts: take the current one from its api-token file or from the link it prints.'));
}
