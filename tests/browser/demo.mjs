#!/usr/bin/env node
// Drives the chat page of `larkgate demo` (served by lark-emulator) in
// headless Chromium, as a person would:
//   1. DM: send a message, see the bot's reply stream into a card and complete;
//   2. group: a message without @bot gets no answer, one with @bot does;
//   3. stop: `echo-slow 40`, press Stop on the streaming card, see it end as
//      interrupted and stop growing;
//   4. pairing (when a gateway admin URL is configured): Bob is unknown, gets a
//      code, the Operator panel approves it, Bob's next message is answered;
//   5. narrow window: the chat list becomes a drawer;
//   6. a screenshot of the DM at desktop size.
//
// usage: node tests/browser/demo.mjs <base_url> <screenshot.png>
//   base_url: the emulator's URL (the page is at base_url + "/")
// Needs /usr/bin/chromium (Debian package) and `npm ci` in tests/browser
// (tools/browser-deps.sh installs both). The agent must be larkgate's echo
// agent (the checks look for echoed text and use `echo-slow`).
// Exits 0 when every check passes; otherwise prints what failed, saves a
// screenshot next to the requested one (*-failure.png) and exits 1.
// Timeouts are hang guards only; timings are printed, never asserted.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const HANG = 60_000; // longest wait for any one thing
const WATCHDOG = 8 * 60_000; // the whole run
const QUIET = 3_000; // how long a chat must stay without a bot answer
const DESKTOP = { width: 1280, height: 820 };

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error('usage: node tests/browser/demo.mjs <base_url> <screenshot.png>');
  process.exit(2);
}
const url = base.replace(/\/+$/, '') + '/';

const started = performance.now();
const seconds = (t) => ((performance.now() - t) / 1000).toFixed(2);
let current = 'start';

class Failure extends Error {}
const fail = (msg) => {
  throw new Failure(msg);
};

async function step(name, fn) {
  current = name;
  const t = performance.now();
  await fn();
  console.log(`ok   ${name} (${seconds(t)} s)`);
}

// ---- page helpers ----------------------------------------------------------

/** Opens a chat from the sidebar and waits for its first render. */
async function openChat(page, key) {
  const narrow = await page.locator('#menu').isVisible();
  if (narrow) await page.click('#menu');
  await page.click(`#chat-list [data-chat="${key}"]`);
  await page.waitForFunction(() => document.querySelector('#messages').dataset.version !== undefined, null, {
    timeout: HANG,
  });
}

/** Sends `text` as the played user; returns the new message's id. */
async function send(page, text, { mention = false } = {}) {
  const before = await page.locator('.msg.mine').count();
  await page.fill('#input', text);
  if (mention) {
    await page.click('#mention');
    if ((await page.getAttribute('#mention', 'aria-pressed')) !== 'true') fail('the @bot toggle did not turn on');
  }
  await page.press('#input', 'Enter');
  const mine = page.locator('.msg.mine');
  await page.waitForFunction((n) => document.querySelectorAll('.msg.mine').length > n, before, { timeout: HANG });
  const last = mine.last();
  const shown = await last.innerText();
  if (!shown.includes(text.split('\n')[0])) fail(`sent "${text}" but the page shows "${shown}"`);
  return last.getAttribute('data-message-id');
}

/** The bot messages shown after message `id`, in order: {id, text, streaming, stop}. */
function botAfter(page, id) {
  return page.evaluate((id) => {
    const all = [...document.querySelectorAll('.msg')];
    const at = all.findIndex((m) => m.dataset.messageId === id);
    if (at < 0) return null;
    return all
      .slice(at + 1)
      .filter((m) => m.dataset.sender === 'bot')
      .map((m) => ({
        id: m.dataset.messageId,
        type: m.dataset.msgType,
        text: m.querySelector('.bubble, .card')?.innerText ?? '',
        streaming: m.dataset.streaming === 'true',
        stop: [...m.querySelectorAll('button.card-btn')].some((b) => /stop/i.test(b.innerText)),
      }));
  }, id);
}

/** Waits until `check(botMessagesAfterId)` returns a value; returns it. */
async function waitBot(page, id, what, check) {
  const deadline = Date.now() + HANG;
  let last = [];
  for (;;) {
    last = (await botAfter(page, id)) ?? fail(`message ${id} disappeared from the page`);
    const found = check(last);
    if (found) return found;
    if (Date.now() > deadline) fail(`no ${what} within ${HANG / 1000} s; bot messages after ${id}: ${JSON.stringify(last)}`);
    await page.waitForTimeout(100);
  }
}

/** The first bot reply after `id` once it is complete (not streaming, no Stop button) and holds `expect`. */
async function completeReply(page, id, expect) {
  let sawStreaming = false;
  let sawTyping = false;
  page
    .waitForSelector(`.msg[data-message-id="${id}"] .reaction[data-emoji="Typing"]`, { timeout: HANG })
    .then(() => (sawTyping = true))
    .catch(() => {});
  const reply = await waitBot(page, id, `complete reply holding ${JSON.stringify(expect)}`, (bots) => {
    const r = bots[0];
    if (r && r.streaming) sawStreaming = true;
    return r && !r.streaming && !r.stop && r.text.includes(expect) ? r : null;
  });
  const seen = [sawStreaming && 'seen streaming', sawTyping && 'seen Typing reaction'].filter(Boolean);
  console.log(`     reply ${reply.id} (${[reply.type, ...seen].join(', ')}): ${JSON.stringify(reply.text.slice(0, 80))}`);
  return reply;
}

// ---- the checks ------------------------------------------------------------

async function dm(page) {
  await openChat(page, 'dm');
  const text =
    'hello larkgate! This message is long enough for the reply to stream in several parts. ' +
    'The echo comes back as a card with **markdown**:\n- it streams word by word\n- and ends with `inline code`';
  const id = await send(page, text);
  const reply = await completeReply(page, id, 'it streams word by word');
  const card = page.locator(`.msg[data-message-id="${reply.id}"]`);
  for (const [what, selector] of [
    ['bold', 'strong'],
    ['a list', 'li'],
    ['inline code', 'code'],
  ]) {
    if (!(await card.locator(selector).count())) fail(`the reply card does not render ${what} (${selector})`);
  }
}

async function group(page) {
  await openChat(page, 'team');
  const quiet = await send(page, 'good morning, team (no mention, the bot stays quiet)');
  await page.waitForTimeout(QUIET);
  const early = await botAfter(page, quiet);
  if (early.length) fail(`the bot answered a message without @mention: ${JSON.stringify(early)}`);
  const asked = await send(page, 'hello from the group', { mention: true });
  await completeReply(page, asked, 'hello from the group');
  const between = await botAfter(page, quiet);
  if (between.length !== 1) fail(`expected exactly one bot message in the group, got ${JSON.stringify(between)}`);
}

async function stop(page) {
  await openChat(page, 'dm');
  const id = await send(page, 'echo-slow 40');
  const streaming = await waitBot(page, id, 'streaming card with text and a Stop button', (bots) => {
    const r = bots[0];
    return r && r.streaming && r.stop && /chunk 2 of 40/.test(r.text) ? r : null;
  });
  await page.locator(`.msg[data-message-id="${streaming.id}"] button.card-btn`, { hasText: /stop/i }).click();
  // Finished: streaming off and the Stop button gone.
  const ended = await waitBot(page, id, 'finished card (streaming off, no Stop button) after Stop', (bots) =>
    bots[0] && !bots[0].streaming && !bots[0].stop ? bots[0] : null,
  );
  if (/chunk 40 of 40/.test(ended.text)) fail('the card streamed to the end despite Stop');
  if (!/interrupt|stopped/i.test(ended.text)) fail(`the stopped card does not say it was interrupted: ${JSON.stringify(ended.text)}`);
  await page.waitForTimeout(QUIET); // longer than echo-slow's one second between chunks
  const later = (await botAfter(page, id))[0];
  if (later.text !== ended.text) fail(`the stopped card kept growing: ${JSON.stringify(later.text)}`);
  console.log(`     stopped at: ${JSON.stringify(ended.text.split('\n').filter(Boolean).slice(-2).join(' | '))}`);
}

async function pairing(page, cfg) {
  const bob = cfg.users.find((u) => u.name === 'Bob');
  await page.selectOption('#user-select', bob.open_id);
  await openChat(page, 'dm');
  const id = await send(page, "hi, I'm Bob");
  const first = await waitBot(page, id, 'answer to Bob', (bots) => (bots[0] && !bots[0].streaming ? bots[0] : null));
  const code = /\b([A-HJ-NP-Z2-9]{8})\b/.exec(first.text)?.[1];
  if (!code && first.text.includes("hi, I'm Bob")) {
    fail('Bob is already allowed to talk to the bot: run this test against a fresh `larkgate demo`');
  }
  if (!code) fail(`Bob (not approved) got no pairing code: ${JSON.stringify(first.text)}`);
  const item = page.locator(`#pairing-list li[data-code="${code}"]`);
  await item.waitFor({ timeout: HANG });
  await item.locator('button[data-approve]').click();
  await item.waitFor({ state: 'detached', timeout: HANG });
  const again = await send(page, 'hello again, now approved');
  await completeReply(page, again, 'hello again, now approved');
  await page.selectOption('#user-select', cfg.users[0].open_id);
}

async function narrow(page) {
  await page.setViewportSize({ width: 390, height: 760 });
  await page.locator('#menu').waitFor({ state: 'visible', timeout: HANG });
  const closed = () => {
    const r = document.querySelector('#sidebar').getBoundingClientRect();
    return r.x + r.width <= 1;
  };
  await page.waitForFunction(closed, null, { timeout: HANG }).catch(() => fail('on a narrow window the chat list should be a closed drawer'));
  await page.click('#menu');
  await page.waitForFunction(() => document.querySelector('#sidebar').getBoundingClientRect().x >= 0, null, { timeout: HANG });
  await page.click('#chat-list [data-chat="dm"]');
  if (!(await page.locator('#input').isVisible())) fail('the composer is not visible on a narrow window');
  await page.setViewportSize(DESKTOP);
}

async function shoot(page) {
  await openChat(page, 'dm');
  await page.locator('#toast').waitFor({ state: 'hidden', timeout: HANG });
  await page.evaluate(() => {
    const box = document.querySelector('#messages');
    box.scrollTop = box.scrollHeight;
  });
  await page.screenshot({ path: screenshot });
  console.log(`     screenshot: ${screenshot}`);
}

// ---- main ------------------------------------------------------------------

async function main() {
  const profile = mkdtempSync(join(tmpdir(), 'larkgate-browser-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: DESKTOP,
  });
  const errors = [];
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  page.setDefaultTimeout(HANG);
  try {
    let cfg;
    await step('open the page', async () => {
      await page.goto(url);
      await page.waitForSelector('body[data-ready="true"]', { timeout: HANG });
      cfg = await page.evaluate(() => fetch('/_emulator/ui/config').then((r) => r.json()));
      console.log(`     bot ${cfg.bot_name}, gateway admin ${cfg.gateway_admin_url ?? '(none)'}`);
    });
    await step('DM: the reply streams into a card and completes', () => dm(page));
    await step('group: no answer without @mention, an answer with it', () => group(page));
    await step('Stop interrupts a streaming reply', () => stop(page));
    if (cfg.gateway_admin_url) {
      await step('pairing: Bob gets a code, the Operator approves it', () => pairing(page, cfg));
    } else {
      console.log('skip pairing: no gateway admin URL configured');
    }
    await step('narrow window: the chat list is a drawer', () => narrow(page));
    await step('screenshot of the DM', () => shoot(page));
    current = 'page errors';
    if (errors.length) fail(errors.join('\n'));
  } catch (e) {
    const failure = screenshot.replace(/(\.png)?$/i, '-failure.png');
    await page.screenshot({ path: failure }).catch(() => {});
    console.error(`FAIL ${current}: ${e instanceof Failure ? e.message : e.stack || e}`);
    if (errors.length) console.error(errors.join('\n'));
    console.error(`     page screenshot: ${failure}`);
    process.exitCode = 1;
  } finally {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  console.log(`${process.exitCode ? 'FAILED' : 'passed'} in ${seconds(started)} s`);
}

setTimeout(() => {
  console.error(`FAIL ${current}: the whole run took longer than ${WATCHDOG / 1000} s`);
  process.exit(1);
}, WATCHDOG).unref();

await main();
