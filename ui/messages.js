/* Messages to the user: toasts in the corner (said once, newest about one
   thing replaces the older) and the modal confirm dialog. */

import { $, $$, el, iconSpan } from './dom.js';

const recentToasts = new Map();

/** A message in the corner: kind info|ok|warn|error, optional action. */
export function toast(message, opts = {}) {
  const kind = opts.kind || 'info';
  const now = Date.now();
  if (recentToasts.get(message) > now - 4000) return;
  if (recentToasts.size > 100) recentToasts.clear();
  recentToasts.set(message, now);
  const box = $('#toast');
  if (opts.key) {
    // A newer message about the same thing replaces the older one.
    for (const old of $$('.toast', box)) if (old.dataset.key === opts.key) old.remove();
  }
  // (The container is a polite live region; errors interrupt.)
  const node = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : null, 'data-key': opts.key || null });
  let timer = null;
  const close = () => {
    clearTimeout(timer);
    node.remove();
  };
  node.append(el('p', { class: 'toast-text', text: message }));
  if (opts.action) {
    node.append(el('button', {
      type: 'button',
      class: 'small',
      text: opts.action.label,
      onclick: () => {
        close();
        opts.action.run();
      },
    }));
  }
  node.append(el('button', { type: 'button', class: 'ghost dismiss', 'aria-label': 'Dismiss this message', onclick: close }, iconSpan('x')));
  box.append(node);
  while (box.children.length > 4) box.firstElementChild.remove();
  const ms = opts.timeout || (kind === 'error' || kind === 'warn' ? 14000 : 6000);
  const arm = (t) => {
    clearTimeout(timer);
    timer = setTimeout(close, t);
  };
  arm(ms);
  node.addEventListener('mouseenter', () => clearTimeout(timer));
  node.addEventListener('mouseleave', () => arm(4000));
  node.addEventListener('focusin', () => clearTimeout(timer));
  node.addEventListener('focusout', () => arm(4000));
}

/** A modal question; resolves {ok, checked}. */
export function confirmDialog({ title, text, ok = 'OK', danger = false, check = null }) {
  const d = $('#confirm');
  if (typeof d.showModal !== 'function') {
    return Promise.resolve({ ok: window.confirm(`${title}\n\n${text}`), checked: false });
  }
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  const okBtn = $('#confirm-ok');
  const cancelBtn = $('#confirm-cancel');
  okBtn.textContent = ok;
  okBtn.className = danger ? 'danger' : 'primary';
  const checkLabel = $('#confirm-check-label');
  const checkBox = $('#confirm-check');
  checkLabel.hidden = !check;
  checkBox.checked = !!(check && check.checked);
  $('#confirm-check-text').textContent = check ? check.label : '';
  return new Promise((resolve) => {
    const finish = (result) => {
      okBtn.onclick = null;
      cancelBtn.onclick = null;
      d.oncancel = null;
      if (d.open) d.close();
      resolve(result);
    };
    okBtn.onclick = (e) => {
      e.preventDefault();
      finish({ ok: true, checked: checkBox.checked });
    };
    cancelBtn.onclick = () => finish({ ok: false, checked: false });
    d.oncancel = (e) => {
      e.preventDefault();
      finish({ ok: false, checked: false });
    };
    d.showModal();
    (danger ? cancelBtn : okBtn).focus();
  });
}

/** Messages in the corner go below the demo banner, not over its button. */
export function wireMessages() {
  const banner = $('#demo-banner');
  const placeToasts = () => {
    const bottom = banner.hidden ? 0 : banner.getBoundingClientRect().bottom;
    document.documentElement.style.setProperty('--toast-top', `${Math.round(bottom) + 12}px`);
  };
  if (typeof ResizeObserver === 'function') new ResizeObserver(placeToasts).observe(banner);
}
