// A small markdown renderer for chat messages and cards.
//
// Safety: every piece of text that reaches the output goes through esc();
// the only tags are the ones written below, and links are kept only for
// http(s) and mailto URLs. Unclosed constructs (a fence while a reply
// streams) render as far as they go.

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML content and quoted attributes. */
export const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ESC[c]);

const SAFE_URL = /^(https?:\/\/|mailto:)/i;

// One alternative per inline construct; the group numbers are used in token().
const INLINE = [
  /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/, // 1, 2: code span
  /\[([^\]\n]+)\]\(\s*([^)\s]+)\s*\)/, // 3, 4: link
  /<at\s+(?:id|user_id|open_id)\s*=\s*["']?([\w-]+)["']?\s*>([^<]*)<\/at>/, // 5, 6: mention
  /(https?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]}])/, // 7: bare URL
  /(\*\*|__|~~)(?=\S)([\s\S]*?\S)\8/, // 8, 9: strong or strike
  /([*_])(?=[^\s*_])([\s\S]*?[^\s\\])\10/, // 10, 11: emphasis
].map((r) => r.source).join('|');

function link(url, label) {
  if (!SAFE_URL.test(url)) return label;
  return `<a href="${esc(url)}" target="_blank" rel="noopener noreferrer">${label}</a>`;
}

function token(m, names) {
  if (m[2] !== undefined) return `<code>${esc(m[2])}</code>`;
  if (m[3] !== undefined) return link(m[4], inline(m[3], names));
  if (m[5] !== undefined) {
    const name = m[6] || names[m[5]] || (m[5] === 'all' ? 'all' : 'user');
    return `<span class="at">@${esc(name)}</span>`;
  }
  if (m[7] !== undefined) return link(m[7], esc(m[7]));
  if (m[8] !== undefined) {
    const tag = m[8] === '~~' ? 'del' : 'strong';
    return `<${tag}>${inline(m[9], names)}</${tag}>`;
  }
  return `<em>${inline(m[11], names)}</em>`;
}

/** Inline markdown of one paragraph; `names` maps open_ids to names. */
export function inline(text, names = {}) {
  const s = String(text ?? '');
  const re = new RegExp(INLINE, 'g');
  let out = '';
  let last = 0;
  let m;
  while ((m = re.exec(s))) {
    const intraword = (m[8] === '__' || m[10] === '_') && /\w/.test(s[m.index - 1] || '');
    if (intraword) {
      // snake_case is not emphasis: keep the underscore and go on after it.
      re.lastIndex = m.index + 1;
      continue;
    }
    out += esc(s.slice(last, m.index)) + token(m, names);
    last = re.lastIndex;
  }
  return out + esc(s.slice(last));
}

/** Plain text: escaped, line breaks kept, URLs linked. */
export function plain(text) {
  const s = String(text ?? '');
  const re = /https?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]}]/g;
  let out = '';
  let last = 0;
  let m;
  while ((m = re.exec(s))) {
    out += esc(s.slice(last, m.index)) + link(m[0], esc(m[0]));
    last = re.lastIndex;
  }
  return (out + esc(s.slice(last))).replace(/\n/g, '<br>');
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const HR = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

const indentOf = (line) => line.length - line.trimStart().length;
const isTable = (lines, i) =>
  lines[i].includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes('-');
const startsBlock = (lines, i) =>
  [FENCE, HEADING, HR, QUOTE, ITEM].some((r) => r.test(lines[i])) || isTable(lines, i);

/** Renders markdown to HTML; `names` maps open_ids to names for `<at>`. */
export function markdown(src, names = {}) {
  return blocks(String(src ?? '').replace(/\r\n?/g, '\n').split('\n'), names);
}

function blocks(lines, names) {
  let html = '';
  let i = 0;
  while (i < lines.length) {
    let part;
    if (!lines[i].trim()) {
      i++;
      continue;
    }
    if (FENCE.test(lines[i])) [part, i] = fence(lines, i);
    else if (HEADING.test(lines[i])) [part, i] = heading(lines, i, names);
    else if (HR.test(lines[i])) [part, i] = ['<hr>', i + 1];
    else if (QUOTE.test(lines[i])) [part, i] = quote(lines, i, names);
    else if (isTable(lines, i)) [part, i] = table(lines, i, names);
    else if (ITEM.test(lines[i])) [part, i] = list(lines, i, names);
    else [part, i] = paragraph(lines, i, names);
    html += part;
  }
  return html;
}

function fence(lines, i) {
  const [, marks, lang] = FENCE.exec(lines[i]);
  const close = new RegExp(`^ {0,3}\\${marks[0]}{${marks.length},}\\s*$`);
  const body = [];
  for (i++; i < lines.length && !close.test(lines[i]); i++) body.push(lines[i]);
  const label = lang ? ` data-lang="${esc(lang)}"` : '';
  return [`<pre${label}><code>${esc(body.join('\n'))}</code></pre>`, i + 1];
}

function heading(lines, i, names) {
  const [, hashes, text] = HEADING.exec(lines[i]);
  const n = hashes.length;
  return [`<h${n}>${inline(text, names)}</h${n}>`, i + 1];
}

function quote(lines, i, names) {
  const body = [];
  let m;
  while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
    body.push(m[1]);
    i++;
  }
  return [`<blockquote>${blocks(body, names)}</blockquote>`, i];
}

function table(lines, i, names) {
  const cells = (line) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  const align = cells(lines[i + 1]).map((c) =>
    c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : '',
  );
  const row = (line, tag) =>
    '<tr>' +
    cells(line)
      .map((c, k) => `<${tag}${align[k] ? ` class="${align[k]}"` : ''}>${inline(c, names)}</${tag}>`)
      .join('') +
    '</tr>';
  let html = `<div class="table"><table><thead>${row(lines[i], 'th')}</thead><tbody>`;
  for (i += 2; i < lines.length && lines[i].includes('|') && lines[i].trim(); i++) html += row(lines[i], 'td');
  return [html + '</tbody></table></div>', i];
}

function list(lines, i, names) {
  const first = ITEM.exec(lines[i]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const items = [];
  let item = null;
  let column = 0;
  while (i < lines.length) {
    const line = lines[i];
    const m = ITEM.exec(line);
    if (m && m[1].length === indent && /\d/.test(m[2]) === ordered) {
      item = [m[3]];
      items.push(item);
      column = indent + m[2].length + 1;
    } else if (!line.trim()) {
      // A blank line stays in the item when the next text is indented under it.
      let j = i + 1;
      while (j < lines.length && !lines[j].trim()) j++;
      if (j >= lines.length || indentOf(lines[j]) <= indent) break;
      item.push('');
    } else if (indentOf(line) > indent) {
      item.push(line.slice(Math.min(indentOf(line), column)));
    } else if (m || startsBlock(lines, i)) {
      break;
    } else {
      item.push(line.trim()); // lazy continuation of the item's paragraph
    }
    i++;
  }
  const tag = ordered ? 'ol' : 'ul';
  const start = ordered && parseInt(first[2], 10) !== 1 ? ` start="${parseInt(first[2], 10)}"` : '';
  const lis = items.map((it) => `<li>${blocks(it, names)}</li>`).join('');
  return [`<${tag}${start}>${lis}</${tag}>`, i];
}

function paragraph(lines, i, names) {
  const body = [lines[i].trim()];
  for (i++; i < lines.length && lines[i].trim() && !startsBlock(lines, i); i++) body.push(lines[i].trim());
  return [`<p>${body.map((l) => inline(l, names)).join('<br>')}</p>`, i];
}
