// Message bodies as HTML: text, posts, cards (JSON 2.0 and 1.0), files,
// reactions. Card buttons are collected into `buttons` so that the page can
// press them; the HTML only carries their index.

import { esc, inline, markdown, plain } from './markdown.js';

const EMOJI = {
  THUMBSUP: '👍', OK: '👌', DONE: '✅', SMILE: '😊', LAUGH: '😄', HEART: '❤️', CLAP: '👏',
  THANKS: '🙏', FIRE: '🔥', PARTY: '🎉', MUSCLE: '💪', JIAYI: '+1', EYES: '👀', ERROR: '❗',
  Get: '👌', OnIt: '🫡', Typing: '⌨️',
};

const parse = (s) => {
  try {
    return typeof s === 'string' ? JSON.parse(s) : s;
  } catch {
    return null;
  }
};

/** A reaction chip's label. */
export const emoji = (type) => EMOJI[type] || EMOJI[String(type).toUpperCase()] || type;

/** The HTML of a message's body; card buttons are pushed onto `buttons`. */
export function body(msg, ctx, buttons) {
  if (msg.recalled) return '<div class="bubble recalled">This message was recalled</div>';
  const content = parse(msg.content) || {};
  switch (msg.msg_type) {
    case 'text':
      return `<div class="bubble">${plain(msg.text)}</div>`;
    case 'post':
      return `<div class="bubble post">${post(content, ctx)}</div>`;
    case 'interactive':
      return card(content, msg, ctx, buttons);
    case 'image':
      return '<div class="bubble file">🖼️ Image</div>';
    case 'file':
      return `<div class="bubble file">📎 ${esc(content.file_name || 'File')}</div>`;
    case 'audio':
      return `<div class="bubble file">🎤 Voice message · ${Math.round((content.duration || 0) / 1000)} s</div>`;
    case 'media':
      return `<div class="bubble file">🎬 ${esc(content.file_name || 'Video')}</div>`;
    case 'sticker':
      return '<div class="bubble file">Sticker</div>';
    default:
      return `<div class="bubble">${plain(msg.text || `[${msg.msg_type}]`)}</div>`;
  }
}

// A post is `{title, content}` or that object under a locale key.
function post(c, ctx) {
  const p = Array.isArray(c.content) ? c : Object.values(c).find((v) => v && Array.isArray(v.content)) || {};
  const title = p.title ? `<h4>${esc(p.title)}</h4>` : '';
  return title + (p.content || []).map((para) => paragraph(para, ctx)).join('');
}

function paragraph(nodes, ctx) {
  if (!Array.isArray(nodes)) return '';
  if (nodes.length === 1 && nodes[0].tag === 'md') return markdown(nodes[0].text, ctx.names);
  if (nodes.length === 1 && nodes[0].tag === 'code_block') return `<pre><code>${esc(nodes[0].text)}</code></pre>`;
  if (nodes.length === 1 && nodes[0].tag === 'hr') return '<hr>';
  return `<p>${nodes.map((n) => postNode(n, ctx)).join('')}</p>`;
}

function postNode(n, ctx) {
  switch (n.tag) {
    case 'text': {
      const style = n.style || [];
      let html = plain(n.text);
      if (style.includes('bold')) html = `<strong>${html}</strong>`;
      if (style.includes('italic')) html = `<em>${html}</em>`;
      if (style.includes('lineThrough')) html = `<del>${html}</del>`;
      return html;
    }
    case 'a':
      return inline(`[${String(n.text || n.href).replace(/[[\]]/g, '')}](${n.href})`, ctx.names);
    case 'at':
      return `<span class="at">@${esc(n.user_name || ctx.names[n.user_id] || (n.user_id === 'all' ? 'all' : 'user'))}</span>`;
    case 'md':
      return inline(n.text, ctx.names);
    case 'emotion':
      return esc(emoji(n.emoji_type));
    case 'img':
    case 'media':
      return '<span class="muted">[image]</span>';
    default:
      return esc(n.text || '');
  }
}

function card(c, msg, ctx, buttons) {
  if (c.type === 'template') return '<div class="card"><div class="card-body muted">[template card]</div></div>';
  const elements = (c.body && c.body.elements) || c.elements || Object.values(c.i18n_elements || {})[0] || [];
  const state = msg.streaming ? ' streaming' : '';
  const inner = elements.map((e) => element(e, ctx, buttons)).join('');
  const gen = msg.streaming ? '<div class="generating"><i></i><i></i><i></i> Generating…</div>' : '';
  return `<div class="card${state}">${cardHeader(c.header)}<div class="card-body">${inner || '<p class="muted">…</p>'}${gen}</div></div>`;
}

function cardHeader(h) {
  const title = h && h.title && (h.title.content || h.title.text);
  if (!title) return '';
  const sub = h.subtitle && (h.subtitle.content || h.subtitle.text);
  const color = /^[a-z-]+$/.test(h.template || '') ? ` tpl-${h.template}` : '';
  return `<header class="card-head${color}"><strong>${esc(title)}</strong>${sub ? `<span>${esc(sub)}</span>` : ''}</header>`;
}

// A text object of a 1.0 card: plain_text or lark_md.
const textObject = (t, ctx) =>
  !t ? '' : t.tag === 'lark_md' ? markdown(t.content, ctx.names) : `<p>${plain(t.content)}</p>`;

function element(e, ctx, buttons) {
  const all = (list) => (list || []).map((x) => element(x, ctx, buttons)).join('');
  switch (e && e.tag) {
    case 'markdown':
    case 'lark_md': {
      const note = e.text_size === 'notation' ? ' note' : '';
      return `<div class="md${note}">${markdown(e.content, ctx.names)}</div>`;
    }
    case 'plain_text':
      return `<div class="md"><p>${plain(e.content)}</p></div>`;
    case 'div':
      return `<div class="md">${textObject(e.text, ctx)}${(e.fields || []).map((f) => textObject(f.text, ctx)).join('')}</div>`;
    case 'hr':
      return '<hr>';
    case 'note':
      return `<div class="md note">${(e.elements || []).map((x) => (x.tag === 'img' ? '' : textObject(x, ctx))).join('')}</div>`;
    case 'button':
      return button(e, buttons);
    case 'action':
      return `<div class="actions">${all(e.actions)}</div>`;
    case 'column_set':
      return `<div class="columns">${(e.columns || []).map((col) => `<div>${all(col.elements)}</div>`).join('')}</div>`;
    case 'collapsible_panel': {
      const title = e.header && e.header.title ? e.header.title.content : 'Details';
      return `<details><summary>${esc(title)}</summary>${all(e.elements)}</details>`;
    }
    case 'form':
    case 'interactive_container':
      return all(e.elements);
    case 'img':
      return `<div class="md muted">🖼️ ${esc((e.alt && e.alt.content) || 'image')}</div>`;
    case 'table':
      return cardTable(e, ctx);
    default:
      return '';
  }
}

function button(e, buttons) {
  const behaviors = e.behaviors || [];
  const callback = behaviors.find((b) => b.type === 'callback');
  const value = callback ? callback.value : e.value;
  const label = esc((e.text && e.text.content) || 'Button');
  const kind = /^[a-z_]+$/.test(e.type || '') ? ` ${e.type}` : '';
  if (value === undefined) {
    const open = behaviors.find((b) => b.type === 'open_url');
    const url = (open && open.default_url) || e.url;
    if (url && /^https?:\/\//i.test(url)) {
      return `<a class="card-btn${kind}" href="${esc(url)}" target="_blank" rel="noopener noreferrer">${label}</a>`;
    }
    return `<button class="card-btn${kind}" disabled>${label}</button>`;
  }
  const index = buttons.push({ value, name: e.name, tag: 'button' }) - 1;
  return `<button class="card-btn${kind}" data-btn="${index}">${label}</button>`;
}

function cardTable(e, ctx) {
  const cols = e.columns || [];
  const head = cols.map((c) => `<th>${esc(c.display_name || c.name)}</th>`).join('');
  const rows = (e.rows || [])
    .map((r) => `<tr>${cols.map((c) => `<td>${inline(String(r[c.name] ?? ''), ctx.names)}</td>`).join('')}</tr>`)
    .join('');
  return `<div class="md"><div class="table"><table><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table></div></div>`;
}

/** Reaction chips, one per emoji with a count. */
export function reactions(list) {
  if (!list || !list.length) return '';
  const counts = new Map();
  for (const r of list) counts.set(r.emoji_type, (counts.get(r.emoji_type) || 0) + 1);
  const chips = [...counts]
    .map(([type, n]) => {
      const typing = type === 'Typing' ? ' typing' : '';
      const label = type === 'Typing' ? `${emoji(type)} typing` : emoji(type);
      return `<span class="reaction${typing}" data-emoji="${esc(type)}">${esc(label)}${n > 1 ? ` ${n}` : ''}</span>`;
    })
    .join('');
  return `<div class="reactions">${chips}</div>`;
}

/** One line of a message for previews and quotes. */
export function preview(msg) {
  if (!msg) return '';
  if (msg.recalled) return 'Message recalled';
  if (msg.msg_type === 'interactive' && msg.streaming) return 'Generating…';
  // Markdown marks would read as noise in one line: drop them.
  const text = String(msg.text || `[${msg.msg_type}]`)
    .replace(/^\s*(?:#{1,6}|>|[-*+]|\d+[.)])\s+/gm, '')
    .replace(/\*\*|__|~~|`+/g, '')
    .replace(/(^|\s)[_*]+(?=\S)|(\S)[_*]+(?=\s|$)/gm, '$1$2');
  return text.replace(/\s+/g, ' ').trim().slice(0, 80);
}
