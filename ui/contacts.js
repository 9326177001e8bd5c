/* Contacts: the roster with each contact's devices and shares (expand a
   contact), their roster groups (shown, and edited when expanded), the
   connection check, contact requests, adding a contact. */

import { api } from './transport.js';
import { allGroups, S } from './state.js';
import { $, avatarFor, checkedValue, el, iconSpan, nextId, showError, syncList, whileBusy } from './dom.js';
import { bareJid, coalesce, explain, plural } from './format.js';
import { toast } from './messages.js';
import { quietly } from './status.js';
import { catalogShareRow, updateCatalogShareRow } from './catalog-rows.js';

export function refreshContacts() {
  return quietly((async () => {
    S.contacts = (await api('contacts')) || [];
    renderContacts();
  })());
}

export const refreshContactsSoon = coalesce(refreshContacts, 300);

function subscriptionText(c) {
  if (!c.roster) return 'not in your contact list';
  const sub = c.roster.subscription;
  if (sub === 'both') return 'you share with each other';
  if (sub === 'to') return c.roster.pending_in ? 'asks to see your shares' : 'sees nothing of yours';
  if (sub === 'from') return c.roster.pending_out ? 'request sent, waiting for them to accept' : 'sees your shares; you do not see theirs';
  return c.roster.pending_out ? 'request sent, waiting for them to accept' : 'not connected';
}

/** Roster entries plus anyone else the catalog knows (never ourselves). */
function contactModels() {
  const out = new Map();
  for (const r of S.contacts) out.set(bareJid(r.jid), { jid: bareJid(r.jid), roster: r, view: null });
  for (const [jid, view] of S.catalog) {
    if (jid === S.me) continue;
    const m = out.get(jid) || { jid, roster: null, view: null };
    m.view = view;
    out.set(jid, m);
  }
  for (const m of out.values()) {
    m.online = !!(m.view && m.view.online.length);
    m.shares = m.view ? m.view.resources.reduce((n, r) => n + r.shares.length, 0) : 0;
    m.name = (m.roster && m.roster.name) || '';
  }
  return [...out.values()].sort((a, b) => (b.online - a.online) || (a.name || a.jid).localeCompare(b.name || b.jid));
}

function contactRow(m) {
  const bodyId = `contact-body-${nextId()}`;
  const av = el('span', { class: 'avatar', 'aria-hidden': 'true' });
  const jidEl = el('span', { class: 'jid' });
  const subEl = el('span', { class: 'subscription' });
  const groupsEl = el('span', { class: 'groups' });
  const expand = el('button', { type: 'button', class: 'expand', 'aria-expanded': 'false', 'aria-controls': bodyId },
    iconSpan('chevron', 'icon chevron'), av, el('span', { class: 'who' }, jidEl, el('span', { class: 'sub-line' }, subEl, groupsEl)));
  const presence = el('span', { class: 'presence' });
  const count = el('span', { class: 'share-count' });
  const body = el('div', { class: 'contact-body', id: bodyId, hidden: true });
  const editor = el('div', { class: 'contact-groups', hidden: true });
  const li = el('li', { class: 'contact', 'data-jid': m.jid },
    el('div', { class: 'contact-head' }, expand, presence, count), editor, body);
  expand.addEventListener('click', () => {
    if (S.expanded.has(m.jid)) S.expanded.delete(m.jid);
    else S.expanded.add(m.jid);
    renderContacts();
  });
  li._r = { av, jidEl, subEl, groupsEl, expand, presence, count, body, editor };
  return li;
}

function updateContactRow(li, m) {
  const r = li._r;
  avatarFor(r.av, m.name || m.jid);
  r.jidEl.textContent = m.name ? `${m.name} (${m.jid})` : m.jid;
  r.jidEl.title = m.jid;
  r.subEl.textContent = subscriptionText(m);
  const groups = (m.roster && m.roster.groups) || [];
  r.groupsEl.replaceChildren(...groups.map((g) => el('span', { class: 'tag group', text: g })));
  r.presence.textContent = m.online ? 'online' : 'offline';
  r.presence.className = `presence ${m.online ? 'online' : 'offline'}`;
  r.count.textContent = plural(m.shares, 'share');
  const open = S.expanded.has(m.jid);
  r.expand.setAttribute('aria-expanded', String(open));
  r.body.hidden = !open;
  r.editor.hidden = !open || !m.roster;
  if (open && m.roster) renderGroupsEditor(r.editor, m);
  if (open) renderContactBody(r.body, m);
  else r.body.replaceChildren();
}

const SHOWN_PER_RESOURCE = 200;

function renderContactBody(body, m) {
  const resources = m.view ? [...m.view.resources] : [];
  // Online resources that published nothing still show, as devices.
  if (m.view) {
    for (const res of m.view.online) {
      if (!resources.some((r) => r.resource === res)) resources.push({ resource: res, online: true, addresses: [], shares: [] });
    }
  }
  if (!resources.length) {
    body.replaceChildren(el('p', { class: 'muted', text: m.online ? 'Online, but shares nothing (or uses no Bitween).' : 'Nothing known: they share nothing, or have not been online since you started.' }));
    return;
  }
  if (body.firstElementChild && body.firstElementChild.tagName === 'P') body.replaceChildren();
  let holder = body.querySelector(':scope > .resources');
  if (!holder) {
    holder = el('div', { class: 'resources' });
    body.append(holder);
    body.append(diagnoseBlock(m.jid));
  }
  syncList(holder, resources, (r) => r.resource, (r) => {
    const title = el('h3', { class: 'resource-name' });
    const state = el('span', { class: 'availability' });
    const addresses = el('span', { class: 'addresses' });
    const list = el('ul', { class: 'list' });
    const more = el('button', { type: 'button', class: 'small ghost more', hidden: true });
    const key = `${m.jid}/${r.resource}`;
    more.addEventListener('click', () => {
      S.showAll.add(key);
      renderContacts();
    });
    const node = el('div', { class: 'resource' }, el('div', { class: 'resource-head' }, iconSpan('user'), title, state, addresses), list, more);
    node._r = { title, state, addresses, list, more, key };
    return node;
  }, (node, r) => {
    const x = node._r;
    x.title.textContent = r.resource;
    x.state.textContent = r.online ? 'online' : 'offline';
    x.state.className = `availability ${r.online ? 'online' : 'offline'}`;
    x.addresses.textContent = r.addresses.length ? `at ${r.addresses.join(', ')}` : '';
    const all = S.showAll.has(x.key);
    const shares = all ? r.shares : r.shares.slice(0, SHOWN_PER_RESOURCE);
    syncList(x.list, shares, (s) => s.hash, catalogShareRow, (li, s) => updateCatalogShareRow(li, s, true));
    x.more.hidden = all || r.shares.length <= SHOWN_PER_RESOURCE;
    x.more.textContent = `Show all ${r.shares.length} shares`;
    if (!r.shares.length) x.list.replaceChildren(el('li', { class: 'muted', text: 'No shares on this device.' }));
  });
}


/** The expanded contact's groups: each with a button to leave it, and a
 *  field to add the contact to a group (a new one is made this way). */
function renderGroupsEditor(node, m) {
  const groups = m.roster.groups || [];
  const key = [groups, allGroups()].flat().join('\n');
  // (Not rebuilt while unchanged: what is being typed stays.)
  if (node._key === key) return;
  node._key = key;
  const chips = groups.map((g) => {
    const leave = el('button', { type: 'button', class: 'chip-remove', text: '×', title: `Take ${m.jid} out of ${g}`, 'aria-label': `Take ${m.jid} out of ${g}` });
    leave.addEventListener('click', () => changeGroups(leave, 'remove_from_group', { jid: m.jid, group: g }));
    return el('span', { class: 'tag group' }, g, leave);
  });
  const listId = `groups-known-${nextId()}`;
  const input = el('input', { type: 'text', class: 'group-input', placeholder: 'Add to a group…', list: listId, 'aria-label': `Add ${m.jid} to a group`, maxlength: '256' });
  const known = el('datalist', { id: listId }, allGroups().filter((g) => !groups.includes(g)).map((g) => el('option', { value: g })));
  const add = el('button', { type: 'submit', class: 'small', text: 'Add' });
  const form = el('form', { class: 'group-add' }, input, known, add);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const group = input.value.trim();
    if (group) changeGroups(add, 'add_to_group', { jid: m.jid, group });
  });
  node.replaceChildren(el('span', { class: 'label', text: 'Groups' }),
    ...(chips.length ? chips : [el('span', { class: 'muted', text: 'none' })]), form);
}

async function changeGroups(button, method, params) {
  await whileBusy(button, null, async () => {
    try {
      await api(method, params);
      await refreshContacts();
    } catch (e) {
      toast(explain(`Cannot change ${params.jid}'s groups`, e.message), { kind: 'error' });
    }
  });
}

function diagnoseBlock(jid) {
  const out = el('div', { class: 'diagnosis', 'aria-live': 'polite' });
  const button = el('button', { type: 'button', class: 'small', text: 'Check connection', 'aria-label': `Check whether ${jid} can be reached` });
  button.addEventListener('click', () => whileBusy(button, null, async () => {
    out.replaceChildren(el('p', { class: 'muted', text: 'Checking…' }));
    try {
      const result = (await api('diagnose', { jid })) || [];
      out.replaceChildren(...(result.length ? result.map((d) => el('div', {},
        el('p', {}, el('strong', { text: `${d.resource}: ` }), d.diagnosis.message),
        el('ul', {}, (d.diagnosis.checks || []).map((c) => el('li', { text: c.message }))))) : [el('p', { class: 'muted', text: 'They published no address to check.' })]));
    } catch (e) {
      out.replaceChildren(el('p', { class: 'form-error', text: e.message }));
    }
  }));
  return el('div', { class: 'actions' }, button, out);
}

function requestRow(jid) {
  const av = el('span', { class: 'avatar', 'aria-hidden': 'true' });
  avatarFor(av, jid);
  const accept = el('button', { type: 'button', class: 'accept small primary', text: 'Accept', 'aria-label': `Accept ${jid} as a contact` });
  const decline = el('button', { type: 'button', class: 'decline small', text: 'Decline', 'aria-label': `Decline ${jid}'s request` });
  accept.addEventListener('click', () => answerRequest(jid, true));
  decline.addEventListener('click', () => answerRequest(jid, false));
  return el('li', { class: 'row request', 'data-request': jid },
    el('div', { class: 'row-main' }, av, el('div', { class: 'row-text' },
      el('div', { class: 'name', text: jid }),
      el('div', { class: 'meta' }, el('span', { text: 'wants to share with you and see what you share' })))),
    el('div', { class: 'row-actions' }, accept, decline));
}

async function answerRequest(jid, accept) {
  try {
    await api(accept ? 'accept_contact' : 'decline_contact', { jid });
    S.requests.delete(jid);
    toast(accept ? `${jid} is now your contact.` : `Declined ${jid}'s request.`, { kind: 'ok' });
  } catch (e) {
    toast(`Cannot answer ${jid}: ${e.message}`, { kind: 'error' });
  }
  renderContacts();
  refreshContacts();
}

export function renderContacts() {
  const models = contactModels();
  syncList($('#contacts-list'), models, (m) => m.jid, contactRow, updateContactRow);
  $('#contacts-empty').hidden = models.length > 0;
  const online = models.filter((m) => m.online).length;
  $('#contacts-total').textContent = models.length ? `${online} of ${models.length} online` : '';
  for (const c of S.contacts) if (c.pending_in) S.requests.add(bareJid(c.jid));
  for (const jid of [...S.requests]) {
    const c = S.contacts.find((x) => bareJid(x.jid) === jid);
    if (c && !c.pending_in && (c.subscription === 'from' || c.subscription === 'both')) S.requests.delete(jid);
  }
  const requests = [...S.requests].sort();
  $('#requests').hidden = requests.length === 0;
  syncList($('#requests-list'), requests, (j) => j, requestRow, () => {});
  renderRenameForm();
  const badge = $('#badge-contacts');
  badge.hidden = requests.length === 0;
  badge.textContent = String(requests.length);
  badge.title = requests.length ? `${plural(requests.length, 'contact request')} waiting` : '';
}

async function addContact(ev) {
  ev.preventDefault();
  const input = $('#add-contact-jid');
  const errorNode = $('#add-contact-error');
  const jid = checkedValue(input, errorNode, (v) => /^[^@\s/]+@[^@\s/]+$/.test(v), 'Enter an XMPP address like friend@example.org.');
  if (jid == null) return;
  await whileBusy($('#add-contact-submit'), null, async () => {
    try {
      await api('add_contact', { jid });
      input.value = '';
      toast(`Request sent to ${jid}: you see each other's shares once they accept.`, { kind: 'ok' });
      refreshContacts();
    } catch (e) {
      showError(errorNode, e.message);
      toast(explain(`Cannot add ${jid}`, e.message), { kind: 'error' });
    }
  });
}

/** The rename form lists every group; hidden while there is none. */
function renderRenameForm() {
  const groups = allGroups();
  $('#rename-group-form').hidden = groups.length === 0;
  const select = $('#rename-group-from');
  const chosen = select.value;
  if ([...select.options].map((o) => o.value).join('\n') !== groups.join('\n')) {
    select.replaceChildren(...groups.map((g) => el('option', { value: g, text: g })));
    if (groups.includes(chosen)) select.value = chosen;
  }
}

async function renameGroup(ev) {
  ev.preventDefault();
  const from = $('#rename-group-from').value;
  const input = $('#rename-group-to');
  const errorNode = $('#rename-group-error');
  const to = checkedValue(input, errorNode, (v) => v !== '', 'Enter the new name of the group.');
  if (to == null) return;
  await whileBusy($('#rename-group-submit'), null, async () => {
    try {
      const moved = await api('rename_group', { from, to });
      input.value = '';
      toast(`${plural(moved, 'contact')} moved from “${from}” to “${to}”.`, { kind: 'ok' });
      await refreshContacts();
      $('#rename-group-from').value = to;
    } catch (e) {
      showError(errorNode, e.message);
    }
  });
}

export function wireContacts() {
  $('#add-contact-jid').addEventListener('input', () => showError($('#add-contact-error'), ''));
  $('#add-contact-form').addEventListener('submit', addContact);
  $('#rename-group-to').addEventListener('input', () => showError($('#rename-group-error'), ''));
  $('#rename-group-form').addEventListener('submit', renameGroup);
}
