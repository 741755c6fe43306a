// Attachments in a browser: files chosen in the real forms (the composer
// lists them with their sizes first), shown on the ticket with an image
// preview, and hostile files (HTML with script, SVG with script, a GIF/HTML
// polyglot, HTML claiming to be PNG) opened one by one in Chromium: none runs
// a script or opens a dialog — each is a download, or an image in a sandbox.
// Without JavaScript the reply form still posts its files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, DESKTOP, assertPrg, email, fillRegister, goto, launch, submit, ticketIdOf, watchContext,
} from './lib.mjs';

const T = { timeout: 120000 };
const customer = { first: 'Tess', last: 'Attacher', email: email('tess.attach'), password: 'paper-lantern-42' };
let browser;
const sessions = [];

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489'
  + '0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');
// each hostile file tries to run a script that leaves a mark: a dialog,
// a changed title, a fetch to /pwned (which the server log would show)
const SCRIPT = "alert('x');document.title='pwned';fetch('/pwned')";
const HOSTILE = [
  { name: 'page.html', mimeType: 'text/html',
    buffer: Buffer.from(`<!DOCTYPE html><html><body onload="${SCRIPT}"><script>${SCRIPT}</script></body></html>`) },
  { name: 'vector.svg', mimeType: 'image/svg+xml',
    buffer: Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" onload="${SCRIPT}"><script>${SCRIPT}</script></svg>`) },
  { name: 'polyglot.gif', mimeType: 'image/gif',
    buffer: Buffer.from(`GIF89a/*\x01\x00\x01\x00\x00\x00\x00*/=1;${SCRIPT};<html><body onload="${SCRIPT}"><script>${SCRIPT}</script>`, 'latin1') },
  { name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from(`<html><script>${SCRIPT}</script></html>`) },
];

async function session(options = {}) {
  const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, acceptDownloads: true, ...options });
  const watch = watchContext(context);
  const page = await context.newPage();
  sessions.push({ context, watch });
  return { context, page, watch };
}

before(async () => { browser = await launch(); });
after(async () => {
  for (const s of sessions) await s.context.close().catch(() => {});
  if (browser) await browser.close();
});

let ticketUrl = '';
let cookies = [];

test('files chosen in the new-ticket form are listed, sent and shown with a preview', T, async () => {
  const { context, page, watch } = await session();
  await goto(page, '/register');
  await fillRegister(page, customer);
  assertPrg(await submit(page, () => page.locator('form[action="/register"] button[type=submit]').click()),
    '/tickets', 'register');
  await goto(page, '/tickets/new');
  const form = page.locator('form[action="/tickets"]');
  assert.equal(await form.getAttribute('enctype'), 'multipart/form-data');
  const input = form.locator('input[type=file][name=attachment]');
  assert.equal(await input.getAttribute('multiple'), '', 'the file input takes several files');
  assert.match(await form.locator('#attachment-hint').innerText(), /Up to 5 files, each at most 10 MiB/);
  await form.getByLabel('Subject').fill('Screen flickers');
  await form.getByLabel('Description').fill('Photo and log attached.');
  await input.setInputFiles([
    { name: 'screen.png', mimeType: 'image/png', buffer: PNG },
    { name: 'dmesg.txt', mimeType: 'text/plain', buffer: Buffer.from('x'.repeat(3000)) },
  ]);
  // the composer lists the chosen files with their sizes before sending
  const listed = await form.locator('.file-list li').allInnerTexts();
  assert.deepEqual(listed, ['screen.png \u2014 66 bytes', 'dmesg.txt \u2014 2.9 KiB']);
  assertPrg(await submit(page, () => form.getByRole('button', { name: 'Create ticket' }).click()),
    /^\/tickets\/\d+$/, 'create ticket with files');
  ticketUrl = new URL(page.url()).pathname;
  const desc = page.locator('section[aria-labelledby="desc-h"]');
  assert.deepEqual(await desc.locator('.attachment-name').allInnerTexts(), ['screen.png', 'dmesg.txt']);
  const img = desc.locator('.attachment-preview img');
  await img.scrollIntoViewIfNeeded();
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
  assert.equal(await img.getAttribute('loading'), 'lazy');
  cookies = await context.cookies();
  watch.check('new ticket with files');
  assert.ok(ticketIdOf(page) > 0);
});

test('hostile files sent through the reply form never run a script or open a dialog', T, async () => {
  const { page, watch } = await session();
  await page.context().addCookies(cookies);
  await goto(page, ticketUrl);
  const form = page.locator('form.reply-form');
  assert.equal(await form.getAttribute('enctype'), 'multipart/form-data');
  await form.getByLabel('Your reply').fill('Here are the odd files.');
  await form.locator('input[type=file]').setInputFiles(HOSTILE);
  assert.equal(await form.locator('.file-list li').count(), HOSTILE.length);
  assertPrg(await submit(page, () => form.getByRole('button', { name: 'Send reply' }).click()),
    /^\/tickets\/\d+$/, 'reply with hostile files');
  const last = page.locator('#thread .msg').last();
  const links = await last.locator('a.attachment-name').evaluateAll((as) => as.map((a) => [a.textContent, a.getAttribute('href')]));
  assert.deepEqual(links.map((l) => l[0]), HOSTILE.map((f) => f.name));
  watch.check('reply');

  const dialogs = [];
  const pwned = [];
  const ctx = page.context();
  ctx.on('request', (r) => { if (r.url().includes('/pwned')) pwned.push(r.url()); });
  for (const [name, href] of links) {
    const p = await ctx.newPage();
    p.on('dialog', (d) => { dialogs.push(`${name}: ${d.message()}`); d.dismiss().catch(() => {}); });
    const download = p.waitForEvent('download', { timeout: 5000 }).catch(() => null);
    let resp = null;
    try {
      resp = await p.goto(BASE + href, { waitUntil: 'load' });
    } catch (e) {
      assert.match(String(e), /Download is starting|ERR_ABORTED/, `${name}: ${e}`);
    }
    if (name === 'polyglot.gif') {
      // an image, shown inline in a sandboxed document: a picture, not a page
      assert.ok(resp && resp.status() === 200, `${name} served`);
      assert.equal(resp.headers()['content-type'], 'image/gif');
      assert.equal(resp.headers()['content-security-policy'], "default-src 'none'; sandbox");
      assert.equal(await p.evaluate(() => document.contentType), 'image/gif');
    } else {
      const d = await download;
      assert.ok(d, `${name} is a download, not a page`);
      assert.equal(d.suggestedFilename(), name);
    }
    await p.waitForTimeout(300);
    assert.notEqual(await p.title().catch(() => ''), 'pwned', `${name}: no script ran`);
    await p.close();
  }
  assert.deepEqual(dialogs, [], 'no dialog opened');
  assert.deepEqual(pwned, [], 'no script reached the network');
});

test('without JavaScript the reply form still posts its file', T, async () => {
  const { page } = await session({ javaScriptEnabled: false });
  await page.context().addCookies(cookies);
  await goto(page, ticketUrl);
  const form = page.locator('form.reply-form');
  await form.locator('input[type=file]').setInputFiles([{ name: 'nojs.txt', mimeType: 'text/plain', buffer: Buffer.from('plain form') }]);
  assert.ok(await form.locator('.file-list').isHidden(), 'no list without JavaScript');
  assertPrg(await submit(page, () => form.getByRole('button', { name: 'Send reply' }).click()),
    /^\/tickets\/\d+$/, 'reply without JavaScript');
  const href = await page.locator('#thread .msg').last().locator('a.attachment-name').getAttribute('href');
  const r = await page.request.get(BASE + href);
  assert.equal(await r.text(), 'plain form');
});
