/* Bitween's frontend, the page's entry module (ES modules, no build step):
   wires every screen's controls, then starts the desktop app (account
   screen or main window) or, in a browser, has bitweend check the API
   token and opens the main window. The parts:
     transport.js  Tauri commands and events, or JSON-RPC and the event stream
     state.js      what the backend told us, in one object
     dom.js, format.js, messages.js   helpers, words and numbers, toasts and dialogs
     events.js     the event switch
     views.js      which screen shows, navigation, reloading everything
     account.js, shares.js, contacts.js (with catalog.js, catalog-rows.js,
     search.js), transfers.js, settings.js, status.js: one per screen */

import { DESKTOP, api, invoke, tokenFromPage } from './transport.js';
import { S, needsLogin } from './state.js';
import { $ } from './dom.js';
import { wireMessages } from './messages.js';
import { showApp, showOnly, wireNav } from './views.js';
import { enterDemo, showLogin, showTokenForm, startBrowser, wireAccount } from './account.js';
import { listenToBackend } from './events.js';
import { wireShares } from './shares.js';
import { wireContacts } from './contacts.js';
import { wireSearch } from './search.js';
import { wireSettings } from './settings.js';

async function start() {
  wireNav();
  wireMessages();
  wireAccount();
  wireShares();
  wireContacts();
  wireSearch();
  wireSettings();
  if (DESKTOP) {
    try {
      await listenToBackend();
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
  if (!tokenFromPage()) {
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
