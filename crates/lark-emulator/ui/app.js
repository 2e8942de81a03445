// The chat page: a person plays the emulator's users (Alice, Bob) in a DM
// with the bot, a group and a topic group. It long-polls the emulator's
// control API (no busy polling), sends user messages, presses card buttons,
// and, when a gateway is attached, lists and approves its pairing requests.

import { esc } from './markdown.js';
import { body, preview, reactions } from './render.js';

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const state = {
  cfg: null, // GET /_emulator/ui/config
  me: null, // open_id of the user being played
  chat: 'dm', // key of the open chat: dm | team | topic
  view: null, // the open chat's last ChatView
  mention: false, // next group message @mentions the bot
  topic: null, // root message_id the next topic-group message replies to
  buttons: new Map(), // message_id -> card buttons
  seen: {}, // chat_id -> version the person has seen
  summaries: {}, // chat_id -> {version, last}
  poll: null, // AbortController of the open chat's long-poll
};

/** JSON of a control-API call; errors carry the answer's `error` text. */
async function api(path, init = {}) {
  const headers = init.body ? { 'content-type': 'application/json' } : {};
  const res = await fetch(path, { ...init, headers });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((data && (data.error || data.msg)) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function toast(text, kind = 'info') {
  const el = $('toast');
  el.textContent = text;
  el.className = `toast ${kind}`;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), 3500);
}

// ---- who and where -------------------------------------------------------

const user = (id = state.me) => state.cfg.users.find((u) => u.open_id === id);
const names = () => {
  const n = { [state.cfg.bot_open_id]: state.cfg.bot_name };
  for (const u of state.cfg.users) n[u.open_id] = u.name;
  return n;
};

/** The chats in the sidebar: the played user's DM and the two groups. */
function chats() {
  const bot = state.cfg.bot_name;
  const dm = { key: 'dm', chat_id: user().dm_chat_id, chat_mode: 'p2p', name: bot };
  return [dm, ...state.cfg.chats];
}
const current = () => chats().find((c) => c.key === state.chat) || chats()[0];

const SUBTITLE = {
  p2p: () => `Direct message with ${state.cfg.bot_name}`,
  group: () => `${state.cfg.users.map((u) => u.name).join(', ')} and ${state.cfg.bot_name} · the bot answers when @mentioned`,
  topic: () => 'Topic group · each message starts a topic, replies stay in it',
};

function avatar(id, label) {
  if (id === 'bot') return '<div class="avatar bot" aria-hidden="true">✦</div>';
  // No inline styles (the page's CSP forbids them): one of eight colours.
  const tone = [...String(id)].reduce((h, c) => (h * 31 + c.charCodeAt(0)) % 8, 7);
  return `<div class="avatar tone${tone}" aria-hidden="true">${esc(String(label || '?')[0])}</div>`;
}
const chatAvatar = (c) => (c.chat_mode === 'p2p' ? avatar('bot') : avatar(c.chat_id, c.name));

// ---- sidebar ---------------------------------------------------------------

function renderSidebar() {
  const all = names();
  $('chat-list').innerHTML = chats()
    .map((c) => {
      const s = state.summaries[c.chat_id];
      const last = s && s.last;
      const who = !last ? '' : last.sender === state.me ? 'You: ' : c.chat_mode === 'p2p' ? '' : `${last.sender === 'bot' ? state.cfg.bot_name : all[last.sender] || 'Someone'}: `;
      const text = last ? `${who}${preview(last)}` : c.chat_mode === 'p2p' ? 'Say hello' : 'No messages yet';
      const unread = s && c.key !== state.chat && s.version > (state.seen[c.chat_id] || 0) && last;
      return `<button class="chat-item${c.key === state.chat ? ' active' : ''}" data-chat="${c.key}">
        ${chatAvatar(c)}<span class="chat-text"><strong>${esc(c.name)}</strong><span>${esc(text)}</span></span>
        ${unread ? '<span class="unread" aria-label="new messages"></span>' : ''}</button>`;
    })
    .join('');
}

/** Long-polls every chat's version and last message for the sidebar. */
async function watchSidebar() {
  let version = -1;
  for (;;) {
    try {
      const q = version < 0 ? '' : `?wait_version=${version}`;
      const list = await api(`/_emulator/ui/chats${q}`);
      const changed = list.version !== version;
      version = list.version;
      for (const c of list.chats) {
        state.summaries[c.chat_id] = c;
        // What was there when the page opened counts as read.
        if (!(c.chat_id in state.seen)) state.seen[c.chat_id] = c.version;
      }
      renderSidebar();
      if (changed) refreshOperator();
    } catch (e) {
      version = -1; // after an error (a restarted emulator counts anew), ask without waiting
      await sleep(2000);
    }
  }
}

// ---- the open chat ---------------------------------------------------------

function openChat(key) {
  state.chat = key;
  state.topic = null;
  state.mention = false;
  state.view = null;
  const c = current();
  history.replaceState(null, '', `#${key}`);
  $('chat-title').textContent = c.name;
  $('chat-sub').textContent = SUBTITLE[c.chat_mode]();
  $('chat-avatar').innerHTML = chatAvatar(c);
  $('messages').innerHTML = '';
  $('messages').dataset.chatId = c.chat_id;
  document.body.classList.remove('drawer-open');
  updateComposer();
  renderSidebar();
  watchChat(c.chat_id);
}

/** Long-polls the open chat and renders each new version. */
async function watchChat(chatId) {
  if (state.poll) state.poll.abort();
  const ctl = (state.poll = new AbortController());
  let version = -1;
  while (!ctl.signal.aborted) {
    try {
      const q = version < 0 ? '' : `?wait_version=${version}`;
      const view = await api(`/_emulator/chats/${encodeURIComponent(chatId)}/messages${q}`, { signal: ctl.signal });
      if (ctl.signal.aborted) return;
      version = view.version;
      delete $('messages').dataset.error;
      state.view = view;
      state.seen[chatId] = version;
      renderChat(view);
    } catch (e) {
      if (ctl.signal.aborted) return;
      version = -1; // as in watchSidebar
      $('messages').dataset.error = e.message;
      await sleep(1500);
      // A restarted emulator has lost the chat: asking for the config creates it again.
      if (e.status === 404) await api('/_emulator/ui/config').catch(() => {});
    }
  }
}

function messageHtml(m, prev, ctx) {
  const mine = m.sender === state.me;
  const who = m.sender === 'bot' ? state.cfg.bot_name : ctx.names[m.sender] || 'Unknown user';
  const cont = prev && prev.sender === m.sender && m.create_time_ms - prev.create_time_ms < 300000 && !m.reply_to;
  const buttons = [];
  const inner = body(m, ctx, buttons);
  state.buttons.set(m.message_id, buttons);
  const time = new Date(m.create_time_ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const parent = m.reply_to && ctx.quote ? ctx.byId.get(m.reply_to) : null;
  const quote = parent
    ? `<div class="quote">${esc(parent.sender === 'bot' ? state.cfg.bot_name : ctx.names[parent.sender] || '')}: ${esc(preview(parent))}</div>`
    : '';
  const edited = m.edits > 0 ? '<span class="edited">edited</span>' : '';
  const cls = `msg ${m.sender === 'bot' ? 'bot' : mine ? 'mine' : 'other'}${cont ? ' cont' : ''}`;
  return `<div class="${cls}" data-message-id="${esc(m.message_id)}" data-sender="${esc(m.sender)}"
    data-msg-type="${esc(m.msg_type)}" data-streaming="${m.streaming}" data-reply-to="${esc(m.reply_to || '')}">
    ${mine ? '' : avatar(m.sender, who)}
    <div class="stack"><div class="meta"><span class="name">${esc(mine ? 'You' : who)}</span><time>${time}</time>${edited}</div>
    ${quote}${inner}${reactions(m.reactions)}</div></div>`;
}

/** Messages grouped as the chat shows them: one block per message, or per topic. */
function blocksOf(view, ctx) {
  const msgs = view.messages;
  if (view.chat_mode !== 'topic') {
    return msgs.map((m, i) => ({ key: m.message_id, html: messageHtml(m, msgs[i - 1], ctx) }));
  }
  const roots = msgs.filter((m) => !m.root_id || !ctx.byId.has(m.root_id));
  return roots.map((root) => {
    const replies = msgs.filter((m) => m !== root && m.root_id === root.message_id);
    const open = state.topic === root.message_id;
    const html = `<section class="topic${open ? ' replying' : ''}" data-topic="${esc(root.message_id)}">
      ${messageHtml(root, null, ctx)}
      ${replies.length ? `<div class="replies">${replies.map((m, i) => messageHtml(m, replies[i - 1], ctx)).join('')}</div>` : ''}
      <button class="link reply-topic" data-reply="${esc(root.message_id)}">${replies.length ? `${replies.length} ${replies.length === 1 ? 'reply' : 'replies'} · ` : ''}Reply</button>
    </section>`;
    return { key: `topic:${root.message_id}`, html };
  });
}

/** Updates the message list, touching only the blocks whose HTML changed. */
function renderChat(view) {
  const box = $('messages');
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  const ctx = { names: names(), byId: new Map(view.messages.map((m) => [m.message_id, m])), quote: view.chat_mode === 'group' };
  const blocks = blocksOf(view, ctx);
  const old = new Map([...box.children].filter((el) => el.dataset.key).map((el) => [el.dataset.key, el]));
  blocks.forEach((b, i) => {
    let el = old.get(b.key);
    if (!el || el.dataset.html !== b.html) {
      const fresh = document.createElement('div');
      fresh.className = 'block';
      fresh.dataset.key = b.key;
      fresh.dataset.html = b.html;
      fresh.innerHTML = b.html;
      if (el) el.replaceWith(fresh);
      el = fresh;
    }
    old.delete(b.key);
    if (box.children[i] !== el) box.insertBefore(el, box.children[i] || null);
  });
  for (const el of old.values()) el.remove();
  box.querySelector('.empty')?.remove();
  if (!blocks.length) box.innerHTML = emptyHtml();
  box.dataset.version = view.version;
  if (stick) box.scrollTop = box.scrollHeight;
}

function emptyHtml() {
  const c = current();
  const hint =
    c.chat_mode === 'p2p'
      ? `Say hello to ${c.name}. Its reply streams into a card; press Stop to interrupt it.`
      : c.chat_mode === 'group'
        ? 'The bot answers in groups when you @mention it: press @ before sending.'
        : 'Each message starts a topic; the bot answers @mentions inside the topic.';
  return `<div class="empty">${chatAvatar(c)}<p>${esc(hint)}</p></div>`;
}

// ---- composer --------------------------------------------------------------

function updateComposer() {
  const c = current();
  const group = c.chat_mode !== 'p2p';
  const mention = $('mention');
  mention.hidden = !group;
  mention.setAttribute('aria-pressed', String(state.mention));
  mention.innerHTML = `@<span>${esc(state.cfg.bot_name)}</span>`;
  const root = state.topic && state.view && state.view.messages.find((m) => m.message_id === state.topic);
  $('reply-banner').hidden = !root;
  if (root) $('reply-text').textContent = `Replying in topic: ${preview(root)}`;
  const who = user().name;
  $('input').placeholder =
    c.chat_mode === 'topic' && !root ? `New topic as ${who}…` : `Message ${c.name} as ${who}…`;
}

/** Sends the composer's text as the played user. */
async function send() {
  const input = $('input');
  let text = input.value.trim();
  if (!text) return;
  const c = current();
  let mentions = state.mention;
  const typed = new RegExp(`^@(bot|${state.cfg.bot_name.replace(/[^\w ]/g, '.')})\\b\\s*`, 'i');
  if (c.chat_mode !== 'p2p' && typed.test(text)) {
    mentions = true;
    text = text.replace(typed, '') || text;
  }
  const me = user();
  const msg = {
    chat_type: c.chat_mode,
    chat_id: c.chat_id,
    sender_open_id: me.open_id,
    sender_name: me.name,
    text,
    mentions_bot: c.chat_mode !== 'p2p' && mentions,
  };
  if (c.chat_mode === 'topic' && state.topic) {
    msg.parent_id = state.topic;
    msg.root_id = state.topic;
  }
  $('send').disabled = true;
  try {
    await api('/_emulator/messages', { method: 'POST', body: JSON.stringify(msg) });
    input.value = '';
    state.mention = false;
    autosize();
    updateComposer();
    const box = $('messages');
    box.scrollTop = box.scrollHeight;
  } catch (e) {
    toast(`Not sent: ${e.message}`, 'error');
  } finally {
    $('send').disabled = false;
    input.focus();
  }
}

function autosize() {
  const input = $('input');
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

/** Presses a card button as the played user and shows the bot's toast. */
async function press(messageId, index, el) {
  const button = (state.buttons.get(messageId) || [])[index];
  if (!button) return;
  el.disabled = true;
  try {
    const press = { operator_open_id: state.me, value: button.value, tag: button.tag, name: button.name };
    const res = await api(`/_emulator/cards/${encodeURIComponent(messageId)}/action`, {
      method: 'POST',
      body: JSON.stringify(press),
    });
    const t = res.response && res.response.toast;
    if (t && t.content) toast(t.content, t.type || 'info');
    else if (res.status !== 'ok') toast(`Button: ${res.status}${res.detail ? ` (${res.detail})` : ''}`, 'error');
  } catch (e) {
    toast(`Button failed: ${e.message}`, 'error');
  } finally {
    el.disabled = false;
  }
}

// ---- operator panel (the gateway's admin API) ------------------------------

async function admin(path, method = 'GET') {
  // No custom headers: a simple CORS request, no preflight.
  const res = await fetch(`${state.cfg.gateway_admin_url}${path}`, { method });
  const data = await res.json().catch(() => null);
  if (!res.ok && !(path === '/healthz' && data)) throw new Error((data && data.error) || `HTTP ${res.status}`);
  return data;
}

async function refreshOperator() {
  if (!state.cfg.gateway_admin_url) {
    state.cfg = { ...state.cfg, ...(await api('/_emulator/ui/config').catch(() => ({}))) };
  }
  const dot = $('gw-dot');
  const status = $('gw-status');
  if (!state.cfg.gateway_admin_url) {
    dot.dataset.state = 'none';
    status.textContent = 'No gateway attached. `larkgate demo` starts one and connects this panel.';
    $('pairing-list').innerHTML = '';
    return;
  }
  try {
    const health = await admin('/healthz');
    const accounts = (health.accounts || []).map((a) => `${a.name}: ${a.state}`).join(', ');
    dot.dataset.state = health.status === 'ok' ? 'ok' : 'warn';
    status.textContent = `Gateway ${health.status}${accounts ? ` · ${accounts}` : ''}`;
    renderPairing(await admin('/api/pairing'));
  } catch (e) {
    dot.dataset.state = 'down';
    status.textContent = `Gateway unreachable (${e.message})`;
  }
}

function renderPairing(list) {
  const all = names();
  const items = (Array.isArray(list) ? list : []).map((p) => {
    const mins = Math.max(0, Math.round((p.expires_ms - Date.now()) / 60000));
    return `<li data-code="${esc(p.code)}"><div><code>${esc(p.code)}</code>
      <span>${esc(all[p.open_id] || p.open_id)} · ${esc(p.account)} · ${mins} min left</span></div>
      <div class="pair-actions"><button class="primary" data-approve="${esc(p.code)}">Approve</button>
      <button data-reject="${esc(p.code)}">Reject</button></div></li>`;
  });
  $('pairing-list').innerHTML = items.length ? items.join('') : '<li class="muted">No pairing requests.</li>';
}

async function decide(code, verdict) {
  try {
    const res = await admin(`/api/pairing/${encodeURIComponent(code)}/${verdict}`, 'POST');
    // `{approved: pairing}` / `{rejected: pairing}` (or the pairing itself).
    const p = (res && (res.approved || res.rejected)) || res || {};
    const who = names()[p.open_id] || 'the user';
    toast(verdict === 'approve' ? `Approved ${who}` : `Rejected ${code}`);
  } catch (e) {
    toast(`${verdict} ${code}: ${e.message}`, 'error');
  }
  refreshOperator();
}

async function watchOperator() {
  for (;;) {
    if (!document.hidden) await refreshOperator().catch(() => {});
    await sleep(5000);
  }
}

// ---- wiring ----------------------------------------------------------------

function wire() {
  $('chat-list').addEventListener('click', (e) => {
    const item = e.target.closest('[data-chat]');
    if (item) openChat(item.dataset.chat);
  });
  $('messages').addEventListener('click', (e) => {
    const btn = e.target.closest('[data-btn]');
    if (btn) return press(btn.closest('[data-message-id]').dataset.messageId, Number(btn.dataset.btn), btn);
    const reply = e.target.closest('[data-reply]');
    if (reply) {
      state.topic = reply.dataset.reply;
      updateComposer();
      if (state.view) renderChat(state.view);
      $('input').focus();
    }
  });
  $('reply-cancel').addEventListener('click', () => {
    state.topic = null;
    updateComposer();
    if (state.view) renderChat(state.view);
  });
  $('mention').addEventListener('click', () => {
    state.mention = !state.mention;
    updateComposer();
    $('input').focus();
  });
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('input').addEventListener('input', autosize);
  $('user-select').addEventListener('change', (e) => {
    state.me = e.target.value;
    localStorage.setItem('larkgate.me', state.me);
    openChat(state.chat);
  });
  $('menu').addEventListener('click', () => document.body.classList.toggle('drawer-open'));
  $('scrim').addEventListener('click', () => document.body.classList.remove('drawer-open'));
  $('pairing-list').addEventListener('click', (e) => {
    const b = e.target.closest('[data-approve],[data-reject]');
    if (b) decide(b.dataset.approve || b.dataset.reject, b.dataset.approve ? 'approve' : 'reject');
  });
}

async function main() {
  for (;;) {
    try {
      state.cfg = await api('/_emulator/ui/config');
      break;
    } catch (e) {
      $('chat-sub').textContent = `Cannot reach the emulator (${e.message}); retrying…`;
      await sleep(2000);
    }
  }
  const saved = localStorage.getItem('larkgate.me');
  state.me = (state.cfg.users.find((u) => u.open_id === saved) || state.cfg.users[0]).open_id;
  $('user-select').innerHTML = state.cfg.users
    .map((u) => `<option value="${esc(u.open_id)}"${u.open_id === state.me ? ' selected' : ''}>${esc(u.name)}</option>`)
    .join('');
  $('bot-name').textContent = state.cfg.bot_name;
  wire();
  const key = location.hash.slice(1);
  openChat(chats().some((c) => c.key === key) ? key : 'dm');
  document.body.dataset.ready = 'true';
  watchSidebar();
  watchOperator();
}

main();
