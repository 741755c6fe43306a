// Two-factor sign-in in headless chromium, with the keyboard only: a customer
// opens the two-factor page from the account page, reads the otpauth:// URI
// the page shows beside its QR code, computes codes with oathtool (as an
// authenticator app would), turns it on, sees the recovery codes once, signs
// out and in again through /login/2fa, and lists the sessions.  Then
// axe-core (WCAG 2.2 AA) over every page of the feature, in a context of its
// own that may inject the script (bypassCSP), never the story's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  BASE, DESKTOP, launch, email, watchContext, submit, assertPrg, goto, fillRegister, shot,
  assertVisibleFocus, tabTo,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa'];
const T = { timeout: 120000 };

let browser;
const contexts = [];
before(async () => { browser = await launch(); });
after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  if (browser) await browser.close();
});

/** The code an authenticator shows for base32 secret, its clock moved by offset seconds. */
function totp(secret, offset = 0) {
  const argv = ['--totp', '-b', secret];
  if (offset) return execFileSync('faketime', ['-f', `${offset > 0 ? '+' : ''}${offset}s`, 'oathtool', ...argv], { encoding: 'utf8' }).trim();
  return execFileSync('oathtool', argv, { encoding: 'utf8' }).trim();
}

/** Wait for the next 30-second step when this one ends within 6 s. */
async function freshStep() {
  const left = 30 - (Date.now() / 1000) % 30;
  if (left < 6) await new Promise((r) => setTimeout(r, (left + 0.2) * 1000));
}

/** The setup page's otpauth:// URI, read as text from the page, and its secret. */
async function setupSecret(page) {
  const uri = (await page.locator('#totp-uri').innerText()).trim();
  assert.match(uri, /^otpauth:\/\/totp\//, 'the page shows the otpauth URI');
  const secret = new URL(uri).searchParams.get('secret');
  assert.match(secret, /^[A-Z2-7]{32}$/, 'a base32 secret in the URI');
  assert.equal((await page.locator('svg.qr-code path').count()), 1, 'the QR code is drawn');
  assert.equal(await page.locator('svg.qr-code').getAttribute('role'), 'img');
  return secret;
}

async function register(page, who) {
  await goto(page, '/register');
  await fillRegister(page, who);
  const nav = await submit(page, () => page.locator('form[action="/register"] button[type="submit"]').click());
  assertPrg(nav, '/tickets', 'register');
}

async function axe(page, what) {
  await page.addScriptTag({ path: AXE });
  const res = await page.evaluate((tags) => window.axe.run(document, {
    runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'],
  }), AXE_TAGS);
  assert.ok(res.passes.length > 10, `${what}: axe checked the page`);
  return res.violations.map((v) => `${what}: ${v.id} (${v.impact}) ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

test('two-factor: enrol from the QR page with the keyboard, sign in with a code, list sessions', T, async () => {
  const who = { first: 'Maya', last: 'Osei', email: email('maya.osei'), password: 'granite-lantern-73' };
  const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
  contexts.push(context);
  const watch = watchContext(context);
  const page = await context.newPage();
  await register(page, who);

  // account page → two-factor page, by keyboard
  await goto(page, '/account');
  await tabTo(page, 'a[href="/account/2fa"]');
  await assertVisibleFocus(page, 'the two-factor link');
  await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
  assert.equal(new URL(page.url()).pathname, '/account/2fa');
  const secret = await setupSecret(page);
  assert.ok((await page.locator('#totp-secret').innerText()).replace(/ /g, '') === secret, 'the secret as text too');
  await shot(page, 'twofa-setup', { repo: true });

  // a wrong code first: 422 with the message, focus still usable
  await tabTo(page, '#code');
  await assertVisibleFocus(page, 'the code field');
  await page.keyboard.type('000000' === totp(secret) ? '111111' : '000000');
  let nav = await submit(page, () => page.keyboard.press('Enter'));
  assert.equal(nav.status, 422);
  assert.match(await page.locator('#code-error').innerText(), /Invalid code/);

  await freshStep();
  await page.locator('#code').focus();
  await page.keyboard.type(totp(secret));
  nav = await submit(page, () => page.keyboard.press('Enter'));
  assert.equal(nav.status, 200, 'the recovery codes page');
  const codes = await page.locator('#recovery-codes code').allInnerTexts();
  assert.equal(codes.length, 10);
  await shot(page, 'twofa-recovery-codes');

  // sign out, sign in: password, then the code (the next step's: the first is used)
  await goto(page, '/tickets');
  await submit(page, () => page.locator('form.logout-form button').click());
  await goto(page, '/login');
  await page.locator('#email').fill(who.email);
  await page.locator('#password').fill(who.password);
  nav = await submit(page, () => page.locator('#password').press('Enter'));
  assertPrg(nav, '/login/2fa', 'password step');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'code', 'the code field has the focus');
  await assertVisibleFocus(page, 'the sign-in code field');
  await freshStep();
  await page.keyboard.type(totp(secret, 30));
  nav = await submit(page, () => page.keyboard.press('Enter'));
  assertPrg(nav, '/tickets', 'code step');

  // the sessions page: this one marked
  await goto(page, '/account/sessions');
  assert.equal(await page.locator('tr:has-text("this one")').count(), 1);
  await shot(page, 'twofa-sessions');
  watch.check('two-factor story');
});

test('axe-core: the two-factor and session pages have no WCAG 2.2 AA violation', T, async () => {
  const who = { first: 'Ilse', last: 'Varga', email: email('ilse.varga'), password: 'meadow-copper-19' };
  const context = await browser.newContext({ viewport: DESKTOP, bypassCSP: true });
  contexts.push(context);
  const page = await context.newPage();
  const found = [];
  await register(page, who);
  await goto(page, '/account');
  found.push(...await axe(page, '/account'));
  await goto(page, '/account/2fa');
  found.push(...await axe(page, '/account/2fa (setup)'));
  const secret = await setupSecret(page);
  await page.locator('#code').fill('000000' === totp(secret) ? '111111' : '000000');
  await submit(page, () => page.locator('form[action="/account/2fa"] button').click());
  found.push(...await axe(page, '/account/2fa (wrong code, 422)'));
  await freshStep();
  await page.locator('#code').fill(totp(secret));
  await submit(page, () => page.locator('form[action="/account/2fa"] button').click());
  found.push(...await axe(page, '/account/2fa (recovery codes)'));
  await goto(page, '/account/2fa');
  found.push(...await axe(page, '/account/2fa (on)'));
  await goto(page, '/account/sessions');
  found.push(...await axe(page, '/account/sessions'));
  await submit(page, () => page.locator('form.logout-form button').click());
  await goto(page, '/login');
  await page.locator('#email').fill(who.email);
  await page.locator('#password').fill(who.password);
  await submit(page, () => page.locator('form[action="/login"] button').click());
  found.push(...await axe(page, '/login/2fa'));
  await page.locator('#code').fill('000000');
  await submit(page, () => page.locator('form[action="/login/2fa"] button').click());
  found.push(...await axe(page, '/login/2fa (401)'));
  assert.deepEqual(found, [], 'axe-core violations');
});
