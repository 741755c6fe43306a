// Issue 5's user stories in headless Debian chromium, against a running stack.
//
// Run by test/e2e/run.py --browser (it sets CCR_BASE_URL and CCR_VAR); by hand
// against `make run`:
//   CCR_BASE_URL=http://127.0.0.1:8080 CCR_VAR=var node --test test/browser/
//
// The tests run in order and share the people and tickets they create (one
// customer, one agent, one admin; unique emails per run).  Screenshots go to
// $CCR_VAR/screenshots; a few are also written to test/browser/screenshots/
// for the README.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, DESKTOP, PHONE, SHOTS, REPO_SHOTS, launch, email, createAdmin, mailsTo, waitForMail,
  watchContext, submit, assertPrg, goto, flash, fieldErrors, fillRegister, login, logout,
  ticketIdOf, layoutProblems, unlabelledControls, shot,
} from './lib.mjs';

const T = { timeout: 90000 };

const customer = { first: 'Maria', last: 'Lopez', email: email('maria.lopez'), password: 'blue-harbour-42' };
const agent = { first: 'Sam', last: 'Patel', email: email('sam.patel'), password: 'quiet-lantern-17' };
const admin = { first: 'Alex', last: 'Morgan', email: email('alex.morgan'), password: 'granite-meadow-93' };
const agentName = `${agent.first} ${agent.last}`;

let browser;
const ctx = {};      // role -> { context, page, watch }
const state = {};    // ids the stories hand to each other

async function newSession(role, options = {}) {
  const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, ...options });
  const watch = watchContext(context);
  const page = await context.newPage();
  ctx[role] = { context, page, watch };
  return ctx[role];
}

/** No console error or CSP violation on any page of any context so far. */
function checkConsoles(what) {
  for (const [role, c] of Object.entries(ctx)) c.watch.check(`${role}, ${what}`);
}

function agentCell(page) {
  return page.locator('.ticket-props > div').filter({ has: page.locator('dt', { hasText: /^Agent$/ }) }).locator('dd');
}

function statusBadge(page) {
  return page.locator('.ticket-props .badge');
}

async function createTicket(page, { subject, description, priority = 'normal' }) {
  await goto(page, '/tickets/new');
  const form = page.locator('form[action="/tickets"]');
  await form.getByLabel('Subject').fill(subject);
  await form.getByLabel('Priority').selectOption(priority);
  await form.getByLabel('Description').fill(description);
  const nav = await submit(page, () => form.getByRole('button', { name: 'Create ticket' }).click());
  assertPrg(nav, /^\/tickets\/\d+$/, 'POST /tickets');
  return ticketIdOf(page);
}

async function reply(page, body) {
  const form = page.locator('form.reply-form');
  await form.getByLabel('Your reply').fill(body);
  const nav = await submit(page, () => form.getByRole('button', { name: 'Send reply' }).click());
  assertPrg(nav, /^\/tickets\/\d+$/, 'POST /tickets/{id}/messages');
  assert.match(new URL(page.url()).hash, /^#m\d+$/, 'the redirect points at the new message');
  await assert.doesNotReject(page.locator('.msg', { hasText: body }).first().waitFor({ timeout: 5000 }),
    'the reply is in the conversation');
}

/** Choose our agent in an agent select: by id (names repeat when runs share a stack). */
async function pickAgent(select) {
  assert.ok(state.agentId, 'the agent was approved');
  const option = select.locator(`option[value="${state.agentId}"]`);
  assert.equal(await option.count(), 1, 'the approved agent is in the select');
  assert.equal((await option.innerText()).trim(), agentName, 'the option shows the agent name');
  await select.selectOption(String(state.agentId));
}

/** Assign from the ticket page's select (JS on: accept the confirm dialog). */
async function assignOnTicketPage(page) {
  const form = page.locator('form[action$="/assign"]');
  await pickAgent(form.getByLabel('Assign to'));
  page.once('dialog', (d) => d.accept());
  return submit(page, () => form.getByRole('button', { name: 'Assign' }).click());
}

/** The admin creates an active agent at /admin/agents; returns its id. */
async function createAgent(page, { first, last, email: addr }) {
  await goto(page, '/admin/agents');
  const form = page.locator('form[action="/admin/agents"]');
  await form.getByLabel('First name').fill(first);
  await form.getByLabel('Last name').fill(last);
  await form.getByLabel('Email').fill(addr);
  const nav = await submit(page, () => form.getByRole('button', { name: 'Create agent' }).click());
  assertPrg(nav, '/admin/agents', 'POST /admin/agents');
  assert.equal(await flash(page), 'Agent created', 'flash after creating an agent');
  const row = page.locator('section[aria-labelledby="active-h"] tr', { has: page.locator('td', { hasText: addr }) });
  const action = await row.locator('form[action$="/disable"]').getAttribute('action');
  return Number((/^\/admin\/agents\/(\d+)\/disable$/.exec(action) || [])[1]);
}

/** Assign every open unassigned ticket left by other suites (POSTs as the list's forms make them). */
async function clearUnassigned(page) {
  for (let round = 0; round < 400; round++) {
    const ids = await page.locator('tbody tr button[form="assign-form"]')
      .evaluateAll((els) => els.map((el) => /^\/tickets\/(\d+)\/assign$/.exec(el.getAttribute('formaction'))[1]));
    if (!ids.length) return;
    if (!state.backlogAgent) {
      state.backlogAgent = await createAgent(page, { first: 'Backlog', last: 'Queue', email: email('backlog') });
      assert.ok(state.backlogAgent > 0, 'the backlog agent has an id');
      await goto(page, '/tickets?assigned=none');
      continue;
    }
    const csrf = await page.locator('input[name="csrf_token"]').first().inputValue();
    for (const id of ids) {
      const r = await page.request.post(`${BASE}/tickets/${id}/assign`, {
        form: { csrf_token: csrf, agent_id: String(state.backlogAgent) }, maxRedirects: 0,
      });
      assert.equal(r.status(), 303, `assigning leftover ticket #${id}`);
    }
    await goto(page, '/tickets?assigned=none');
  }
}

before(async () => {
  browser = await launch();
});

after(async () => {
  for (const c of Object.values(ctx)) await c.context.close().catch(() => {});
  if (browser) await browser.close();
});

// ---------------------------------------------------------------------------

test('story 1: a customer registers and raises a ticket', T, async () => {
  const { page } = await newSession('customer');
  await goto(page, '/register');
  const form = page.locator('form[action="/register"]');

  // An empty form: every message at once, status 422.
  let nav = await submit(page, () => form.getByRole('button', { name: 'Create account' }).click());
  assert.equal(nav.status, 422, 'empty registration answers 422');
  const errs = await fieldErrors(page);
  for (const msg of ['First name is required', 'Last name is required', 'Invalid email',
    'Password must be at least 8 characters long']) {
    assert.ok(errs.includes(msg), `"${msg}" shown (got ${JSON.stringify(errs)})`);
  }
  // The messages are tied to their fields.
  assert.equal(await form.getByLabel('First name').getAttribute('aria-invalid'), 'true', 'first_name aria-invalid');

  // A mismatched confirmation.
  await fillRegister(page, { ...customer, confirm: 'something-else-1' });
  nav = await submit(page, () => form.getByRole('button', { name: 'Create account' }).click());
  assert.equal(nav.status, 422, 'mismatched confirmation answers 422');
  assert.deepEqual(await fieldErrors(page), ['Passwords do not match'], 'only the mismatch is reported');
  assert.equal(await form.getByLabel('First name').inputValue(), customer.first, 'typed first name kept');
  assert.equal(await form.getByLabel('Email').inputValue(), customer.email, 'typed email kept');
  assert.equal(await form.getByLabel('Password', { exact: true }).inputValue(), '', 'password never echoed');

  // The real thing.
  await fillRegister(page, customer);
  nav = await submit(page, () => form.getByRole('button', { name: 'Create account' }).click());
  assertPrg(nav, '/tickets', 'POST /register');
  assert.equal(await flash(page), 'Welcome', 'flash after registering');
  assert.equal((await page.locator('.empty').innerText()).trim(), 'You are yet to raise a ticket', 'empty state');
  await goto(page, '/tickets');
  assert.equal(await flash(page), '', 'the flash is shown once');

  // A ticket: first with an empty description.
  await page.getByRole('link', { name: 'New ticket' }).first().click();
  await page.waitForURL(`${BASE}/tickets/new`);
  const tform = page.locator('form[action="/tickets"]');
  const subject = 'Invoice shows the wrong VAT rate';
  await tform.getByLabel('Subject').fill(subject);
  nav = await submit(page, () => tform.getByRole('button', { name: 'Create ticket' }).click());
  assert.equal(nav.status, 422, 'empty description answers 422');
  assert.ok((await fieldErrors(page)).includes('Query cannot be empty'), '"Query cannot be empty" shown');
  assert.equal(await tform.getByLabel('Subject').inputValue(), subject, 'subject kept');

  await tform.getByLabel('Priority').selectOption('high');
  await tform.getByLabel('Description').fill(
    'My invoice INV-2291 for March charges 25% VAT, but my business is registered for the reduced 7% rate.\n'
    + 'Could you correct it and send a new invoice?');
  nav = await submit(page, () => tform.getByRole('button', { name: 'Create ticket' }).click());
  assertPrg(nav, /^\/tickets\/\d+$/, 'POST /tickets');
  state.ticket = ticketIdOf(page);
  state.subject = subject;
  assert.equal(await flash(page), 'Ticket created', 'flash after creating the ticket');
  assert.match(await page.locator('h1').innerText(), new RegExp(`#${state.ticket}\\s+${subject}`), 'heading: number and subject');
  assert.equal((await agentCell(page).innerText()).trim(), 'N/A', 'no agent yet: "N/A"');
  assert.equal((await statusBadge(page).innerText()).trim().toLowerCase(), 'open', 'status open');

  // The list shows it now.
  await goto(page, '/tickets');
  assert.equal(await page.locator('.empty').count(), 0, 'no empty state any more');
  assert.equal(await page.locator(`a[href="/tickets/${state.ticket}"]`).count(), 1, 'the ticket is listed');
  checkConsoles('story 1');
});

test('story 3a: an agent requests an account and the admin approves it', T, async () => {
  const { page } = await newSession('agent');
  await goto(page, '/register');
  await fillRegister(page, { ...agent, role: 'agent' });
  let nav = await submit(page, () => page.locator('form[action="/register"] button[type=submit]').click());
  assertPrg(nav, '/login', 'POST /register (agent)');
  assert.equal(await flash(page), 'Your request was sent to the admin', 'flash after the agent request');

  nav = await login(page, agent.email, agent.password);
  assert.equal(new URL(nav.url).pathname, '/login', 'a pending agent stays on /login');
  assert.ok(nav.status >= 400, `a pending agent's login is refused (status ${nav.status})`);
  assert.ok((await page.locator('main').innerText()).includes('Your agent account is waiting for approval'),
    '"Your agent account is waiting for approval" shown');

  // The admin, created on the server.
  createAdmin(admin);
  const a = await newSession('admin');
  nav = await login(a.page, admin.email, admin.password);
  assertPrg(nav, '/tickets', 'admin login');

  await a.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents' }).click();
  await a.page.waitForURL(`${BASE}/admin/agents`);
  const row = a.page.locator('section[aria-labelledby="pending-h"] tr', { has: a.page.locator('td', { hasText: agent.email }) });
  assert.equal(await row.count(), 1, 'the request is listed under Pending requests');
  assert.match(await row.innerText(), new RegExp(agentName), 'with the name');
  const action = await row.locator('form[action$="/approve"]').getAttribute('action');
  state.agentId = Number((/^\/admin\/agents\/(\d+)\/approve$/.exec(action) || [])[1]);
  assert.ok(state.agentId > 0, `the approve form names the agent id (${action})`);
  nav = await submit(a.page, () => row.getByRole('button', { name: /^Approve/ }).click());
  assertPrg(nav, '/admin/agents', 'approve');
  assert.equal(await flash(a.page), 'Agent approved', 'flash after approving');
  const active = a.page.locator('section[aria-labelledby="active-h"] tr', { has: a.page.locator('td', { hasText: agent.email }) });
  assert.equal(await active.count(), 1, 'the agent is listed under Active agents');
  assert.equal(await a.page.locator('section[aria-labelledby="pending-h"] td', { hasText: agent.email }).count(), 0,
    'no longer pending');

  nav = await login(page, agent.email, agent.password);
  assertPrg(nav, '/tickets', 'approved agent login');
  checkConsoles('story 3a');
});

test('story 2: the admin assigns the ticket from the Unassigned list', T, async () => {
  assert.ok(state.ticket, 'story 1 created a ticket');
  const { page } = ctx.admin;
  await goto(page, '/tickets');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Unassigned' }).click();
  await page.waitForURL(/\/tickets\?assigned=none/);
  const row = page.locator('tbody tr', { has: page.locator(`a[href="/tickets/${state.ticket}"]`) });
  assert.equal(await row.count(), 1, 'the new ticket is in the Unassigned list');
  assert.match(await row.innerText(), /Maria Lopez/, 'with its customer');

  // one agent select for the whole list; each row's Assign button submits it for that row
  assert.equal(await page.locator('select[name="agent_id"]').count(), 1, 'one agent select on the page');
  assert.equal(await row.locator('select').count(), 0, 'no select inside the row');
  const select = page.locator('#assign-form').getByLabel('Assign to');
  assert.ok(await select.isVisible(), 'the list has an agent select');
  await pickAgent(select);
  let dialogText = '';
  page.once('dialog', (d) => { dialogText = d.message(); d.accept(); });
  const nav = await submit(page, () => row.getByRole('button', { name: 'Assign' }).click());
  assert.equal(dialogText, `Assign ticket #${state.ticket} to the chosen agent?`, 'the confirm dialog asked');
  assertPrg(nav, '/tickets', 'POST /tickets/{id}/assign');
  assert.equal(await flash(page), 'Agent assigned', 'flash after assigning');
  assert.equal(await page.locator(`tbody a[href="/tickets/${state.ticket}"]`).count(), 0,
    'the ticket left the Unassigned list');

  // Earlier suites on this stack (the e2e modules run first) may have left
  // open tickets unassigned.  Hand them to a "backlog" agent the admin creates
  // for that, so the empty state can show and our agent's list stays ours.
  await clearUnassigned(page);
  assert.ok(new URL(page.url()).searchParams.get('assigned') === 'none', 'back on the Unassigned list');
  assert.equal((await page.locator('.empty').innerText()).trim(), 'There is nothing left to assign', 'empty state');

  // Everyone sees the agent now.
  await goto(page, `/tickets/${state.ticket}`);
  assert.equal((await agentCell(page).innerText()).trim(), agentName, 'admin sees the agent on the ticket');
  await goto(ctx.customer.page, `/tickets/${state.ticket}`);
  assert.equal((await agentCell(ctx.customer.page).innerText()).trim(), agentName, 'customer sees the agent');
  checkConsoles('story 2');
});

test('story 3b: the agent replies, the customer sees it live, closes and rates', T, async (t) => {
  assert.ok(state.ticket, 'story 1 created a ticket');
  const cpage = ctx.customer.page;
  const apage = ctx.agent.page;

  // The customer's ticket page, opened before the reply.
  await goto(cpage, `/tickets/${state.ticket}`);
  assert.equal(await cpage.locator('#thread .msg').count(), 0, 'no messages yet');
  await cpage.evaluate(() => { window.ccrMarker = 'still-the-same-page'; });
  // The customer starts typing; a message arriving meanwhile must not eat the draft.
  const draft = 'Also, could the corrected invoice';
  await cpage.locator('form.reply-form').getByLabel('Your reply').fill(draft);
  let navigations = 0;
  const onNav = (f) => { if (f === cpage.mainFrame()) navigations += 1; };
  cpage.on('framenavigated', onNav);

  // The agent finds it under "Assigned to me" and replies.
  await goto(apage, '/tickets');
  await apage.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Assigned to me' }).click();
  await apage.waitForURL(`${BASE}/tickets`);
  const link = apage.locator(`tbody a[href="/tickets/${state.ticket}"]`);
  assert.equal(await link.count(), 1, 'the ticket is listed for the agent');
  await link.click();
  await apage.waitForURL(`${BASE}/tickets/${state.ticket}`);
  const answer = 'Hello Maria, thank you for the details. I have asked billing to reissue INV-2291 at 7% VAT; '
    + 'the corrected invoice will reach you within two working days.';
  await reply(apage, answer);
  const t0 = Date.now();

  // ...and it appears on the customer's page without a reload.
  const msg = cpage.locator('#thread .msg', { hasText: 'asked billing to reissue' });
  await assert.doesNotReject(msg.waitFor({ timeout: 12000 }), 'the reply shows up within 12 s (polling)');
  const waited = Date.now() - t0;
  assert.equal(navigations, 0, 'the customer page did not navigate');
  assert.equal(await cpage.evaluate(() => window.ccrMarker), 'still-the-same-page', 'same document (no reload)');
  assert.match(await msg.locator('.msg-author').innerText(), new RegExp(agentName), 'the reply names the agent');
  assert.equal(await cpage.locator('#no-messages').count(), 0, '"No messages yet" removed');
  cpage.off('framenavigated', onNav);
  t.diagnostic(`the reply appeared on the customer's page ${waited} ms after it was sent`);
  assert.equal(await cpage.locator('form.reply-form').getByLabel('Your reply').inputValue(), draft,
    'the half-typed reply survived the live update');
  // ...and a reload (ccr.js keeps drafts in sessionStorage).
  await goto(cpage, `/tickets/${state.ticket}`);
  assert.equal((await cpage.locator('form.reply-form').getByLabel('Your reply').inputValue()).trim(), draft,
    'the draft is restored after a reload');

  // The customer answers, then closes (confirm dialog) and rates.
  await reply(cpage, 'Thank you, that is all I needed.');
  let dialogText = '';
  cpage.once('dialog', (d) => { dialogText = d.message(); d.accept(); });
  let nav = await submit(cpage, () => cpage.getByRole('button', { name: 'Close ticket' }).click());
  assert.equal(dialogText, 'Close this ticket?', 'the close confirm dialog asked');
  assertPrg(nav, `/tickets/${state.ticket}`, 'POST /tickets/{id}/close');
  assert.equal(await flash(cpage), 'Ticket closed', 'flash after closing');
  assert.equal((await statusBadge(cpage).innerText()).trim().toLowerCase(), 'closed', 'status closed');
  assert.equal(await cpage.locator('form.reply-form').count(), 0, 'no reply form on a closed ticket');
  assert.equal((await cpage.locator('.notice').innerText()).trim(), 'This ticket is closed', 'closed notice');

  const rform = cpage.locator(`form[action="/tickets/${state.ticket}/rating"]`);
  await rform.getByRole('radio', { name: '5' }).check();
  await rform.getByLabel(/Comment/).fill('Quick and clear answer, thanks Sam!');
  nav = await submit(cpage, () => rform.getByRole('button', { name: 'Send rating' }).click());
  assertPrg(nav, `/tickets/${state.ticket}`, 'POST /tickets/{id}/rating');
  assert.equal(await flash(cpage), 'Thank you for your rating', 'flash after rating');
  assert.equal(await cpage.locator(`form[action="/tickets/${state.ticket}/rating"]`).count(), 0, 'rated once: no form');

  // The agent sees the rating.
  await goto(apage, `/tickets/${state.ticket}`);
  const rating = apage.locator('section[aria-labelledby="rating-h"]');
  assert.equal(await rating.count(), 1, 'the agent sees a Rating section');
  assert.match(await rating.locator('.rating-score').innerText(), /^5\s+out of 5/, 'score 5 out of 5');
  assert.match(await rating.innerText(), /Quick and clear answer, thanks Sam!/, 'with the comment');
  assert.equal((await statusBadge(apage).innerText()).trim().toLowerCase(), 'closed', 'agent sees it closed');
  checkConsoles('story 3b');
});

test('story 4: forgot password, reset with the mailed code, log in with the new one', T, async () => {
  const { page } = await newSession('reset');
  const seen = mailsTo(customer.email).map((m) => m.path);
  await goto(page, '/login');
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.waitForURL(`${BASE}/password/forgot`);
  await page.getByLabel('Email').fill(customer.email);
  let nav = await submit(page, () => page.getByRole('button', { name: 'Send code' }).click());
  assertPrg(nav, '/password/reset', 'POST /password/forgot');
  assert.equal(new URL(nav.url).searchParams.get('email'), customer.email, '?email= carries the address');
  assert.equal(await flash(page), 'If an account exists for that email, a code has been sent', 'flash after asking');
  const form = page.locator('form[action="/password/reset"]');
  assert.equal(await form.getByLabel('Email').inputValue(), customer.email, 'email prefilled');

  const mail = await waitForMail(customer.email, { seen });
  const code = (/\b(\d{8})\b/.exec(mail.body) || [])[1];
  assert.ok(code, `an 8-digit code in the mail "${mail.headers.subject}"`);

  customer.password = 'new-harbour-lights-7';
  await form.getByLabel('Code').fill(code);
  await form.getByLabel('New password', { exact: true }).fill(customer.password);
  await form.getByLabel('Confirm new password').fill(customer.password);
  nav = await submit(page, () => form.getByRole('button', { name: 'Set password' }).click());
  assertPrg(nav, '/login', 'POST /password/reset');
  assert.equal(await flash(page), 'Password changed. Please log in', 'flash after the reset');

  // Log in with the new password, coming from a ticket link (login?next=).
  const ticketPath = `/tickets/${state.ticket}`;
  await goto(page, ticketPath);
  const here = new URL(page.url());
  assert.equal(here.pathname, '/login', 'a ticket link without a session leads to /login');
  assert.equal(here.searchParams.get('next'), ticketPath, '...with next=<the ticket>');
  const lform = page.locator('form[action="/login"]');
  await lform.getByLabel('Email').fill(customer.email);
  await lform.getByLabel('Password').fill(customer.password);
  nav = await submit(page, () => lform.getByRole('button', { name: 'Log in' }).click());
  assertPrg(nav, ticketPath, 'login with the new password goes back to the ticket');
  assert.match(await page.locator('.user-name').innerText(), /Maria Lopez/, 'logged in as the customer');

  // The customer's other session (opened before the reset) may have ended; log it in again.
  const c = ctx.customer.page;
  await goto(c, '/tickets');
  if (new URL(c.url()).pathname === '/login') {
    const n = await login(c, customer.email, customer.password);
    assertPrg(n, '/tickets', 'customer logs in again');
  }
  checkConsoles('story 4');
});

test('story 5: the main flows work with JavaScript disabled', T, async () => {
  const nojs = { javaScriptEnabled: false };
  const cust = { first: 'Jonas', last: 'Berg', email: email('jonas.berg'), password: 'paper-kite-55' };
  const { page } = await newSession('customer-nojs', nojs);
  let dialogs = 0;
  page.on('dialog', (d) => { dialogs += 1; d.dismiss(); });

  await goto(page, '/register');
  await fillRegister(page, cust);
  let nav = await submit(page, () => page.getByRole('button', { name: 'Create account' }).click());
  assertPrg(nav, '/tickets', 'register (no JS)');
  assert.equal(await flash(page), 'Welcome', 'Welcome (no JS)');

  await page.getByRole('link', { name: 'New ticket' }).first().click();
  await page.waitForURL(`${BASE}/tickets/new`);
  const tform = page.locator('form[action="/tickets"]');
  await tform.getByLabel('Subject').fill('Parcel marked delivered but not received');
  await tform.getByLabel('Description').fill('Tracking says delivered on Monday, but nothing arrived.');
  nav = await submit(page, () => tform.getByRole('button', { name: 'Create ticket' }).click());
  assertPrg(nav, /^\/tickets\/\d+$/, 'create ticket (no JS)');
  assert.equal(await flash(page), 'Ticket created', 'Ticket created (no JS)');
  const id = ticketIdOf(page);
  state.nojsTicket = id;

  // Empty reply: the form comes back with the message (no JS validation to lean on).
  nav = await submit(page, () => page.getByRole('button', { name: 'Send reply' }).click());
  assert.equal(nav.status, 422, 'empty reply answers 422');
  assert.ok((await fieldErrors(page)).includes('Type something!'), '"Type something!" shown');
  await reply(page, 'Adding: the tracking number is 00340434161094042557.');

  // The admin assigns from the Unassigned list: the list's one agent select,
  // then the row's Assign button (formaction), posted without the confirm script.
  const a = await newSession('admin-nojs', nojs);
  nav = await login(a.page, admin.email, admin.password);
  assertPrg(nav, '/tickets', 'admin login (no JS)');
  await goto(a.page, '/tickets?assigned=none');
  const arow = a.page.locator('tbody tr', { has: a.page.locator(`a[href="/tickets/${id}"]`) });
  assert.equal(await arow.count(), 1, 'the new ticket is in the Unassigned list (no JS)');
  await pickAgent(a.page.locator('#assign-form').getByLabel('Assign to'));
  nav = await submit(a.page, () => arow.getByRole('button', { name: 'Assign' }).click());
  assertPrg(nav, '/tickets', 'assign from the list (no JS)');
  assert.equal(new URL(a.page.url()).searchParams.get('assigned'), 'none', 'back on the Unassigned list (no JS)');
  assert.equal(await flash(a.page), 'Agent assigned', 'Agent assigned (no JS)');
  await goto(a.page, `/tickets/${id}`);
  assert.equal((await agentCell(a.page).innerText()).trim(), agentName, 'the ticket names the agent (no JS)');

  // The agent replies.
  const g = await newSession('agent-nojs', nojs);
  nav = await login(g.page, agent.email, agent.password);
  assertPrg(nav, '/tickets', 'agent login (no JS)');
  await goto(g.page, `/tickets/${id}`);
  await reply(g.page, 'Sorry about that, Jonas. I have opened a claim with the carrier.');

  // The customer reloads (no polling without JS), sees it, closes and rates.
  await goto(page, `/tickets/${id}`);
  assert.equal(await page.locator('#thread .msg').count(), 2, 'both messages on a reload');
  nav = await submit(page, () => page.getByRole('button', { name: 'Close ticket' }).click());
  assertPrg(nav, `/tickets/${id}`, 'close (no JS, no confirm dialog)');
  assert.equal(await flash(page), 'Ticket closed', 'Ticket closed (no JS)');
  assert.equal(dialogs, 0, 'no confirm dialog without JS (ccr.js did not run)');
  const rform = page.locator(`form[action="/tickets/${id}/rating"]`);
  await rform.getByRole('radio', { name: '4' }).check();
  nav = await submit(page, () => rform.getByRole('button', { name: 'Send rating' }).click());
  assertPrg(nav, `/tickets/${id}`, 'rate (no JS)');
  assert.equal(await flash(page), 'Thank you for your rating', 'rated (no JS)');

  nav = await logout(page);
  assertPrg(nav, '/login', 'log out (no JS)');
  checkConsoles('story 5');
  for (const r of ['customer-nojs', 'admin-nojs', 'agent-nojs']) {
    await ctx[r].context.close();
    delete ctx[r];
  }
});

// ---------------------------------------------------------------------------
// A few more tickets so the lists and the conversation look like real use,
// then layout, accessibility, weight and screenshots.

async function showcase() {
  if (state.showcase) return state.showcase;
  const c = ctx.customer.page;
  const a = ctx.admin.page;
  const g = ctx.agent.page;
  const main = await createTicket(c, {
    subject: 'Card payment declined at checkout',
    priority: 'urgent',
    description: 'Since yesterday every card payment fails at the last step with "payment declined", '
      + 'although the bank confirms the card works.\nOrder reference: WEB-88412.',
  });
  await createTicket(c, {
    subject: 'Please update my delivery address',
    priority: 'low',
    description: 'I moved: the new address is Kastanienallee 12, 10435 Berlin.',
  });
  await createTicket(c, {
    subject: 'Cannot download last month\'s statement',
    description: 'The download link on the statements page gives an empty PDF.',
  });
  // Long but valid content must not break the layout: a link in a description
  // and a message, an agent with a long name (it shows in every agent select).
  const link = `https://shop.example.com/account/orders/WEB-88412/payments/attempts?session=${'a1b2c3d4e5'.repeat(8)}`;
  const long = await createTicket(c, {
    subject: 'Payment page link from the reminder email',
    description: `The reminder email sends me to\n${link}\nwhich shows an empty page.`,
  });
  await reply(c, `The same happens with ${link}&retry=1`);
  await createAgent(a, { first: 'Maximiliana-Alexandra', last: 'Wolfeschlegelsteinhausen-Bergerdorff', email: email('max.wolfe') });
  await goto(a, `/tickets/${main}`);
  const nav = await assignOnTicketPage(a);
  assertPrg(nav, `/tickets/${main}`, 'assign the showcase ticket');
  await goto(g, `/tickets/${main}`);
  await reply(g, 'Hello Maria, I can see three declined attempts on WEB-88412. Our payment provider flagged '
    + 'the billing postcode as not matching. Could you check the postcode saved in your account?');
  await goto(c, `/tickets/${main}`);
  await reply(c, 'You are right, it still had my old postcode. I have corrected it, I will try again tonight.');
  await goto(g, `/tickets/${main}`);
  await reply(g, 'Great, thank you! I will keep the ticket open until you confirm the payment went through.');
  state.showcase = main;
  state.longTicket = long;
  return main;
}

/** The pages to check: [name, role, path]. */
function mainPages(id) {
  return [
    ['login', 'anon', '/login'],
    ['register', 'anon', '/register'],
    ['password-forgot', 'anon', '/password/forgot'],
    ['password-reset', 'anon', `/password/reset?email=${encodeURIComponent(customer.email)}`],
    ['tickets-customer', 'customer', '/tickets'],
    ['ticket-new', 'customer', '/tickets/new'],
    ['ticket', 'customer', `/tickets/${id}`],
    ['ticket-long-link', 'customer', `/tickets/${state.longTicket}`],
    ['account', 'customer', '/account'],
    ['tickets-admin', 'admin', '/tickets'],
    ['tickets-unassigned', 'admin', '/tickets?assigned=none'],
    ['ticket-admin', 'admin', `/tickets/${id}`],
    ['agents', 'admin', '/admin/agents'],
    ['tickets-agent', 'agent', '/tickets'],
    ['ticket-agent', 'agent', `/tickets/${id}`],
  ];
}

test('story 6: layout at 375 and 1280 px, labels, page weight, no console errors', { timeout: 120000 }, async (t) => {
  const id = await showcase();
  if (!ctx.anon) await newSession('anon');
  const problems = [];
  for (const vp of [PHONE, DESKTOP]) {
    for (const [name, role, path] of mainPages(id)) {
      const page = await ctx[role].context.newPage();
      await page.setViewportSize(vp);
      const resp = await page.goto(BASE + path, { waitUntil: 'load' });
      const where = `${name} (${path}) at ${vp.width} px`;
      if (resp.status() !== 200) problems.push(`${where}: status ${resp.status()}`);
      for (const p of await layoutProblems(page)) problems.push(`${where}: ${p}`);
      if (vp === DESKTOP) {
        for (const u of await unlabelledControls(page)) problems.push(`${where}: no accessible label for ${u}`);
        // playwright's own view of the labels, for the visible form fields
        const fields = page.locator('input:not([type=hidden]):not([type=radio]):visible, select:visible, textarea:visible');
        for (const el of await fields.all()) {
          const idAttr = await el.getAttribute('id');
          const label = idAttr && (await page.locator(`label[for="${idAttr}"]`).count())
            ? (await page.locator(`label[for="${idAttr}"]`).innerText()).trim() : null;
          if (label && (await page.getByLabel(label, { exact: true }).count()) < 1) {
            problems.push(`${where}: getByLabel("${label}") finds nothing`);
          }
        }
      }
      await page.close();
    }
  }

  // Weight of the ticket page: a fresh context (empty cache) with the customer's session.
  const fresh = await browser.newContext({ viewport: DESKTOP, storageState: await ctx.customer.context.storageState() });
  try {
    const page = await fresh.newPage();
    const sizes = [];
    page.on('requestfinished', async (req) => {
      const s = req.sizes();
      sizes.push(s.then((v) => ({ url: req.url(), type: req.resourceType(), bytes: v.responseBodySize + v.responseHeadersSize })));
    });
    await goto(page, `/tickets/${id}`);
    await page.waitForLoadState('networkidle');
    const all = await Promise.all(sizes);
    const counted = all.filter((r) => ['document', 'stylesheet', 'script'].includes(r.type));
    const total = counted.reduce((n, r) => n + r.bytes, 0);
    state.weight = `${(total / 1024).toFixed(1)} KB (${counted.map((r) => `${r.type} ${(r.bytes / 1024).toFixed(1)}`).join(', ')})`;
    assert.equal(counted.filter((r) => r.type === 'document').length, 1, 'the HTML was counted');
    assert.ok(counted.some((r) => r.type === 'stylesheet'), 'the CSS was counted');
    assert.ok(counted.some((r) => r.type === 'script'), 'the JS was counted');
    t.diagnostic(`ticket page transferred ${state.weight}`);
    if (total >= 50 * 1024) problems.push(`ticket page HTML + CSS + JS is not under 50 KB: ${state.weight}`);
  } finally {
    await fresh.close();
  }
  // Every problem at once: layout, labels, weight, console errors and CSP violations.
  for (const [role, c] of Object.entries(ctx)) {
    for (const e of c.watch.problems.splice(0)) problems.push(`console (${role}): ${e}`);
  }
  assert.deepEqual(problems, [], 'layout, label, weight and console problems');
});

test('story 7: screenshots of the main pages', { timeout: 120000 }, async () => {
  const id = await showcase();
  if (!ctx.anon) await newSession('anon');
  const readme = new Set(['login', 'tickets-admin', 'ticket', 'agents']);
  const written = [];
  for (const [name, role, path] of mainPages(id)) {
    const page = await ctx[role].context.newPage();
    await page.setViewportSize(DESKTOP);
    await goto(page, path);
    written.push(...await shot(page, name, { repo: readme.has(name) }));
    if (name === 'ticket') {
      await page.setViewportSize(PHONE);
      await page.waitForTimeout(100);
      written.push(...await shot(page, 'ticket-375', { repo: true, maxHeight: 1400 }));
    }
    await page.close();
  }
  const { statSync } = await import('node:fs');
  for (const f of written.filter((p) => p.startsWith(REPO_SHOTS))) {
    const kb = statSync(f).size / 1024;
    assert.ok(kb < 150, `${f} is ${kb.toFixed(0)} KB (keep README screenshots small)`);
  }
  assert.ok(written.some((p) => p.startsWith(SHOTS)), 'screenshots written under $CCR_VAR/screenshots');
  checkConsoles('story 7');
});
