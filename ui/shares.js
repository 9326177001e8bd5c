/* My shares: the list of what this device shares, files being hashed,
   sharing by drag and drop or pickers (desktop) or by path (browser),
   copying a magnet link, removing a share. */

import { api, invoke, listen } from './transport.js';
import { allContacts, allGroups, nameOf, peerNames, S } from './state.js';
import { $, checkedValue, el, fileIcon, iconSpan, showError, syncList, whileBusy } from './dom.js';
import { basename, coalesce, explain, humanDuration, humanSize, humanSpeed, listNames, magnet, plural } from './format.js';
import { confirmDialog, toast } from './messages.js';
import { navigate } from './views.js';
import { quietly, renderRestrictedNote } from './status.js';
import { renderDownloadButtons } from './catalog-rows.js';
import { refreshTransfers } from './transfers.js';

export function refreshShares() {
  return quietly((async () => {
    S.shares = (await api('shares')) || [];
    S.localHashes = new Set(S.shares.map((s) => s.hash));
    for (const s of S.shares) S.names.set(s.hash, s.name);
    renderShares();
    renderDownloadButtons();
  })());
}

export const refreshSharesSoon = coalesce(refreshShares, 300);

function shareRow(share) {
  const hash = share.hash;
  const name = el('div', { class: 'name' });
  const kindTag = el('span', { class: 'tag', hidden: true });
  const size = el('span', { class: 'size' });
  const peers = el('span', { class: 'peers' });
  const uploaded = el('span', { class: 'uploaded' });
  const updated = el('span', { class: 'updated', hidden: true });
  const audience = el('span', { class: 'tag audience', hidden: true });
  const who = el('button', { type: 'button', class: 'audience-edit small', text: 'Who sees it' });
  who.addEventListener('click', () => editAudience(hash));
  const copy = el('button', { type: 'button', class: 'copy-magnet small', text: 'Copy magnet' });
  const check = el('button', { type: 'button', class: 'verify small', text: 'Verify', title: 'Read every piece and check it against the hashes' });
  const remove = el('button', { type: 'button', class: 'unshare small danger', text: 'Remove' });
  copy.addEventListener('click', () => copyMagnet(hash));
  check.addEventListener('click', () => verify(hash, check));
  remove.addEventListener('click', () => unshare(hash));
  const icon = fileIcon();
  const li = el('li', { class: 'row', 'data-share': hash },
    el('div', { class: 'row-main' }, icon,
      el('div', { class: 'row-text' }, el('div', { class: 'name-line' }, name, kindTag), el('div', { class: 'meta' }, audience, size, peers, uploaded, updated))),
    el('div', { class: 'row-actions' }, who, copy, check, remove));
  li._r = { icon, name, size, peers, uploaded, updated, audience, who, copy, check, remove, kindTag };
  return li;
}

function updateShareRow(li, share) {
  const r = li._r;
  const t = S.transfers.get(share.hash);
  r.name.textContent = share.name;
  r.name.title = share.name;
  const folder = !!(t && t.is_folder);
  if (r.icon.dataset.folder !== String(folder)) {
    r.icon.dataset.folder = String(folder);
    r.icon.replaceChildren(iconSpan(folder ? 'folder' : 'file'));
  }
  // Only a share for some contacts says so; everyone's is the rule.
  const words = audienceText(t && t.audience);
  r.audience.hidden = words === 'Everyone';
  r.audience.textContent = words;
  r.audience.title = `Who sees it: ${words}`;
  r.who.setAttribute('aria-label', `Choose who sees ${share.name}`);
  r.size.textContent = humanSize(share.size);
  const names = t ? peerNames(t) : [];
  r.peers.textContent = names.length ? `${plural(names.length, 'peer')}: ${listNames(names, 2)}` : 'no peers';
  r.peers.title = names.join('\n');
  const up = t ? t.uploaded_bytes : 0;
  r.uploaded.textContent = `${humanSize(up)} uploaded${t && t.up_bytes_per_sec ? ` · ↑ ${humanSpeed(t.up_bytes_per_sec)}` : ''}`;
  // A live share: its files are watched, and a change is published as a
  // new version of the same share.
  const live = t && t.kind === 'share' && t.updated_at != null;
  r.updated.hidden = !live;
  r.updated.textContent = live ? `updated ${humanDuration(Date.now() / 1000 - t.updated_at)} ago` : '';
  r.updated.title = live ? 'Kept current: when its files change, the new version is published in its place' : '';
  const isDownload = t && t.kind === 'download';
  r.kindTag.hidden = !isDownload;
  r.kindTag.textContent = isDownload ? (t.state === 'seeding' ? 'downloaded' : 'downloading') : '';
  r.copy.setAttribute('aria-label', `Copy the magnet link of ${share.name}`);
  // (A download's pieces were checked as they arrived.)
  r.check.hidden = !!isDownload;
  r.check.setAttribute('aria-label', `Verify ${share.name} against its hashes`);
  r.remove.setAttribute('aria-label', `Stop sharing ${share.name}`);
}

/** The "Share with" choice of the drop zone: everyone, one group or one
 *  contact (a share is for several through "Who sees it"). Kept as chosen
 *  while that group or contact exists. */
function renderShareWith() {
  const select = $('#share-audience');
  const chosen = select.value;
  const options = [el('option', { value: '', text: 'Everyone' }),
    ...allGroups().map((g) => el('option', { value: g, text: `Group ${g}` })),
    ...allContacts().map((j) => el('option', { value: j, text: j }))];
  select.replaceChildren(...options);
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : '';
}

/** Whom new shares are for, as the share and share_paths calls take it. */
function shareWith() {
  const v = $('#share-audience').value;
  return v ? [v] : [];
}

/** A share's audience in words: `everyone`, or `{only: {groups, contacts}}`. */
function audienceText(a) {
  if (!a || a === 'everyone') return 'Everyone';
  const only = a.only || {};
  const names = [...(only.groups || []), ...(only.contacts || [])];
  return names.length ? `Only ${listNames(names, 3)}` : 'Only you';
}

/** The audience dialog: everyone, or some groups and contacts. */
async function editAudience(hash) {
  const name = nameOf(hash);
  const t = S.transfers.get(hash);
  const current = (t && t.audience && t.audience.only) || null;
  const chosen = new Set([...((current && current.groups) || []), ...((current && current.contacts) || [])]);
  const box = $('#audience-choices');
  const option = (value, label) => el('label', { class: 'check' },
    el('input', { type: 'checkbox', value, checked: chosen.has(value) }), ` ${label}`);
  box.replaceChildren(
    ...allGroups().map((g) => option(g, `Group ${g}`)),
    ...allContacts().map((j) => option(j, j)));
  $('#audience-title').textContent = `Who sees “${name}”?`;
  $('#audience-everyone').checked = !current;
  $('#audience-only').checked = !!current;
  // The choices stay clickable: picking one means "only these"; with
  // Everyone chosen they are shown faded.
  const sync = () => box.classList.toggle('faded', !$('#audience-only').checked);
  $('#audience-everyone').onchange = sync;
  $('#audience-only').onchange = sync;
  for (const input of box.querySelectorAll('input')) {
    input.onchange = () => {
      if (input.checked) $('#audience-only').checked = true;
      sync();
    };
  }
  sync();
  showError($('#audience-error'), '');
  const d = $('#audience');
  d.showModal();
  $('#audience-cancel').onclick = () => d.close();
  $('#audience-form').onsubmit = async (e) => {
    e.preventDefault();
    const to = $('#audience-only').checked ? [...box.querySelectorAll('input:checked')].map((i) => i.value) : [];
    if ($('#audience-only').checked && !to.length) {
      showError($('#audience-error'), 'Pick at least one group or contact, or choose Everyone.');
      return;
    }
    try {
      await api('set_audience', { hash, to });
      d.close();
      toast(to.length ? `${name} is now for ${listNames(to, 3)} only.` : `${name} is now for everyone.`, { kind: 'ok' });
    } catch (err) {
      showError($('#audience-error'), err.message);
    }
    refreshTransfers();
  };
}

export function renderShares() {
  renderRestrictedNote();
  renderShareWith();
  const list = $('#shares-list');
  syncList(list, S.shares, (s) => s.hash, shareRow, updateShareRow);
  $('#shares-empty').hidden = S.shares.length > 0;
  const total = S.shares.reduce((n, s) => n + (Number(s.size) || 0), 0);
  $('#shares-total').textContent = S.shares.length ? `${plural(S.shares.length, 'item')}, ${humanSize(total)}` : '';
}

export function renderHashing() {
  const list = $('#hashing-list');
  const items = [...S.hashing.entries()].map(([path, h]) => ({ path, ...h }));
  list.hidden = items.length === 0;
  syncList(list, items, (h) => h.path, (h) => {
    const name = el('div', { class: 'name', text: basename(h.path), title: h.path });
    const meta = el('span', { class: 'hashing-meta' });
    const bar = el('progress', { 'aria-label': `Preparing ${basename(h.path)}` });
    const li = el('li', { class: 'row', 'data-hashing': h.path },
      el('div', { class: 'row-main' }, fileIcon(), el('div', { class: 'row-text' }, name, el('div', { class: 'meta' }, meta))),
      el('div', { class: 'row-actions' }, bar));
    li._r = { meta, bar };
    return li;
  }, (li, h) => {
    const secs = Math.round((Date.now() - h.since) / 1000);
    // Until the first progress report the bar stays indeterminate.
    if (h.done != null && h.size) {
      li._r.bar.max = h.size;
      li._r.bar.value = h.done;
      li._r.meta.textContent = `${humanSize(h.done)} of ${humanSize(h.size)} · hashing… ${humanDuration(secs)}`;
    } else {
      li._r.meta.textContent = `${h.size != null ? `${humanSize(h.size)} · ` : ''}hashing… ${humanDuration(secs)}`;
    }
  });
  const badge = $('#badge-shares');
  badge.hidden = items.length === 0;
  badge.textContent = items.length ? String(items.length) : '';
  badge.title = items.length ? `${plural(items.length, 'item')} being prepared` : '';
}
setInterval(() => {
  if (S.hashing.size) renderHashing();
}, 1000);

async function copyMagnet(hash) {
  const share = S.shares.find((s) => s.hash === hash);
  if (!share) return;
  const link = magnet(share);
  let ok = false;
  try {
    await navigator.clipboard.writeText(link);
    ok = true;
  } catch (_) {
    const ta = el('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true' });
    ta.value = link;
    document.body.append(ta);
    ta.select();
    try {
      ok = document.execCommand('copy');
    } catch (__) {
      ok = false;
    }
    ta.remove();
  }
  if (ok) toast(`Magnet link of ${share.name} copied.`, { kind: 'ok' });
  else toast(`Could not copy to the clipboard; the magnet link is: ${link}`, { kind: 'warn', timeout: 30000 });
}

/** Reads a share's every piece again (a restart trusts unchanged files). */
async function verify(hash, button) {
  const name = nameOf(hash);
  await whileBusy(button, 'Checking…', async () => {
    try {
      const [result] = (await api('verify', { hash })) || [];
      if (result && result.intact) toast(`${name}: every piece matches.`, { kind: 'ok' });
      else toast(`${name} changed on disk, so it is no longer shared. Share it again to publish its new content.`, { kind: 'warn', timeout: 15000 });
    } catch (e) {
      toast(explain(`Cannot verify ${name}`, e.message), { kind: 'error' });
    }
  });
  refreshShares();
  refreshTransfers();
}

async function unshare(hash) {
  const name = nameOf(hash);
  const answer = await confirmDialog({
    title: 'Stop sharing?',
    text: `Your contacts will no longer be able to download “${name}” from you. The files stay on your disk.`,
    ok: 'Stop sharing',
    danger: true,
  });
  if (!answer.ok) return;
  try {
    await api('unshare', { hash });
    toast(`${name} is no longer shared.`, { kind: 'ok' });
  } catch (e) {
    toast(explain(`Cannot stop sharing ${name}`, e.message), { kind: 'error' });
  }
  refreshShares();
  refreshTransfers();
}

/** Reports what sharing gave: [{path, share?, error?}]. */
function reportShared(results) {
  const ok = results.filter((r) => r.share).map((r) => r.share);
  for (const r of results) {
    S.hashing.delete(r.path);
    if (r.error) toast(explain(`Cannot share ${basename(r.path)}`, r.error), { kind: 'error' });
  }
  renderHashing();
  if (ok.length === 1) toast(`Sharing ${ok[0].name} (${humanSize(ok[0].size)}).`, { kind: 'ok' });
  else if (ok.length > 1) toast(`Sharing ${ok.length} items: ${listNames(ok.map((s) => s.name))}.`, { kind: 'ok' });
  if (ok.length) refreshShares();
}

async function sharePaths(paths) {
  for (const p of paths) if (!S.hashing.has(p)) S.hashing.set(p, { size: null, since: Date.now() });
  renderHashing();
  try {
    reportShared((await invoke('share_paths', { paths, to: shareWith() })) || []);
  } catch (e) {
    for (const p of paths) S.hashing.delete(p);
    renderHashing();
    toast(explain('Cannot share', e.message), { kind: 'error' });
  }
}

async function pickAndShare(folder) {
  try {
    reportShared((await invoke('pick_and_share', { folder, to: shareWith() })) || []);
  } catch (e) {
    toast(explain('Cannot share', e.message), { kind: 'error' });
  }
}

async function shareFromBrowser(ev) {
  ev.preventDefault();
  const input = $('#share-path');
  const errorNode = $('#share-path-error');
  const path = checkedValue(input, errorNode, (v) => v !== '', "Enter the full path of a file or folder on the daemon's computer.");
  if (path == null) return;
  S.hashing.set(path, { size: null, since: Date.now() });
  renderHashing();
  await whileBusy($('#share-path-submit'), null, async () => {
    try {
      const share = await api('share', { path, to: shareWith() });
      input.value = '';
      reportShared([{ path, share }]);
    } catch (e) {
      S.hashing.delete(path);
      renderHashing();
      showError(errorNode, e.message);
      toast(explain(`Cannot share ${path}`, e.message), { kind: 'error' });
    }
  });
}

export function wireShares() {
  $('#share-form').addEventListener('submit', shareFromBrowser);
  const sharePath = $('#share-path');
  for (const type of ['input', 'change']) {
    sharePath.addEventListener(type, () => {
      if (!sharePath.value) showError($('#share-path-error'), '');
    });
  }
  // (The contacts may have come after the last render.)
  $('#share-audience').addEventListener('focus', renderShareWith);
  $('#pick-files').addEventListener('click', () => pickAndShare(false));
  $('#pick-folder').addEventListener('click', () => pickAndShare(true));
}

/** The desktop app's native drag and drop (Tauri's drag events): the drop
 *  zone lights up while files are dragged over the window, and what is
 *  dropped is shared. */
export async function listenForDrops() {
  const drag = (on) => () => $('#drop-zone').classList.toggle('dragging', on);
  await listen('tauri://drag-enter', () => {
    if (S.started) navigate('shares');
    drag(true)();
  });
  await listen('tauri://drag-over', drag(true));
  await listen('tauri://drag-leave', drag(false));
  await listen('tauri://drag-drop', (payload) => {
    drag(false)();
    const paths = (payload && payload.paths) || [];
    if (paths.length && S.started) sharePaths(paths);
  });
}
