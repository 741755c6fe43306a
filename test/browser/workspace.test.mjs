// The agent's workspace in headless chromium: a saved reply inserted with the
// keyboard, an internal note, and the customer's page — open at the same time
// and polling — that never receives the note; a note with files (listed by
// the composer, downloadable by staff, 404 to the customer); then axe-core
// (WCAG 2.2 AA) over every page of every role.
//
// axe is injected as a script, which the site's CSP forbids on purpose: the
// audit runs in a separate context with bypassCSP (sharing the role's
// session), never in the contexts the stories use.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  BASE, DESKTOP, launch, email, createAdmin, watchContext, submit, assertPrg, goto, flash,
  fillRegister, login, ticketIdOf,
  assertVisibleFocus, tabTo,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const T = { timeout: 120000 };

const customer = { first: 'Ines', last: 'Okafor', email: email('ines.okafor'), password: 'copper-kettle-58' };
const agent = { first: 'Theo', last: 'Brandt', email: email('theo.brandt'), password: 'silver-orchard-21' };
const admin = { first: 'Rosa', last: 'Lind', email: email('rosa.lind'), password: 'amber-valley-64' };
const NOTE = `Internal: refund approved by finance ${Date.now().toString(36)}`;
const NOTE_PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489'
  + '0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');

let browser;
const ctx = {};      // role -> { context, page, watch }
const state = {};

async function newSession(role) {
  const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
  const watch = watchContext(context);
  const page = await context.newPage();
  ctx[role] = { context, page, watch };
  return ctx[role];
}

before(async () => { browser = await launch(); });
after(async () => {
  for (const c of Object.values(ctx)) await c.context.close().catch(() => {});
  if (browser) await browser.close();
});

test('workspace: people and a ticket', T, async () => {
  const c = await newSession('customer');
  await goto(c.page, '/register');
  await fillRegister(c.page, customer);
  let nav = await submit(c.page, () => c.page.locator('form[action="/register"] button[type=submit]').click());
  assertPrg(nav, '/tickets', 'customer registers');
  await goto(c.page, '/tickets/new');
  const form = c.page.locator('form[action="/tickets"]');
  await form.getByLabel('Subject').fill('Refund for a double charge');
  await form.getByLabel('Description').fill('I was charged twice in March.');
  nav = await submit(c.page, () => form.getByRole('button', { name: 'Create ticket' }).click());
  assertPrg(nav, /^\/tickets\/\d+$/, 'POST /tickets');
  state.ticket = ticketIdOf(c.page);

  const g = await newSession('agent');
  await goto(g.page, '/register');
  await fillRegister(g.page, { ...agent, role: 'agent' });
  await submit(g.page, () => g.page.locator('form[action="/register"] button[type=submit]').click());

  createAdmin(admin);
  const a = await newSession('admin');
  nav = await login(a.page, admin.email, admin.password);
  assertPrg(nav, '/tickets', 'admin login');
  await goto(a.page, '/admin/agents');
  const row = a.page.locator('section[aria-labelledby="pending-h"] tr', { has: a.page.locator('td', { hasText: agent.email }) });
  const action = await row.locator('form[action$="/approve"]').getAttribute('action');
  state.agentId = Number((/^\/admin\/agents\/(\d+)\/approve$/.exec(action) || [])[1]);
  await submit(a.page, () => row.getByRole('button', { name: /^Approve/ }).click());
  await goto(a.page, `/tickets/${state.ticket}`);
  const af = a.page.locator('form[action$="/assign"]');
  await af.getByLabel('Assign to').selectOption(String(state.agentId));
  a.page.once('dialog', (d) => d.accept());
  nav = await submit(a.page, () => af.getByRole('button', { name: 'Assign' }).click());
  assertPrg(nav, `/tickets/${state.ticket}`, 'assign');
  state.customerId = Number(/customer=(\d+)/.exec(await a.page.locator('a[href^="/tickets?customer="]').first().getAttribute('href'))[1]);

  nav = await login(g.page, agent.email, agent.password);
  assertPrg(nav, '/tickets', 'agent login');
  for (const r of Object.values(ctx)) r.watch.check('setup');
});

test('workspace: keyboard only — save a reply, insert it, add a note, reply; the customer never polls the note', T, async () => {
  assert.ok(state.ticket, 'the setup made a ticket');
  const g = ctx.agent.page;
  // save a reply on /replies with the keyboard
  await goto(g, '/replies');
  await tabTo(g, '#reply-title');
  await assertVisibleFocus(g, 'title field');
  await g.keyboard.type('Refund greeting');
  await g.keyboard.press('Tab');
  await g.keyboard.type('Hello {customer_first_name}, {agent_first_name} here: ticket #{ticket_number} is being refunded.');
  await tabTo(g, 'form[action="/replies"] button[type=submit]');
  await assertVisibleFocus(g, 'Save reply button');
  let nav = await submit(g, () => g.keyboard.press('Enter'));
  assertPrg(nav, '/replies', 'POST /replies');
  assert.equal(await flash(g), 'Reply saved');

  // the customer's page is open now and polls
  const c = ctx.customer.page;
  const polled = [];
  c.on('response', async (r) => {
    if (/\/tickets\/\d+\/messages\?after=/.test(r.url())) polled.push(await r.text().catch(() => ''));
  });
  await goto(c, `/tickets/${state.ticket}`);

  // insert it into the reply box: select, Tab to the button, Enter (JavaScript, no reload)
  await goto(g, `/tickets/${state.ticket}`);
  await tabTo(g, '#saved-reply');
  await assertVisibleFocus(g, 'saved-reply select');
  const value = await g.locator('#saved-reply option', { hasText: 'Refund greeting' }).getAttribute('value');
  await g.locator('#saved-reply').selectOption(value);   // what ArrowDown does on a focused select
  await tabTo(g, 'form[data-insert-into] button[type=submit]');
  const url = g.url();
  await g.keyboard.press('Enter');
  const box = g.locator('#reply-body');
  await assert.doesNotReject(async () => {
    for (let i = 0; i < 50 && !(await box.inputValue()).includes('Hello'); i++) await g.waitForTimeout(100);
  });
  assert.equal(g.url(), url, 'inserted without a reload');
  assert.equal((await box.inputValue()).trim(),
    `Hello ${customer.first}, ${agent.first} here: ticket #${state.ticket} is being refunded.`);
  assert.equal(await g.evaluate(() => document.activeElement.id), 'reply-body', 'focus moves to the reply box');
  await assertVisibleFocus(g, 'reply box');

  // an internal note, by keyboard
  await tabTo(g, '#note-body');
  await assertVisibleFocus(g, 'note box');
  await g.keyboard.type(NOTE);
  await tabTo(g, 'form.note-form button[type=submit]');
  await assertVisibleFocus(g, 'Add note button');
  nav = await submit(g, () => g.keyboard.press('Enter'));
  assertPrg(nav, `/tickets/${state.ticket}`, 'POST /tickets/{id}/notes');
  assert.equal(await flash(g), 'Note added');
  assert.match(new URL(g.url()).hash, /^#n\d+$/);
  const note = g.locator('#thread .tl-note', { hasText: NOTE });
  assert.equal(await note.count(), 1, 'the note is in the agent\'s timeline');
  assert.match(await note.innerText(), /Internal note/i, 'labelled as an internal note');

  // the reply draft survived the note's reload (drafts); send it by keyboard
  const box2 = g.locator('#reply-body');
  if (!(await box2.inputValue()).includes('Hello')) await box2.fill(`Hello ${customer.first}, refunded.`);
  await box2.focus();
  await tabTo(g, 'form.reply-form button[type=submit]');
  await assertVisibleFocus(g, 'Send reply button');
  nav = await submit(g, () => g.keyboard.press('Enter'));
  assertPrg(nav, `/tickets/${state.ticket}`, 'POST /tickets/{id}/messages');

  // the customer's open page gets the reply by polling, never the note
  const msg = c.locator('#thread .msg', { hasText: 'refunded' });
  await assert.doesNotReject(msg.waitFor({ timeout: 15000 }), 'the reply arrives by polling');
  await c.waitForTimeout(6000);   // one more poll after the reply
  assert.ok(polled.length >= 2, `the customer's page polled (${polled.length})`);
  for (const body of polled) {
    assert.ok(!body.includes(NOTE) && !body.includes('tl-note') && !body.includes('Internal note'),
      'a poll answer to the customer carries a note');
  }
  assert.equal(await c.locator('.tl-note').count(), 0, 'no note on the customer\'s page');
  assert.ok(!(await c.content()).includes(NOTE), 'the note text is nowhere on the customer\'s page');
  assert.equal(await c.locator('#thread .tl-event', { hasText: 'An agent is now handling this ticket' }).count(), 1);
  for (const r of Object.values(ctx)) r.watch.check('workspace story');
});

test('workspace: a note with files — the composer lists them; staff see and download them, the customer never', T, async () => {
  assert.ok(state.ticket, 'the setup made a ticket');
  const g = ctx.agent.page;
  await goto(g, `/tickets/${state.ticket}`);
  const form = g.locator('form.note-form');
  const word = `ledger ${Date.now().toString(36)}`;
  await form.getByLabel('Internal note').fill(`Finance ${word}, see the statement`);
  await form.getByLabel('Attach files to the note').setInputFiles([
    { name: 'statement.png', mimeType: 'image/png', buffer: NOTE_PNG },
    { name: 'ledger.txt', mimeType: 'text/plain', buffer: Buffer.from(`ledger ${word}\n`.repeat(200)) },
  ]);
  // the composer lists the chosen files with their sizes, as on the reply form
  const listed = await form.locator('.file-list li').allInnerTexts();
  assert.equal(listed.length, 2, `the composer lists the note's files: ${listed}`);
  assert.match(listed[0], /^statement\.png \u2014 \d+ bytes$/);
  assert.match(listed[1], /^ledger\.txt \u2014 [\d.]+ KiB$/);
  const nav = await submit(g, () => form.getByRole('button', { name: 'Add note' }).click());
  assertPrg(nav, `/tickets/${state.ticket}`, 'POST /tickets/{id}/notes with files');
  assert.equal(await flash(g), 'Note added');
  const note = g.locator('#thread .tl-note', { hasText: word });
  assert.equal(await note.count(), 1, 'the note is in the timeline');
  const links = note.locator('a.attachment-name');
  assert.deepEqual(await links.allInnerTexts(), ['statement.png', 'ledger.txt']);
  assert.equal(await note.locator('img').count(), 1, 'the image has its preview');
  const hrefs = await links.evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  const r = await g.request.get(BASE + hrefs[1]);
  assert.equal(r.status(), 200, 'the agent downloads the note\'s file');
  assert.ok((await r.text()).includes(word));
  // the admin too; the customer gets a 404 and never a link
  const ra = await ctx.admin.page.request.get(BASE + hrefs[1]);
  assert.equal(ra.status(), 200, 'an admin downloads the note\'s file');
  const c = ctx.customer.page;
  for (const h of hrefs) {
    const rc = await c.request.get(BASE + h);
    assert.equal(rc.status(), 404, `the customer GET ${h}`);
    assert.ok(!(await rc.text()).includes(word));
  }
  await goto(c, `/tickets/${state.ticket}`);
  const html = await c.content();
  assert.ok(!html.includes('statement.png') && !html.includes('ledger.txt') && !html.includes(word),
    'the customer\'s page names no file of a note');
  for (const x of Object.values(ctx)) x.watch.check('note with files');
});

// ---------------------------------------------------------------------------
// axe-core over every page of every role

const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];

async function audit(role, paths) {
  const storageState = role === 'anonymous' ? undefined : await ctx[role].context.storageState();
  const context = await browser.newContext({ viewport: DESKTOP, bypassCSP: true, storageState });
  const page = await context.newPage();
  const found = [];
  try {
    for (const [path, status] of paths) {
      const resp = await page.goto(BASE + path, { waitUntil: 'load' });
      assert.equal(resp.status(), status, `${role} GET ${path}`);
      await page.addScriptTag({ path: AXE });
      const res = await page.evaluate((tags) => window.axe.run(document, {
        runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'],
      }), AXE_TAGS);
      assert.equal(res.testEngine.name, 'axe-core', 'axe ran');
      assert.ok(res.passes.length > 10, `${role} ${path}: axe checked the page (${res.passes.length} rules passed)`);
      for (const v of res.violations) {
        found.push(`${role} ${path}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
      }
    }
  } finally {
    await context.close();
  }
  return found;
}

test('axe-core: every page of every role has no WCAG 2.2 AA violation', T, async () => {
  assert.ok(state.ticket, 'the stories above ran');
  const t = state.ticket;
  const pages = {
    anonymous: [['/login', 200], ['/register', 200], ['/password/forgot', 200], ['/password/reset', 200],
      ['/no-such-page', 404]],
    customer: [['/tickets', 200], ['/tickets/new', 200], [`/tickets/${t}`, 200], ['/account', 200],
      ['/password/change', 200], ['/account/2fa', 200], ['/account/sessions', 200], ['/account/tokens', 200], ['/tickets/999999999', 404]],
    agent: [['/tickets', 200], ['/tickets?status=overdue', 200], [`/tickets/${t}`, 200], ['/replies', 200], [`/tickets?customer=${state.customerId}`, 200],
      ['/account', 200], ['/password/change', 200], ['/account/2fa', 200], ['/account/sessions', 200], ['/account/tokens', 200]],
    admin: [['/tickets', 200], ['/tickets?assigned=none', 200], [`/tickets/${t}`, 200], ['/admin/agents', 200],
      ['/admin/mail', 200], ['/admin/webhooks', 200], ['/admin/reports', 200], ['/tickets?status=overdue', 200], ['/replies', 200], [`/tickets?customer=${state.customerId}`, 200], ['/account', 200],
      ['/account/2fa', 200], ['/account/sessions', 200], ['/account/tokens', 200]],
  };
  const found = [];
  for (const [role, paths] of Object.entries(pages)) found.push(...await audit(role, paths));
  assert.deepEqual(found, [], 'axe-core violations');
});
