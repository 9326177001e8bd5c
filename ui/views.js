/* Which screen shows (boot, token, account, main window), navigation
   between the main window's views, and reading everything again. */

import { DESKTOP } from './transport.js';
import { accountData, inDemo, S } from './state.js';
import { $, $$, avatarFor, icon } from './dom.js';
import { bareJid } from './format.js';
import { refreshStatus, renderStatusBar, setConnection } from './status.js';
import { refreshShares, renderHashing, renderShares } from './shares.js';
import { refreshCatalog } from './catalog.js';
import { refreshContacts, renderContacts } from './contacts.js';
import { refreshTransfers, renderTransfers } from './transfers.js';
import { loadSettings } from './settings.js';

export function showOnly(id) {
  for (const s of ['#boot', '#screen-token', '#screen-login', '#app']) $(s).hidden = s !== id;
}

export function showApp() {
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

export function setMe(jid) {
  S.me = bareJid(jid);
  $('#me-jid').textContent = S.me;
  $('#me-jid').title = S.me;
  avatarFor($('#me-avatar'), S.me);
  $('#me-avatar').setAttribute('aria-hidden', 'true');
}

export function navigate(view, focus = false) {
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

/** Refreshes everything; the catalog (possibly large) only when asked. */
export async function refreshAll(withCatalog = false) {
  const jobs = [refreshStatus(), refreshShares(), refreshTransfers(), refreshContacts()];
  if (withCatalog || !S.catalogLoaded) jobs.push(refreshCatalog());
  await Promise.allSettled(jobs);
}

/** Forgets what the last account's backend told us (after signing out,
 *  and on entering or leaving the demo). */
export function resetData() {
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

/** The sidebar, the keyboard shortcuts (Alt+1..4, / for search), and a
 *  fresh look at everything when the window comes back into view. */
export function wireNav() {
  for (const span of $$('[data-icon]')) span.append(icon(span.dataset.icon));
  for (const b of $$('[data-nav]')) b.addEventListener('click', () => navigate(b.dataset.nav));
  for (const v of ['shares', 'contacts', 'transfers', 'settings']) $(`#h-${v}`).tabIndex = -1;
  document.addEventListener('keydown', (e) => {
    if (!S.started || e.ctrlKey || e.metaKey) return;
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement && document.activeElement.tagName);
    if (e.altKey && /^[1-4]$/.test(e.key)) {
      e.preventDefault();
      navigate(['shares', 'contacts', 'transfers', 'settings'][Number(e.key) - 1], true);
    } else if (e.key === '/' && !typing && !e.altKey) {
      e.preventDefault();
      navigate('contacts');
      $('#contact-search').focus();
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (S.started && !document.hidden) refreshAll(false);
  });
}
