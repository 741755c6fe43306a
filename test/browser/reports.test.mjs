// The admin's reports in headless chromium: five inline SVG charts, each
// with a <title>, axes, bars and the numbers in a table beside it; no
// chart script (the server draws them); drawn in the page's colours in light and dark mode;
// no horizontal overflow at 375 px; the CSV link downloads an attachment.
// Screenshot for the README (reports.png).  The axe-core audit of the page
// is workspace.test.mjs's, with every other page.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE, DESKTOP, PHONE, launch, email, createAdmin, watchContext, goto, login, assertPrg,
  layoutProblems, shot,
} from './lib.mjs';

const T = { timeout: 120000 };
const admin = { first: 'Rita', last: 'Report', email: email('rita.report'), password: 'amber-ledger-58' };
let browser;

before(async () => { browser = await launch(); });
after(async () => { if (browser) await browser.close(); });

async function charts(page) {
  return page.evaluate(() => [...document.querySelectorAll('svg.chart-svg')].map((svg) => {
    const bar = svg.querySelector('rect.series-a');
    const text = svg.querySelector('text');
    return {
      title: svg.querySelector('title')?.textContent || '',
      labelled: svg.getAttribute('role') === 'img' && !!svg.getAttribute('aria-labelledby'),
      bars: svg.querySelectorAll('rect').length,
      axes: svg.querySelectorAll('.chart-axis line').length,
      table: !!svg.closest('.report-pair')?.querySelector('table thead th'),
      barFill: bar ? getComputedStyle(bar).fill : '',
      textFill: text ? getComputedStyle(text).fill : '',
      surface: getComputedStyle(svg.closest('.card')).backgroundColor,
      width: svg.getBoundingClientRect().width,
    };
  }));
}

test('reports: SVG charts with titles and tables, light and dark, 375 px', T, async () => {
  createAdmin(admin);
  const found = {};
  for (const scheme of ['light', 'dark']) {
    const context = await browser.newContext({ viewport: DESKTOP, colorScheme: scheme });
    const watch = watchContext(context);
    const page = await context.newPage();
    try {
      assertPrg(await login(page, admin.email, admin.password), '/tickets', 'admin login');
      const html = await (await page.request.get(BASE + '/admin/reports')).text();
      assert.equal((html.match(/<svg /g) || []).length, 5, 'the server sends the charts drawn');
      await goto(page, '/admin/reports');
      assert.deepEqual(await page.evaluate(() => [...document.scripts].map((s) => new URL(s.src).pathname)),
        ['/static/ccr.js'], 'no script but the site\'s own (none draws a chart)');
      const cs = await charts(page);
      assert.equal(cs.length, 5, 'five charts');
      for (const c of cs) {
        assert.ok(c.title.length > 10, `chart has a title: ${c.title}`);
        assert.ok(c.labelled, `${c.title}: role=img, labelled`);
        // no ratings in a fresh database: the CSAT chart has axes and no bar
        const fewest = c.title.startsWith('Average rating') ? 0 : 4;
        assert.ok(c.bars >= fewest && c.axes === 2, `${c.title}: bars and two axes`);
        assert.ok(c.table, `${c.title}: a table beside it`);
        assert.notEqual(c.barFill, c.surface, `${c.title}: bars visible on the card (${scheme})`);
        assert.notEqual(c.textFill, c.surface, `${c.title}: labels visible on the card (${scheme})`);
      }
      found[scheme] = cs[0];
      if (scheme === 'light') await shot(page, 'reports', { repo: true, maxHeight: 1400 });
      else await shot(page, 'reports-dark');
      await page.setViewportSize(PHONE);
      await goto(page, '/admin/reports?from=2026-01-01&to=2026-12-31');
      assert.deepEqual(await layoutProblems(page), [], 'no overflow at 375 px');
      const narrow = await charts(page);
      assert.ok(narrow.every((c) => c.width <= PHONE.width), 'charts fit the phone');
      const csv = await page.request.get(BASE + '/admin/reports.csv');
      assert.equal(csv.status(), 200);
      assert.match(csv.headers()['content-disposition'], /^attachment; filename="ccr-report-/);
      watch.check(`reports ${scheme}`);
    } finally {
      await context.close();
    }
  }
  assert.notEqual(found.light.textFill, found.dark.textFill, 'the labels follow the colour scheme');
});
