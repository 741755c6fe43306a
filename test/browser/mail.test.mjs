// The email channel in a browser: a reply by mail appears live on the
// customer's open ticket page, without the quote; the admin finds a rejected
// mail under "Rejected mail", downloads it as it arrived and deletes it.
// Mail enters as an MTA's pipe runs it: build/ccr-admin mail-in on stdin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BASE, DESKTOP, REPO, VAR, assertPrg, createAdmin, email, fillRegister, goto, launch, login,
  submit, ticketIdOf, waitForMail, watchContext,
} from './lib.mjs';

const T = { timeout: 90000 };
const customer = { first: 'Iris', last: 'Mailer', email: email('iris.mailer'), password: 'copper-kettle-58' };
const admin = { first: 'Oskar', last: 'Postmaster', email: email('oskar.post'), password: 'amber-signal-31' };
let browser;
const sessions = [];

async function session() {
  const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
  const watch = watchContext(context);
  const page = await context.newPage();
  sessions.push({ context, watch });
  return page;
}

/** One raw mail through `ccr-admin mail-in`; asserts exit 0. */
function mailIn(raw) {
  execFileSync(join(REPO, 'build', 'ccr-admin'), ['-c', join(VAR, 'ccr.conf'), 'mail-in'],
    { input: raw, timeout: 30000 });
}

function compose({ from, to, subject, body, headers = [] }) {
  const id = `<${Date.now().toString(36)}.${Math.random().toString(36).slice(2)}@client.example.net>`;
  return [`From: ${from}`, `To: ${to}`, `Subject: ${subject}`, `Date: ${new Date().toUTCString()}`,
    `Message-ID: ${id}`, ...headers, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=UTF-8',
    'Content-Transfer-Encoding: 8bit', '', body, ''].join('\r\n');
}

before(async () => { browser = await launch(); });
after(async () => {
  for (const s of sessions) await s.context.close().catch(() => {});
  if (browser) await browser.close();
});

test('a reply by mail appears live on the open ticket page, without the quote', T, async () => {
  const page = await session();
  await goto(page, '/register');
  await fillRegister(page, customer);
  assertPrg(await submit(page, () => page.locator('form[action="/register"] button[type=submit]').click()),
    '/tickets', 'register');
  const seen = [];
  await goto(page, '/tickets/new');
  const form = page.locator('form[action="/tickets"]');
  await form.getByLabel('Subject').fill('Scanner will not pair');
  await form.getByLabel('Description').fill('Bluetooth pairing fails.');
  assertPrg(await submit(page, () => form.getByRole('button', { name: 'Create ticket' }).click()),
    /^\/tickets\/\d+$/, 'create ticket');
  const id = ticketIdOf(page);
  const note = await waitForMail(customer.email, { seen, subject: new RegExp(`\\[#${id}\\]`) });
  const replyTo = (note.headers['reply-to'] || '').replace(/[<>\s]/g, '');
  assert.match(replyTo, /^support\+[a-z0-9]{24}@example\.com$/, 'the notification has a reply address');
  const quoted = note.body.split('\n').map((l) => `> ${l}`).join('\r\n');
  mailIn(compose({
    from: customer.email, to: replyTo, subject: `Re: ${note.headers.subject}`,
    headers: [`In-Reply-To: ${note.headers['message-id']}`],
    body: `It pairs after a firmware update.\r\n\r\nOn Thu, 3 Dec 2026, Support wrote:\r\n${quoted}`,
  }));
  // the page polls: the message arrives without a reload
  await page.locator('.msg', { hasText: 'It pairs after a firmware update.' }).waitFor({ timeout: 15000 });
  const thread = await page.locator('#thread').innerText();
  assert.ok(!thread.includes('Reply above this line'), 'the quoted notification is not shown');
  for (const s of sessions) s.watch.check('reply by mail');
});

test('the admin lists, downloads and deletes a rejected mail', T, async () => {
  const stranger = email('stranger');
  const raw = compose({ from: stranger, to: 'support@example.com', subject: 'Who reads this?', body: 'Hello.' });
  mailIn(raw);
  createAdmin(admin);
  const page = await session();
  assertPrg(await login(page, admin.email, admin.password), '/tickets', 'admin login');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rejected mail' }).click();
  await page.waitForURL(`${BASE}/admin/mail`);
  const row = page.locator('tbody tr', { has: page.locator('td', { hasText: stranger }) });
  assert.equal(await row.count(), 1, 'the rejected mail is listed');
  assert.match(await row.innerText(), /Who reads this\?/, 'with its subject');
  assert.match(await row.innerText(), /Sender has no customer account/, 'and the reason');
  const [download] = await Promise.all([page.waitForEvent('download'),
    row.getByRole('link', { name: /^Download/ }).click()]);
  const saved = readFileSync(await download.path(), 'utf8');
  assert.equal(saved, raw, 'the download is the mail as it arrived');
  page.once('dialog', (d) => d.accept());
  assertPrg(await submit(page, () => row.getByRole('button', { name: /^Delete/ }).click()),
    '/admin/mail', 'delete');
  assert.equal(await page.locator('td', { hasText: stranger }).count(), 0, 'gone from the list');
  for (const s of sessions) s.watch.check('rejected mail');
});
