/* Search across every contact's shares: one hit per file, with who has
   it and the Download button. */

import { api } from './transport.js';
import { S } from './state.js';
import { $, syncList } from './dom.js';
import { debounce, plural } from './format.js';
import { toast } from './messages.js';
import { catalogShareRow, updateCatalogShareRow } from './catalog-rows.js';

const SEARCH_LIMIT = 200;

export async function runSearch() {
  const text = S.search.text;
  const seq = ++S.search.seq;
  if (!text) {
    $('#search-results').hidden = true;
    $('#roster').hidden = false;
    return;
  }
  let hits;
  try {
    hits = (await api('search', { text, limit: SEARCH_LIMIT })) || [];
  } catch (e) {
    if (seq === S.search.seq) toast(`Search failed: ${e.message}`, { kind: 'error' });
    return;
  }
  if (seq !== S.search.seq) return; // a newer search is on its way
  const groups = new Map();
  for (const h of hits) {
    let g = groups.get(h.share.hash);
    if (!g) groups.set(h.share.hash, (g = { share: h.share, jids: new Map() }));
    g.jids.set(h.jid, g.jids.get(h.jid) || !!h.online);
  }
  S.search.groups = groups;
  S.search.limited = hits.length >= SEARCH_LIMIT;
  const shares = [...groups.values()].map((g) => g.share);
  $('#search-results').hidden = false;
  $('#h-search').textContent = shares.length
    ? `${plural(shares.length, 'file')} matching “${text}”${S.search.limited ? ` (the first ${SEARCH_LIMIT} matches)` : ''}`
    : `Results for “${text}”`;
  syncList($('#search-list'), shares, (s) => s.hash, catalogShareRow, updateCatalogShareRow);
  const empty = $('#search-empty');
  empty.hidden = shares.length > 0;
  empty.textContent = `None of your contacts shares anything named like “${text}”.`;
}
const searchSoon = debounce(runSearch, 250);

/** The search box: searches as one types (Escape clears it). */
export function wireSearch() {
  const search = $('#contact-search');
  const searchChanged = () => {
    const text = search.value.trim();
    if (text === S.search.text) return;
    S.search.text = text;
    if (!text) runSearch();
    else searchSoon();
  };
  for (const type of ['input', 'change', 'search']) search.addEventListener(type, searchChanged);
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      search.value = '';
      searchChanged();
    }
  });
}
