/* The contacts' catalog: what each contact shares, on which device, and
   who is online. Read whole at start (and on Resync); after that one
   contact at a time, as its events come (`catalog` with a jid). New
   shares of a contact are told in one message per contact. */

import { api } from './transport.js';
import { inDemo, S } from './state.js';
import { $ } from './dom.js';
import { coalesce, debounce, listNames } from './format.js';
import { toast } from './messages.js';
import { navigate } from './views.js';
import { quietly } from './status.js';
import { renderContacts } from './contacts.js';
import { runSearch } from './search.js';

// Every catalog read gets a number when it is asked for; a contact's view
// from an older read never replaces one from a newer read.
let reads = 0;

/** Reads the whole catalog. */
export function refreshCatalog() {
  return quietly((async () => {
    const read = ++reads;
    setCatalog((await api('catalog')) || [], read);
  })());
}

const changed = new Set(); // jids whose view is to be read again
const refreshChangedSoon = coalesce(() => {
  const jids = [...changed];
  changed.clear();
  return Promise.allSettled(jids.map(refreshContactView));
}, 400);

/** Reads one contact's view again soon (several changes, one read). */
export function refreshContactSoon(jid) {
  changed.add(jid);
  refreshChangedSoon();
}

function refreshContactView(jid) {
  return quietly((async () => {
    const read = ++reads;
    const view = await api('catalog', { jid });
    if (read < S.catalogRead || read < (S.contactRead.get(jid) || 0)) return;
    S.contactRead.set(jid, read);
    if (view && S.me) noticeNewShares([view]);
    if (view) S.catalog.set(jid, view);
    else S.catalog.delete(jid);
    indexCatalog();
    renderContacts();
    if (S.search.text) runSearch();
  })());
}

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

function setCatalog(list, read) {
  if (read < S.catalogRead) return;
  S.catalogRead = read;
  const catalog = new Map(list.map((c) => [c.jid, c]));
  // A contact read on its own since this list was asked for keeps that view.
  for (const [jid, r] of S.contactRead) {
    if (r < read) continue;
    if (S.catalog.has(jid)) catalog.set(jid, S.catalog.get(jid));
    else catalog.delete(jid);
  }
  if (S.me) noticeNewShares([...catalog.values()]);
  S.catalog = catalog;
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

/** A resource came or went: its contact's view is patched at once; a
 *  contact not known yet, or a device that comes online (its item
 *  follows), is read again. */
export function patchPresence(jid, resource, online) {
  const c = S.catalog.get(jid);
  if (!c) {
    refreshContactSoon(jid);
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
  if (online) refreshContactSoon(jid);
}
