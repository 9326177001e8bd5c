/* The event switch: every backend event (one Event of src/events.rs, plus
   Resync when some were missed) updates the state and the screens it
   concerns, or asks the backend again for what changed. */

import { DESKTOP, listen, openEventStream } from './transport.js';
import { nameOf, S } from './state.js';
import { bareJid, basename, explain, plural } from './format.js';
import { toast } from './messages.js';
import { navigate, refreshAll, setMe } from './views.js';
import { renderRestrictedNote, renderStatusBar, setConnection } from './status.js';
import { listenForDrops, refreshSharesSoon, renderHashing } from './shares.js';
import { patchPresence, refreshContactSoon } from './catalog.js';
import { refreshContactsSoon, renderContacts } from './contacts.js';
import { openPath, refreshTransfers, setTransfers } from './transfers.js';

/** Starts hearing the backend: the desktop shell's events (and its native
 *  drag and drop), or bitweend's event stream in a browser. */
export async function listenToBackend() {
  if (DESKTOP) {
    await listen('bitween-event', onEvent);
    await listenForDrops();
    return;
  }
  openEventStream({
    event: onEvent,
    open: () => {
      S.streamDown = false;
      refreshAll(true);
    },
    down: () => {
      S.streamDown = true;
      setConnection({ kind: 'offline', reason: 'lost the connection to bitweend; reconnecting…' });
    },
  });
}

/** One backend event (DemoActivity, for one, comes only from the desktop
 *  app's demo). */
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
      refreshContactSoon(ev.jid);
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
    case 'ShareUpdated':
      toast(`${ev.name} changed on disk: its new version is published.`, { key: `updated:${ev.name}` });
      refreshSharesSoon();
      break;
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
    case 'Restricted':
      S.status = { ...(S.status || {}), restricted: ev.status };
      renderRestrictedNote();
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
      // NAT-PMP and UPnP report separately: one protocol losing its
      // mapping does not hide the other's.
      if (ev.mapping) {
        S.mapping = ev.mapping;
        S.mappingError = null;
      } else if (S.mapping && (S.mapping.protocol || 'nat_pmp') === (ev.protocol || 'nat_pmp')) {
        S.mapping = null;
      }
      renderStatusBar();
      break;
    case 'PortMappingFailed':
      if (!S.mapping) S.mappingError = ev.reason;
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
    case 'Resync':
      // Events were missed (the stream lagged, or could not resume after
      // a reconnect): everything is read again.
      if (S.started) refreshAll(true);
      break;
    case 'OwnItemPublished':
      break;
    default:
      // A newer backend may send more; nothing to do with it here.
      break;
  }
}
