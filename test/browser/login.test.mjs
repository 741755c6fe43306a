// The login page in headless Debian chromium, driven by playwright-core.
//
// Run by test/e2e/run.py --browser, which starts the stack and sets
// CCR_BASE_URL and CCR_VAR; by hand against `make run`:
//   CCR_BASE_URL=http://127.0.0.1:8080 CCR_VAR=var node --test test/browser/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BASE, SHOTS, launchPersistent } from './lib.mjs';

let profile;
let context;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), 'ccr-chromium-'));
  // A fresh profile for Debian's chromium (lib.mjs CHROMIUM).
  context = await launchPersistent(profile);
});

after(async () => {
  if (context) await context.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test('login page shows the login form', async () => {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  const resp = await page.goto(`${BASE}/login`, { waitUntil: 'load' });
  assert.equal(resp.status(), 200, 'GET /login status');

  assert.match(await page.title(), /log\s*in|sign\s*in/i, 'page title names the login');

  const form = page.locator('form[method="post" i]').filter({ has: page.locator('input[name="password"]') });
  assert.equal(await form.count(), 1, 'one POST form with a password field');
  const email = form.locator('input[name="email"]');
  const password = form.locator('input[name="password"]');
  assert.ok(await email.isVisible(), 'email input visible');
  assert.ok(await password.isVisible(), 'password input visible');
  assert.equal(await password.getAttribute('type'), 'password', 'password input is type=password');
  assert.match((await email.getAttribute('type')) || 'text', /^(email|text)$/, 'email input type');
  const csrf = form.locator('input[name="csrf_token"]');
  assert.equal(await csrf.getAttribute('type'), 'hidden', 'csrf_token is hidden');
  assert.ok((await csrf.getAttribute('value') || '').length > 0, 'csrf_token has a value');

  // The stylesheet loaded (CSP default-src 'self' allows it) and nothing was blocked.
  assert.deepEqual(errors, [], 'no console errors (CSP violations show up here)');

  const shot = join(SHOTS, 'login.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 0, 'screenshot written');
  await page.close();
});
