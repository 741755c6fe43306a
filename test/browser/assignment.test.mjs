// Agent availability in headless chromium: an approved agent sees
// "Unavailable" in the header, goes available with the keyboard alone and
// lands back on the page they were on, with the flash; the admin's agents
// page shows it; then axe-core (WCAG 2.2 AA) over those pages in both
// states, in a separate context with bypassCSP (see workspace.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  BASE, DESKTOP, launch, email, createAdmin, watchContext, submit, assertPrg, goto, flash,
  fillRegister, login, layoutProblems,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];
const T = { timeout: 120000 };

const agent = { first: 'Lena', last: 'Vogt', email: email('lena.vogt'), password: 'quiet-harbour-37' };
const admin = { first: 'Omar', last: 'Haddad', email: email('omar.haddad'), password: 'linen-summit-92' };

let browser;
const ctx = {};

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

async function axe(role, paths) {
  const context = await browser.newContext({
    viewport: DESKTOP, bypassCSP: true, storageState: await ctx[role].context.storageState(),
  });
  const page = await context.newPage();
  const found = [];
  try {
    for (const path of paths) {
      const resp = await page.goto(BASE + path, { waitUntil: 'load' });
      assert.equal(resp.status(), 200, `${role} GET ${path}`);
      await page.addScriptTag({ path: AXE });
      const res = await page.evaluate((tags) => window.axe.run(document, {
        runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'],
      }), AXE_TAGS);
      assert.ok(res.passes.length > 10, `${role} ${path}: axe checked the page`);
      for (const v of res.violations) {
        found.push(`${role} ${path}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
      }
    }
  } finally {
    await context.close();
  }
  return found;
}

test('availability: an agent goes available from the header, the admin sees it', T, async () => {
  const g = await newSession('agent');
  await goto(g.page, '/register');
  await fillRegister(g.page, { ...agent, role: 'agent' });
  await submit(g.page, () => g.page.locator('form[action="/register"] button[type=submit]').click());
  createAdmin(admin);
  const a = await newSession('admin');
  assertPrg(await login(a.page, admin.email, admin.password), '/tickets', 'admin login');
  await goto(a.page, '/admin/agents');
  const pending = a.page.locator('section[aria-labelledby="pending-h"] tr', { has: a.page.locator('td', { hasText: agent.email }) });
  await submit(a.page, () => pending.getByRole('button', { name: /^Approve/ }).click());

  assertPrg(await login(g.page, agent.email, agent.password), '/tickets', 'agent login');
  const found = [...await axe('agent', ['/tickets', '/account'])];
  await goto(g.page, '/tickets?status=open');
  const box = g.page.locator('.user-box');
  assert.equal((await box.locator('.badge').innerText()).trim(), 'Unavailable', 'a new agent starts unavailable');
  // keyboard only: Tab to the button, Enter
  for (let i = 0; i < 40; i++) {
    await g.page.keyboard.press('Tab');
    if (await g.page.evaluate(() => document.activeElement?.textContent?.trim() === 'Go available')) break;
  }
  assert.equal(await g.page.evaluate(() => document.activeElement?.textContent?.trim()), 'Go available',
    'Tab reaches "Go available"');
  const nav = await submit(g.page, () => g.page.keyboard.press('Enter'));
  assertPrg(nav, '/tickets', 'POST /account/availability');
  assert.equal(new URL(nav.url).search, '?status=open', 'back on the page the agent was on');
  assert.equal(await flash(g.page), 'You are available for new tickets');
  assert.equal((await box.locator('.badge').innerText()).trim(), 'Available');
  assert.ok(await box.getByRole('button', { name: 'Go unavailable' }).isVisible());
  assert.deepEqual(await layoutProblems(g.page), [], 'the header with the control lays out cleanly');

  await goto(a.page, '/admin/agents');
  const row = a.page.locator('section[aria-labelledby="active-h"] tr', { has: a.page.locator('td', { hasText: agent.email }) });
  assert.equal((await row.locator('td[data-label="Availability"]').innerText()).trim(), 'Available');
  found.push(...await axe('agent', ['/tickets', '/account']), ...await axe('admin', ['/admin/agents']));
  assert.deepEqual(found, [], 'axe-core violations');
  for (const c of Object.values(ctx)) c.watch.check('availability story');
});
