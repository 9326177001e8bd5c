/* The status bar: connection, published addresses, reachability; and the
   backend's status, read in the background (`quietly`: no toasts, an
   unreachable backend shows here). */

import { api, DESKTOP } from './transport.js';
import { S } from './state.js';
import { $ } from './dom.js';
import { setMe } from './views.js';
import { renderSettingsFacts } from './settings.js';

/** Background refreshes do not toast; an unreachable backend shows in the
 *  status bar. */
export function quietly(p) {
  return p.catch((e) => {
    if (e && e.unreachable) setConnection({ kind: 'offline', reason: e.message });
    else if (DESKTOP && S.appState && !S.appState.running) { /* status bar says why */ } else console.warn(e);
  });
}

/** My shares says why restricted shares stay unpublished, when the
 *  server would not restrict them. */
export function renderRestrictedNote() {
  const r = S.status && S.status.restricted;
  const note = $('#restricted-note');
  const refused = !!(r && (r.state === 'refused' || r.state === 'failed'));
  note.hidden = !refused;
  const why = (r && r.reason) || 'your server cannot restrict who sees a share; restricted shares stay unpublished';
  note.textContent = refused ? `Shares for some contacts only: ${why}.` : '';
}

export function refreshStatus() {
  return quietly((async () => {
    const st = await api('status');
    S.status = st;
    renderRestrictedNote();
    S.addresses = st.addresses || [];
    if (st.jid) setMe(st.jid);
    if (!S.streamDown) setConnection(connectionOf(st.connection));
    renderStatusBar();
    if (S.view === 'settings') renderSettingsFacts();
  })());
}

function connectionOf(c) {
  if (c && typeof c === 'object' && c.Online) return { kind: 'online', jid: c.Online.jid };
  if (c && typeof c === 'object' && c.Offline) return { kind: 'offline', reason: c.Offline.reason, retrying: c.Offline.retrying };
  return { kind: 'connecting' };
}

export function setConnection(c) {
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

export function reachabilityHint() {
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

export function renderStatusBar() {
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
