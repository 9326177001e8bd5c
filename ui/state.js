/* The page's state in one object, S: what the backend told us (shares,
   transfers, contacts, catalog, status...) and what the page keeps
   (the view shown, expanded contacts, search). `accountData` is the part
   that starts afresh when the account changes. */

import { DESKTOP } from './transport.js';

/** What one account's backend told us; `resetData` starts it afresh. */
export function accountData() {
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
    catalogRead: 0, // the number of the newest whole read of the catalog shown
    contactRead: new Map(), // jid -> the number of the newest read of its view shown
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

export const S = {
  started: false,
  view: 'shares',
  appState: null,
  conn: { kind: 'connecting' },
  streamDown: false,
  names: new Map(), // hash -> name, from anything seen
  ...accountData(),
};

export const inDemo = () => !!(DESKTOP && S.appState && S.appState.demo);
/** No account, or the saved one cannot start (its password is gone):
 *  the account screen, rather than the main window. */
export const needsLogin = () => {
  const st = S.appState || {};
  return !st.account || !!(st.connection_error && !st.running);
};

/** Every roster group any contact is in, sorted. */
export function allGroups() {
  return [...new Set(S.contacts.flatMap((c) => c.groups || []))].sort();
}

/** Every contact's address, sorted (the choices of an audience). */
export function allContacts() {
  return S.contacts.map((c) => c.jid).sort();
}

export function nameOf(hash) {
  const t = S.transfers.get(hash);
  if (t && t.name) return t.name;
  if (S.names.has(hash)) return S.names.get(hash);
  const info = S.byHash.get(hash);
  return info ? info.share.name : hash;
}

export function peerNames(t) {
  return (t.peers || []).map((p) => `${p.contact || p.address}${pathNote(p)}`);
}

/** How a peer was reached (by us or by them): " (direct)", " (punched)",
 * " (relayed via proxy.example.org)". */
export function pathNote(p) {
  if (p.path === 'direct') return ' (direct)';
  if (p.path === 'punched') return ' (punched)';
  if (p.path === 'relayed') return p.via ? ` (relayed via ${p.via})` : ' (relayed)';
  return '';
}
