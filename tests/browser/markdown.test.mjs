// Unit tests of the chat page's markdown renderer and message rendering
// (plain ES modules, no browser needed): `node --test tests/browser/`.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { esc, markdown, plain } from '../../crates/lark-emulator/ui/markdown.js';
import { body, preview, reactions } from '../../crates/lark-emulator/ui/render.js';

// Every tag in the output must be one the renderer writes itself, with no
// event handler and no link other than http(s)/mailto. Escaped text holds
// no '<', so every '<' starts a tag the renderer wrote.
const ALLOWED = new Set(
  'p br strong em del code pre a h1 h2 h3 h4 h5 h6 ul ol li blockquote hr div table thead tbody tr th td span header button details summary i'.split(
    ' ',
  ),
);
function assertSafe(html) {
  for (const [, close, tag, attrs] of html.matchAll(/<(\/?)([a-zA-Z][\w-]*)([^>]*)>/g)) {
    assert.ok(ALLOWED.has(tag.toLowerCase()), `unexpected <${close}${tag}> in ${html}`);
    const names = attrs.replace(/"[^"]*"/g, '""'); // attribute names only
    assert.doesNotMatch(names, /(^|\s)on\w+\s*=/i, `event handler attribute in ${html}`);
    assert.doesNotMatch(names, /'/, `unquoted or single-quoted attribute in ${html}`);
    assert.doesNotMatch(attrs, /href="(?!https?:|mailto:)/i, `unsafe link in ${html}`);
  }
}

const HOSTILE = [
  '<script>alert(1)</script>',
  '<img src=x onerror=alert(1)>',
  '[click](javascript:alert(1))',
  '[x](JaVaScRiPt:alert(1)) and [y](data:text/html,<b>)',
  '**<b>bold</b>** _<i>em</i>_ `<code>` ~~<s>~~',
  '```\n</code></pre><script>alert(1)</script>\n```',
  '> <iframe src=x>\n- <svg onload=alert(1)>\n\n| <a href=x> | b |\n|---|---|\n| " onmouseover="x | \' |',
  '[a"onmouseover="alert(1)](https://e.com/"onmouseover="x)',
  '<at id=ou_1"><img src=x onerror=1></at> <at user_id="x">"><script></at>',
  'https://e.com/<script>alert(1)</script>',
];

test('hostile markdown renders as text, never as markup', () => {
  for (const src of HOSTILE) assertSafe(markdown(src, { ou_1: '<b>x</b>' }));
});

test('hostile plain text and messages render as text', () => {
  for (const src of HOSTILE) {
    assertSafe(plain(src));
    assertSafe(body({ msg_type: 'text', text: src, content: '{}' }, { names: {} }, []));
    const card = { schema: '2.0', header: { title: { content: src } }, body: { elements: [{ tag: 'markdown', content: src }] } };
    assertSafe(body({ msg_type: 'interactive', content: JSON.stringify(card), streaming: false }, { names: {} }, []));
    const post = { title: src, content: [[{ tag: 'text', text: src }, { tag: 'a', text: src, href: 'javascript:x' }], [{ tag: 'md', text: src }]] };
    assertSafe(body({ msg_type: 'post', content: JSON.stringify(post) }, { names: {} }, []));
  }
  assertSafe(reactions([{ emoji_type: '<img src=x onerror=1>', operator: 'bot' }]));
});

test('esc escapes the five HTML characters', () => {
  assert.equal(esc(`<a href="x" title='y'>&</a>`), '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
});

test('inline markdown', () => {
  assert.equal(markdown('**b** *i* _e_ ~~s~~ `c`'), '<p><strong>b</strong> <em>i</em> <em>e</em> <del>s</del> <code>c</code></p>');
  assert.equal(markdown('snake_case_name and 2 * 3 * 4'), '<p>snake_case_name and 2 * 3 * 4</p>');
  assert.equal(
    markdown('[docs](https://example.com/a?b=1&c=2)'),
    '<p><a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">docs</a></p>',
  );
  assert.equal(markdown('see https://example.com.'), '<p>see <a href="https://example.com" target="_blank" rel="noopener noreferrer">https://example.com</a>.</p>');
  assert.equal(markdown('hi <at id=ou_1></at>', { ou_1: 'Alice' }), '<p>hi <span class="at">@Alice</span></p>');
  assert.equal(markdown('line one\nline two'), '<p>line one<br>line two</p>');
});

test('block markdown', () => {
  assert.equal(markdown('# Title\n\ntext'), '<h1>Title</h1><p>text</p>');
  assert.equal(markdown('- a\n- b\n  - c\n'), '<ul><li><p>a</p></li><li><p>b</p><ul><li><p>c</p></li></ul></li></ul>');
  assert.equal(markdown('3. x\n4. y'), '<ol start="3"><li><p>x</p></li><li><p>y</p></li></ol>');
  assert.equal(markdown('> quoted\n> more'), '<blockquote><p>quoted<br>more</p></blockquote>');
  assert.equal(markdown('```rust\nfn main() {}\n```'), '<pre data-lang="rust"><code>fn main() {}</code></pre>');
  assert.equal(markdown('```\nstill streaming'), '<pre><code>still streaming</code></pre>');
  assert.equal(markdown('a\n\n---\n\nb'), '<p>a</p><hr><p>b</p>');
  assert.equal(
    markdown('| a | b |\n|---|--:|\n| 1 | **2** |'),
    '<div class="table"><table><thead><tr><th>a</th><th class="right">b</th></tr></thead>' +
      '<tbody><tr><td>1</td><td class="right"><strong>2</strong></td></tr></tbody></table></div>',
  );
});

test('cards: header, markdown, note, Stop button value, streaming state', () => {
  const value = { larkgate: 'stop', turn: 'p:oc_1' };
  const card = {
    schema: '2.0',
    header: { title: { tag: 'plain_text', content: 'Agent' } },
    body: {
      elements: [
        { tag: 'markdown', element_id: 'reply_md', content: 'partial **text**' },
        { tag: 'button', text: { tag: 'plain_text', content: 'Stop' }, behaviors: [{ type: 'callback', value }] },
        { tag: 'markdown', content: 'echo · 1 s', text_size: 'notation' },
      ],
    },
  };
  const buttons = [];
  const html = body({ msg_type: 'interactive', content: JSON.stringify(card), streaming: true }, { names: {} }, buttons);
  assert.match(html, /class="card streaming"/);
  assert.match(html, /<strong>Agent<\/strong>/);
  assert.match(html, /partial <strong>text<\/strong>/);
  assert.match(html, /<button class="card-btn" data-btn="0">Stop<\/button>/);
  assert.match(html, /class="md note"/);
  assert.match(html, /Generating/);
  assert.deepEqual(buttons, [{ value, name: undefined, tag: 'button' }]);
  const done = body({ msg_type: 'interactive', content: JSON.stringify(card), streaming: false }, { names: {} }, []);
  assert.doesNotMatch(done, /Generating/);
});

test('recalled messages and reactions', () => {
  assert.match(body({ msg_type: 'text', text: 'x', recalled: true }, { names: {} }, []), /recalled/);
  const chips = reactions([
    { emoji_type: 'Typing', operator: 'bot' },
    { emoji_type: 'THUMBSUP', operator: 'ou_1' },
    { emoji_type: 'THUMBSUP', operator: 'ou_2' },
  ]);
  assert.match(chips, /class="reaction typing"/);
  assert.match(chips, /👍 2/);
});

test('previews drop markdown marks', () => {
  const msg = (text) => ({ msg_type: 'interactive', text, streaming: false });
  assert.equal(preview(msg('chunk 2 of 40\n\n— _(stopped)_')), 'chunk 2 of 40 — (stopped)');
  assert.equal(preview(msg('# Title\n**bold** and `code`, snake_case kept\n- item')), 'Title bold and code, snake_case kept item');
  assert.equal(preview({ msg_type: 'interactive', text: 'x', streaming: true }), 'Generating…');
  assert.equal(preview({ msg_type: 'text', text: 'gone', recalled: true }), 'Message recalled');
});
