/* Transfers: downloads (with failures that ended them) and uploads, with
   progress, speed, peers, and pause, resume, cancel, open. */

import { api, DESKTOP, invoke } from './transport.js';
import { nameOf, peerNames, S } from './state.js';
import { $, el, fileIcon, syncList } from './dom.js';
import { explain, humanDuration, humanSize, humanSpeed, listNames, plural } from './format.js';
import { confirmDialog, toast } from './messages.js';
import { quietly } from './status.js';
import { refreshShares, renderShares } from './shares.js';
import { renderDownloadButtons } from './catalog-rows.js';

export function refreshTransfers() {
  return quietly((async () => setTransfers((await api('transfers')) || []))());
}

export function setTransfers(list) {
  S.transfers = new Map(list.map((t) => [t.hash, t]));
  for (const t of list) if (t.name) S.names.set(t.hash, t.name);
  renderTransfers();
  renderShares();
  renderDownloadButtons();
}

function stateLabel(t) {
  if (t.synthetic) return 'Failed';
  if (t.kind === 'share') return t.state === 'paused' ? 'Paused' : t.state === 'checking' ? 'Checking' : t.state === 'error' ? 'Failed' : 'Seeding';
  switch (t.state) {
    case 'fetching_metadata': return 'Waiting for a source';
    case 'checking': return 'Checking';
    case 'downloading': return 'Downloading';
    case 'seeding': return 'Done';
    case 'paused': return 'Paused';
    case 'error': return 'Failed';
    default: return t.state;
  }
}

function transferRow(t) {
  const hash = t.hash;
  const name = el('span', { class: 'name' });
  const state = el('span', { class: 'state' });
  const bar = el('progress', { max: '1', value: '0' });
  const amount = el('span', { class: 'amount' });
  const speed = el('span', { class: 'speed' });
  const eta = el('span', { class: 'eta' });
  const peers = el('span', { class: 'peers' });
  const diskName = el('p', { class: 'disk-name', hidden: true });
  const reason = el('p', { class: 'reason', hidden: true });
  const mk = (cls, text) => el('button', { type: 'button', class: `${cls} small`, text });
  const pause = mk('pause', 'Pause');
  const resume = mk('resume', 'Resume');
  const cancel = mk('cancel danger', 'Cancel');
  const openFile = mk('open-file', 'Open');
  const openFolder = mk('open-folder', 'Show in folder');
  pause.addEventListener('click', () => transferAction('pause', hash));
  resume.addEventListener('click', () => transferAction('resume', hash));
  cancel.addEventListener('click', () => cancelTransfer(hash));
  openFile.addEventListener('click', () => openPath(hash, false));
  openFolder.addEventListener('click', () => openPath(hash, true));
  const li = el('li', { class: 'transfer', 'data-transfer': hash },
    el('div', { class: 't-top' }, fileIcon(), name, state),
    bar,
    diskName,
    el('div', { class: 't-meta' }, amount, speed, eta, peers),
    reason,
    el('div', { class: 't-actions' }, pause, resume, cancel, openFile, openFolder));
  li._r = { name, state, bar, amount, speed, eta, peers, diskName, reason, pause, resume, cancel, openFile, openFolder };
  return li;
}

function updateTransferRow(li, t) {
  const r = li._r;
  const failed = !!t.synthetic || t.state === 'error';
  const done = t.kind === 'share' || t.state === 'seeding';
  li.dataset.state = t.synthetic ? 'failed' : t.state;
  li.classList.toggle('done', done && !failed);
  li.classList.toggle('failed', failed);
  li.classList.toggle('paused', t.state === 'paused');
  li.classList.toggle('waiting', t.state === 'fetching_metadata');
  r.name.textContent = t.name;
  r.name.title = t.name;
  // Where the name on disk differs (the name was taken, or the contact's
  // list named it otherwise), say both.
  const onDisk = t.kind === 'download' && t.path ? String(t.path).split(/[\\/]/).pop() : '';
  const notes = [];
  if (t.listed_name && t.listed_name !== t.name) notes.push(`listed as “${t.listed_name}”`);
  if (onDisk && t.total_bytes > 0 && onDisk !== t.name) notes.push(`saved as “${onDisk}”`);
  r.diskName.textContent = notes.join(' · ');
  r.diskName.hidden = !notes.length;
  r.state.textContent = stateLabel(t);
  // An idle share is not loaded until a contact asks for it: no files open.
  r.state.title = t.kind === 'share' && t.idle
    ? 'Seeding, idle: nobody is downloading it now; it is opened as soon as a contact asks for it'
    : '';
  const total = Number(t.total_bytes) || 0;
  const have = Number(t.done_bytes) || 0;
  if (total > 0) {
    r.bar.max = total;
    r.bar.value = Math.min(have, total);
    const pct = Math.floor((have / total) * 100);
    r.amount.textContent = done ? humanSize(total) : `${humanSize(have)} of ${humanSize(total)} · ${pct}%`;
  } else if (t.synthetic) {
    r.bar.max = 1;
    r.bar.value = 0;
    r.amount.textContent = '';
  } else {
    r.bar.removeAttribute('value'); // indeterminate: size not known yet
    const info = S.byHash.get(t.hash);
    const sources = info ? [...info.jids.entries()] : [];
    const online = sources.filter(([, on]) => on).map(([jid]) => jid);
    if (!sources.length) r.amount.textContent = 'waiting for a contact who shares it';
    else if (!online.length) r.amount.textContent = `waiting for ${listNames(sources.map(([jid]) => jid))} to come online`;
    else r.amount.textContent = `getting the file list from ${listNames(online)}…`;
  }
  r.bar.setAttribute('aria-label', `Progress of ${t.name}`);
  const down = Number(t.down_bytes_per_sec) || 0;
  const up = Number(t.up_bytes_per_sec) || 0;
  if (t.synthetic || t.state === 'fetching_metadata') r.speed.textContent = '';
  else if (t.kind === 'download' && !done) r.speed.textContent = `↓ ${humanSpeed(down)}${up ? ` · ↑ ${humanSpeed(up)}` : ''}`;
  else r.speed.textContent = `${up ? `↑ ${humanSpeed(up)} · ` : ''}${humanSize(t.uploaded_bytes || 0)} uploaded`;
  r.speed.hidden = !r.speed.textContent;
  if (t.state === 'downloading') r.eta.textContent = t.eta_secs != null ? `${humanDuration(t.eta_secs)} left` : down ? '' : 'stalled';
  else r.eta.textContent = '';
  r.eta.hidden = !r.eta.textContent;
  const names = t.synthetic ? [] : peerNames(t);
  r.peers.textContent = t.synthetic ? '' : names.length ? `${plural(names.length, 'peer')}: ${listNames(names, 3)}` : 'no peers connected';
  r.peers.title = names.join('\n');
  const why = t.synthetic ? t.reason : t.error || (failed && S.failures.get(t.hash) ? S.failures.get(t.hash).reason : '');
  r.reason.textContent = why ? `Failed: ${why}` : '';
  r.reason.hidden = !why;
  // (No pausing while the file list is still awaited: there is nothing
  // to pause yet; Cancel stops the wait.)
  const active = ['downloading', 'seeding', 'checking'].includes(t.state);
  r.pause.hidden = t.synthetic || !active;
  r.resume.hidden = t.synthetic || !(t.state === 'paused' || t.state === 'error');
  r.cancel.hidden = t.kind === 'share';
  r.cancel.textContent = t.synthetic || done ? 'Remove' : 'Cancel';
  r.openFile.hidden = !DESKTOP || t.synthetic || !done;
  r.openFolder.hidden = !DESKTOP || t.synthetic;
  r.pause.setAttribute('aria-label', `Pause ${t.name}`);
  r.resume.setAttribute('aria-label', `Resume ${t.name}`);
  r.cancel.setAttribute('aria-label', `${r.cancel.textContent} ${t.name}`);
  r.openFile.setAttribute('aria-label', `Open ${t.name}`);
  r.openFolder.setAttribute('aria-label', `Show ${t.name} in its folder`);
}

export function renderTransfers() {
  const all = [...S.transfers.values()];
  const downloads = all.filter((t) => t.kind === 'download');
  for (const [hash, f] of S.failures) {
    if (!S.transfers.has(hash)) downloads.push({ hash, name: f.name, kind: 'download', state: 'error', synthetic: true, reason: f.reason });
  }
  const uploads = all.filter((t) => t.kind === 'share' && ((t.peers || []).length || t.up_bytes_per_sec || t.state === 'paused' || t.state === 'checking' || t.state === 'error'));
  syncList($('#downloads-list'), downloads, (t) => t.hash, transferRow, updateTransferRow);
  syncList($('#uploads-list'), uploads, (t) => t.hash, transferRow, updateTransferRow);
  $('#downloads-empty').hidden = downloads.length > 0;
  $('#uploads-empty').hidden = uploads.length > 0;
  const active = downloads.filter((t) => !t.synthetic && t.state !== 'seeding').length;
  const badge = $('#badge-transfers');
  badge.hidden = active === 0;
  badge.textContent = String(active);
  badge.title = active ? `${plural(active, 'download')} in progress` : '';
}

async function transferAction(method, hash) {
  try {
    await api(method, { hash });
  } catch (e) {
    toast(explain(`Cannot ${method} ${nameOf(hash)}`, e.message), { kind: 'error' });
  }
  refreshTransfers();
}

async function cancelTransfer(hash) {
  if (!S.transfers.has(hash)) {
    S.failures.delete(hash);
    renderTransfers();
    return;
  }
  const t = S.transfers.get(hash);
  const done = t.state === 'seeding';
  const answer = await confirmDialog(done
    ? {
      title: 'Remove from transfers?',
      text: `Bitween stops sharing “${t.name}” with your contacts.`,
      ok: 'Remove',
      danger: true,
      check: { label: 'Also delete the downloaded files from disk', checked: false },
    }
    : {
      title: 'Cancel this download?',
      text: `“${t.name}” stops downloading.`,
      ok: 'Cancel download',
      danger: true,
      check: { label: 'Also delete what was downloaded so far', checked: true },
    });
  if (!answer.ok) return;
  try {
    await api('cancel', { hash, delete: answer.checked });
    S.failures.delete(hash);
    toast(done ? `${t.name} removed.` : `Download of ${t.name} cancelled.`, { kind: 'ok' });
  } catch (e) {
    toast(explain(`Cannot cancel ${t.name}`, e.message), { kind: 'error' });
  }
  refreshTransfers();
  refreshShares();
}

export async function openPath(hash, folder) {
  try {
    await invoke('open_path', { hash, folder });
  } catch (e) {
    toast(explain(`Cannot open ${nameOf(hash)}`, e.message), { kind: 'error' });
  }
}
