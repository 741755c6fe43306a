// Shared helpers for the browser suite (node:test + playwright-core + Debian chromium).
//
// Environment (set by test/e2e/run.py --browser, or by hand against `make run`):
//   CCR_BASE_URL  the stack's URL (default http://127.0.0.1:8080)
//   CCR_VAR       the stack's var folder: ccr.conf, mail/{new,cur}, screenshots/ (default var)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BASE = (process.env.CCR_BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const VAR = resolve(REPO, process.env.CCR_VAR || 'var');
export const SHOTS = join(VAR, 'screenshots');                    // every screenshot (git-ignored)
export const REPO_SHOTS = join(REPO, 'test', 'browser', 'screenshots'); // the few shown in the README

// Debian's chromium package; playwright-core drives it and never downloads a
// browser of its own (no `playwright install`).
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 740 };

/** A browser with no persistent profile: every context is a fresh, isolated profile. */
export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000 });
}

/** One fresh persistent profile in dir (what login.test.mjs uses). */
export function launchPersistent(dir, options = {}) {
  return chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30000, ...options,
  });
}

// ---------------------------------------------------------------------------
// Unique data per run

const RUN = Date.now().toString(36).slice(-6) + Math.random().toString(36).slice(2, 5);
let seq = 0;
/** A unique address like dana.k3x9ab1@example.com (lower-case, as the server stores it). */
export function email(local) {
  seq += 1;
  return `${local}.${RUN}${seq}@example.com`.toLowerCase();
}

// ---------------------------------------------------------------------------
// The stack's tools and mail sink

/** build/ccr-admin create-admin, password on stdin. */
export function createAdmin({ email: addr, password, first = 'Alex', last = 'Morgan' }) {
  const conf = join(VAR, 'ccr.conf');
  assert.ok(existsSync(conf), `no ${conf}: is CCR_VAR the running stack's var folder?`);
  return execFileSync(join(REPO, 'build', 'ccr-admin'),
    ['-c', conf, 'create-admin', '--email', addr, '--first-name', first, '--last-name', last],
    { input: `${password}\n`, encoding: 'utf8', timeout: 20000 });
}

function parseMail(path) {
  const text = readFileSync(path, 'utf8').replace(/\r\n/g, '\n');
  const cut = text.indexOf('\n\n');
  const head = cut < 0 ? text : text.slice(0, cut);
  const body = cut < 0 ? '' : text.slice(cut + 2);
  const headers = {};
  for (const line of head.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const m = /^([^:\s]+):\s*(.*)$/.exec(line);
    if (m) headers[m[1].toLowerCase()] = m[2];
  }
  return { path, headers, body, mtime: statSync(path).mtimeMs };
}

/** Every mail in the Maildir (new and cur) addressed to `to`, oldest first. */
export function mailsTo(to) {
  const out = [];
  for (const sub of ['new', 'cur']) {
    const dir = join(VAR, 'mail', sub);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      const m = parseMail(join(dir, f));
      if ((m.headers.to || '').toLowerCase().includes(to.toLowerCase())) out.push(m);
    }
  }
  return out.sort((a, b) => a.mtime - b.mtime || a.path.localeCompare(b.path));
}

/** Wait (the mailer polls the outbox every second) for a mail to `to` not among `seen` paths. */
export async function waitForMail(to, { seen = [], subject = null, timeout = 20000 } = {}) {
  const old = new Set(seen);
  const end = Date.now() + timeout;
  for (;;) {
    const fresh = mailsTo(to).filter((m) => !old.has(m.path)
      && (!subject || subject.test(m.headers.subject || '')));
    if (fresh.length) return fresh[fresh.length - 1];
    if (Date.now() > end) assert.fail(`no new mail to ${to}${subject ? ` matching ${subject}` : ''} within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// ---------------------------------------------------------------------------
// Console errors and CSP violations

/**
 * Collect problems on every page of a context: console errors, uncaught
 * exceptions, CSP violations (chromium logs them as console errors; with JS on,
 * a securitypolicyviolation listener reports them too).  A document that the
 * server answered with a 4xx on purpose (422 form, 401 login) makes chromium log
 * "Failed to load resource"; that one line is not a problem — the tests assert
 * those statuses themselves.
 */
export function watchContext(context) {
  const problems = [];
  const docStatus = new Map();
  context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  }).catch(() => {});
  const attach = (page) => {
    page.on('response', (r) => {
      if (r.request().resourceType() === 'document') docStatus.set(r.url(), r.status());
    });
    page.on('pageerror', (e) => problems.push(`${page.url()}: uncaught ${e}`));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const where = (m.location() && m.location().url) || page.url();
      const st = docStatus.get(where);
      if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())
          && st >= 400 && st < 500) return;
      problems.push(`${where}: ${m.text()}`);
    });
  };
  context.pages().forEach(attach);
  context.on('page', attach);
  return {
    problems,
    /** Assert nothing was collected since the last check, then forget it. */
    check(what = '') {
      const got = problems.splice(0);
      assert.deepEqual(got, [], `no console errors or CSP violations${what ? ` (${what})` : ''}`);
    },
  };
}

// ---------------------------------------------------------------------------
// Navigation

/**
 * Run `action` (a click that submits a form) and return the final document
 * response and the chain of redirects, e.g. { status: 200, url, chain: [303] }.
 */
export async function submit(page, action) {
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), action()]);
  assert.ok(resp, 'the form submission navigated');
  const chain = [];
  for (let req = resp.request().redirectedFrom(); req; req = req.redirectedFrom()) {
    const r = await req.response();
    chain.unshift(r ? r.status() : 0);
  }
  return { status: resp.status(), url: resp.url(), chain, method: firstRequest(resp.request()).method() };
}

function firstRequest(req) {
  while (req.redirectedFrom()) req = req.redirectedFrom();
  return req;
}

/** Assert the submission was a POST answered 303 and the page after it is 200 at `path`. */
export function assertPrg(nav, path, what) {
  assert.equal(nav.method, 'POST', `${what}: the form is a POST`);
  assert.deepEqual(nav.chain, [303], `${what}: POST answered 303 (post/redirect/get)`);
  assert.equal(nav.status, 200, `${what}: the page after the redirect is 200`);
  if (path instanceof RegExp) assert.match(new URL(nav.url).pathname, path, `${what}: redirected to ${path}`);
  else if (path) assert.equal(new URL(nav.url).pathname, path, `${what}: redirected to ${path}`);
}

export async function goto(page, path, status = 200) {
  const resp = await page.goto(BASE + path, { waitUntil: 'load' });
  assert.equal(resp.status(), status, `GET ${path} status`);
  return resp;
}

export async function flash(page) {
  const f = page.locator('.flash');
  return (await f.count()) ? (await f.first().innerText()).trim() : '';
}

export async function fieldErrors(page) {
  return (await page.locator('.field-error, .form-error').allInnerTexts()).map((s) => s.trim());
}

export async function fillRegister(page, { first, last, email: addr, password, confirm = password, role = 'customer' }) {
  const form = page.locator('form[action="/register"]');
  await form.getByLabel('First name').fill(first);
  await form.getByLabel('Last name').fill(last);
  await form.getByLabel('Email').fill(addr);
  await form.getByLabel('Password', { exact: true }).fill(password);
  await form.getByLabel('Confirm password').fill(confirm);
  await form.getByLabel('Account type').selectOption(role);
}

/** Log in through /login; returns the submit() result. */
export async function login(page, addr, password) {
  await goto(page, '/login');
  const form = page.locator('form[action="/login"]');
  await form.getByLabel('Email').fill(addr);
  await form.getByLabel('Password').fill(password);
  return submit(page, () => form.getByRole('button', { name: 'Log in' }).click());
}

export async function logout(page) {
  return submit(page, () => page.locator('form.logout-form button').click());
}

/** The ticket id of the page at /tickets/{id}. */
export function ticketIdOf(page) {
  const m = /\/tickets\/(\d+)/.exec(new URL(page.url()).pathname);
  assert.ok(m, `on a ticket page (${page.url()})`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------
// Layout and accessibility checks (run in the page)

/** Horizontal overflow and overlapping interactive elements; [] when fine. */
export async function layoutProblems(page) {
  return page.evaluate(() => {
    const out = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > window.innerWidth) {
      // name the widest offenders to make the report useful
      const wide = [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
        .slice(0, 3).map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''}`);
      out.push(`horizontal scroll: scrollWidth ${doc.scrollWidth} > innerWidth ${window.innerWidth} (${wide.join(', ')})`);
    }
    const name = (el) => {
      const tag = el.tagName.toLowerCase();
      const text = (el.getAttribute('aria-label') || el.innerText || el.value || el.name || el.id || '').trim().replace(/\s+/g, ' ').slice(0, 40);
      return `${tag}${el.id ? `#${el.id}` : ''} "${text}"`;
    };
    const visible = (el) => {
      if (el.type === 'hidden') return false;
      const r = el.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) return false;
      const cs = getComputedStyle(el);
      if (cs.visibility === 'hidden' || cs.display === 'none' || Number(cs.opacity) === 0) return false;
      // visually-hidden (clip) elements and off-screen skip links are not drawn
      for (let p = el; p && p !== document.body; p = p.parentElement) {
        const s = getComputedStyle(p);
        if (/^rect\(0(px)?,? 0(px)?,? 0(px)?,? 0(px)?\)$/.test(s.clip || '')) return false;
        if (s.clipPath && s.clipPath !== 'none' && /inset\(50%\)/.test(s.clipPath)) return false;
      }
      if (r.right + scrollX <= 0 || r.bottom + scrollY <= 0) return false; // off-screen (skip link)
      return true;
    };
    const els = [...document.querySelectorAll('a, button, input, select, textarea')].filter(visible);
    // An inline link that wraps has one box per line: compare those, not their union.
    const boxes = els.map((el) => ({
      el,
      rects: [...el.getClientRects()].filter((r) => r.width >= 1 && r.height >= 1)
        .map((r) => ({ l: r.left + scrollX, t: r.top + scrollY, r: r.right + scrollX, b: r.bottom + scrollY })),
    }));
    const hit = (a, b) => {
      for (const x of a.rects) {
        for (const y of b.rects) {
          const w = Math.min(x.r, y.r) - Math.max(x.l, y.l);
          const h = Math.min(x.b, y.b) - Math.max(x.t, y.t);
          if (w > 1 && h > 1) return [w, h];
        }
      }
      return null;
    };
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i]; const b = boxes[j];
        if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
        const o = hit(a, b);
        if (o) out.push(`overlap ${Math.round(o[0])}x${Math.round(o[1])} px: ${name(a.el)} and ${name(b.el)}`);
      }
    }
    return out;
  });
}

/** Form controls without an accessible label; [] when fine. */
export async function unlabelledControls(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => !['hidden', 'submit', 'button', 'reset', 'image'].includes(el.type))
    .filter((el) => {
      const byLabel = el.labels && [...el.labels].some((l) => l.textContent.trim());
      const aria = (el.getAttribute('aria-label') || '').trim();
      const by = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
        .some((id) => document.getElementById(id) && document.getElementById(id).textContent.trim());
      return !(byLabel || aria || by);
    })
    .map((el) => `${el.tagName.toLowerCase()}[name=${el.name}]${el.id ? `#${el.id}` : ''}`));
}

// ---------------------------------------------------------------------------
// Screenshots

/**
 * Save a full-page png to $CCR_VAR/screenshots/name.png; with repo and
 * CCR_UPDATE_SCREENSHOTS=1 (`make screenshots`), also a copy for the README
 * in test/browser/screenshots/, cut at maxHeight px so a long list cannot
 * make it heavy.  Ordinary runs never touch the committed files.
 */
export async function shot(page, name, { repo = false, maxHeight = 1000 } = {}) {
  repo = repo && process.env.CCR_UPDATE_SCREENSHOTS === '1';
  mkdirSync(SHOTS, { recursive: true });
  const file = join(SHOTS, `${name}.png`);
  const buf = await page.screenshot({ path: file, fullPage: true });
  assert.ok(buf.length > 0, `screenshot ${name} written`);
  const written = [file];
  if (repo) {
    mkdirSync(REPO_SHOTS, { recursive: true });
    const rfile = join(REPO_SHOTS, `${name}.png`);
    const { width, height } = await page.evaluate(() => ({
      width: document.documentElement.clientWidth, height: document.documentElement.scrollHeight,
    }));
    await page.screenshot({ path: rfile, fullPage: true, clip: { x: 0, y: 0, width, height: Math.min(height, maxHeight) } });
    written.push(rfile);
  }
  return written;
}

/** Keyboard use: the focused element draws a visible focus indicator (an
 * outline of 2 px or more, or a box-shadow ring). */
export async function assertVisibleFocus(page, what) {
  const f = await page.evaluate(() => {
    const el = document.activeElement;
    const cs = getComputedStyle(el);
    return { tag: el.tagName, id: el.id, style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) || 0, shadow: cs.boxShadow };
  });
  assert.ok((f.style !== 'none' && f.width >= 2) || (f.shadow && f.shadow !== 'none'),
    `${what}: ${f.tag}#${f.id} shows its focus (outline ${f.style} ${f.width}px)`);
}

/** Press Tab until the element matching selector has the focus (at most max times). */
export async function tabTo(page, selector, max = 40) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement && document.activeElement.matches(s), selector)) return;
  }
  assert.fail(`Tab never reached ${selector}`);
}
