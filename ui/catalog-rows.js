/* A contact's share in a list (under the contact, or a search hit): its
   row, who has it, and the one-click Download button, whose words follow
   the transfer (Downloading, Downloaded, Shared by you...). */

import { api } from './transport.js';
import { S } from './state.js';
import { $$, el, fileIcon } from './dom.js';
import { explain, humanSize, listNames, plural } from './format.js';
import { toast } from './messages.js';
import { navigate } from './views.js';
import { refreshTransfers } from './transfers.js';

/** A share of a contact (or a search hit): name, size, who has it, and
 *  the one-click download. */
export function catalogShareRow(share) {
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

export function updateCatalogShareRow(li, share, underContact = false) {
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

export function renderDownloadButtons() {
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
