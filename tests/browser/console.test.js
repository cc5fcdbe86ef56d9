// console.test.js - drives Debian's chromium headless (playwright-core) against a real antennad's
// web console at /ui: signs in as a user, a manager, staff and an auditor (keyboard only for one),
// checks what each sees and is refused, changes a quota from the form and confirms it through the
// API, checks the security headers and that no console error occurs, and saves screenshots.
// Prints one "ok NAME" or "ko NAME: why" line per check (tests/integration/t_console.sh counts
// them); exits 1 if any failed or the run broke. Needs no internet: it only talks to antennad.
//
// Environment: ANTENNA_URL, TOKEN_USER, TOKEN_MANAGER, TOKEN_STAFF, TOKEN_AUDITOR, SHOTS (folder
// for the screenshots), CHROMIUM (default /usr/bin/chromium), LIVE_JOB and WAIT_JOB (ids of the
// user's running job and of the one waiting behind it), DONE_JOB (a completed job of the user
// whose output contains DONE_TEXT).
'use strict';
const fs = require('fs');
const path = require('path');
const https = require('https');
const { chromium } = require('playwright-core');

const env = (k, d) => process.env[k] || d;
const URL0 = env('ANTENNA_URL');
const SHOTS = env('SHOTS', 'console-shots');
const T = { user: env('TOKEN_USER'), manager: env('TOKEN_MANAGER'), staff: env('TOKEN_STAFF'), auditor: env('TOKEN_AUDITOR') };
const LAPTOP = { width: 1366, height: 900 }, PHONE = { width: 390, height: 844 };
let failed = 0;

function ok(name) { console.log(`ok ${name}`); }
function ko(name, why) { failed++; console.log(`ko ${name}: ${String(why).replace(/\s+/g, ' ').slice(0, 300)}`); }
async function check(name, fn) {
  try {
    const r = await fn();
    if (r === false) ko(name, 'condition false'); else ok(name);
  } catch (e) {
    ko(name, e && e.message ? e.message : e);
  }
}
function assert(cond, why) { if (!cond) throw new Error(why); }

// The API, straight (to confirm what the page did). The dev CA is not trusted here: this talks to
// 127.0.0.1 only, the daemon the test started.
function api(token, method, p, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, URL0);
    const req = https.request({ hostname: u.hostname, port: u.port, path: u.pathname + u.search, method,
      rejectUnauthorized: false, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data ? JSON.parse(data) : null }));
    });
    req.on('error', reject);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

// A fresh context (its own sessionStorage) and page, with console errors collected.
async function open(browser, viewport) {
  const ctx = await browser.newContext({ viewport, ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', (d) => d.accept());
  const first = await page.goto(`${URL0}/ui/`);
  return { ctx, page, errors, first };
}

async function signIn(page, token) {
  await page.fill('#token', token);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#nav a', { timeout: 10000 });
}

async function navNames(page) {
  return page.$$eval('#nav a', (as) => as.map((a) => a.dataset.page));
}

async function go(page, id) {
  await page.evaluate((h) => { location.hash = h; }, `#/${id}`);
  await page.waitForSelector(`section.page[data-page="${id}"]`, { timeout: 10000 });
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function text(page, sel, timeout = 10000) {
  await page.waitForSelector(sel, { timeout });
  return page.textContent(sel);
}

async function main() {
  const browser = await chromium.launch({ executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [] });
  try {
    await asUser(browser);
    await asManager(browser);
    await asStaff(browser);
    await asAuditor(browser);
    await onPhone(browser);
  } finally {
    await browser.close();
  }
}

async function asUser(browser) {
  const { ctx, page, errors, first } = await open(browser, LAPTOP);
  const hd = first.headers();
  await check('/ui answers 200 text/html', () => assert(first.status() === 200 && /^text\/html/.test(hd['content-type']), `${first.status()} ${hd['content-type']}`));
  await check('/ui carries a strict Content-Security-Policy', () => {
    const csp = hd['content-security-policy'] || '';
    assert(/default-src 'self'/.test(csp) && /frame-ancestors 'none'/.test(csp) && !/unsafe-inline|unsafe-eval/.test(csp), `CSP: ${csp}`);
  });
  await check('/ui says nosniff and has caching headers', () => assert(hd['x-content-type-options'] === 'nosniff' && hd['cache-control'] && hd.etag, JSON.stringify(hd)));
  await check('the console sets no cookie', async () => assert((await ctx.cookies()).length === 0, 'cookies set'));

  // keyboard only: Tab until the token field has the focus, type, Enter
  await check('keyboard-only sign-in works (Tab, type, Enter)', async () => {
    let id = '';
    for (let i = 0; i < 12 && id !== 'token'; i++) {
      await page.keyboard.press('Tab');
      id = await page.evaluate(() => document.activeElement && document.activeElement.id);
    }
    assert(id === 'token', 'the token field is never reached with Tab');
    await page.keyboard.type(T.user);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#nav a', { timeout: 10000 });
    const who = await page.textContent('#who-text');
    assert(/\(user, ulb\)/.test(who), `who: ${who}`);
  });
  await check('the token is kept in sessionStorage, not in a cookie', async () => {
    const s = await page.evaluate(() => sessionStorage.getItem('antenna.token'));
    assert(s === T.user && (await ctx.cookies()).length === 0, 'not in sessionStorage');
  });
  await check('the keyboard focus is visible (outline on :focus-visible)', async () => {
    await page.focus('#signout');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(outline !== 'none', `outline ${outline}`);
  });
  const nav = await navNames(page);
  await check('a user sees my jobs, quotas and usage', () => assert(['jobs', 'quotas', 'usage'].every((p) => nav.includes(p)), nav.join(',')));
  await check('a user is not shown the queue, statements or the audit trail', () => assert(!nav.includes('queue') && !nav.includes('statements') && !nav.includes('audit'), nav.join(',')));

  await go(page, 'jobs');
  const live = env('LIVE_JOB'), wait = env('WAIT_JOB'), done = env('DONE_JOB');
  await check('my jobs shows the running job live', async () => {
    await page.waitForSelector(`#jobs-list tr:has(td:text-is("${live}")) .state-running`, { timeout: 15000 });
  });
  await check('my jobs shows the wait reason of the queued job', async () => {
    const row = await text(page, `#jobs-list tr:has(td:text-is("${wait}"))`);
    assert(/queued/.test(row) && /PartnerGpuLimit/.test(row), row);
  });
  await check('my jobs lists only the user\'s own jobs', async () => {
    const users = await page.$$eval('#jobs-list tbody tr td:nth-child(3)', (tds) => [...new Set(tds.map((t) => t.textContent))]);
    assert(users.length === 1 && users[0] === 'alice', users.join(','));
  });
  await check('the state filter narrows the list', async () => {
    await page.selectOption('#filter-state', 'completed');
    await page.waitForFunction(() => [...document.querySelectorAll('#jobs-list .state')].every((s) => s.textContent === 'completed'));
    const n = await page.$$eval('#jobs-list .state', (s) => s.length);
    await page.fill('#filter-name', 'it-train');
    await page.waitForFunction(() => [...document.querySelectorAll('#jobs-list tbody tr td:nth-child(2)')].every((t) => t.textContent.includes('it-train')));
    const m = await page.$$eval('#jobs-list tbody tr', (s) => s.length);
    assert(n > 0 && m >= 1 && m <= n, `${n} completed, ${m} named it-train`);
  });
  await check('the output viewer shows the job\'s output', async () => {
    await page.click(`[data-key="out-${done}"]`);
    await page.waitForFunction((t) => (document.querySelector('#output-panel pre') || {}).textContent?.includes(t), env('DONE_TEXT'), { timeout: 10000 });
  });
  await shot(page, 'user-jobs-laptop');
  await check('the user cancels the waiting job from the page and it ends cancelled', async () => {
    await page.selectOption('#filter-state', '');
    await page.fill('#filter-name', '');
    await page.click(`[data-key="cancel-${wait}"]`);
    await page.waitForSelector(`#jobs-list tr:has(td:text-is("${wait}")) .state-cancelled`, { timeout: 15000 });
    const r = await api(T.user, 'GET', `/v1/jobs/${wait}`);
    assert(r.body.state === 'cancelled', `API says ${r.body.state}`);
  });
  await go(page, 'quotas');
  await check('a user sees only their partner\'s quota, with no form', async () => {
    await page.waitForSelector('#quota-cards article');
    const parts = await page.$$eval('#quota-cards article', (as) => as.map((a) => a.dataset.partner));
    assert(parts.join(',') === 'ulb', parts.join(','));
    assert((await page.$('#quota-form')) === null, 'quota form shown');
  });
  await check('the burn-down chart is drawn', async () => { await page.waitForSelector('[data-partner="ulb"] [data-chart="burndown"] canvas'); });
  await go(page, 'usage');
  await check('usage shows a chart and a CSV download', async () => {
    await page.waitForSelector('#usage-out table');
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#usage-csv')]);
    const p = await dl.path();
    const csv = fs.readFileSync(p, 'utf8');
    assert(/^partner,gpu_hours/.test(csv) && /\nulb,/.test(csv) && !/vub/.test(csv), csv.slice(0, 200));
  });
  await go(page, 'audit');
  await check('the audit trail reached anyway shows the API\'s 403 as a clear message', async () => {
    const t = await text(page, 'section.page [data-alert="error"]');
    assert(/403/.test(t) && /forbidden|not allowed/i.test(t), t);
  });
  await shot(page, 'user-403-laptop');
  await check('no console error for the user', () => assert(errors.filter((e) => !/403|Forbidden/.test(e)).length === 0, errors.join(' | ')));
  await ctx.close();
}

async function asManager(browser) {
  const { ctx, page, errors } = await open(browser, LAPTOP);
  await check('a wrong token is refused with a clear message and no page is shown', async () => {
    await page.fill('#token', 'ant_' + '0'.repeat(64));
    await page.click('#signin-form button[type=submit]');
    const t = await text(page, '#status [data-alert="error"]');
    assert(/refused/.test(t) && (await page.$('#nav a')) === null, t);
    errors.length = 0; // the browser logs the 401 itself
  });
  await signIn(page, T.manager);
  const nav = await navNames(page);
  await check('a manager sees statements but not the queue or the audit trail', () => assert(nav.includes('statements') && !nav.includes('queue') && !nav.includes('audit'), nav.join(',')));
  await go(page, 'statements');
  await check('the manager reads the partner\'s statement with its jobs and chart', async () => {
    const h = await text(page, '#statement h3');
    assert(/Statement of ulb/.test(h), h);
    await page.waitForSelector('#statement [data-chart="statement"] canvas');
    const month = new Date().toISOString().slice(0, 7);
    const r = (await api(T.manager, 'GET', `/v1/reports/ulb/${month}`)).body;
    assert(r.jobs.length > 0, 'the API\'s statement has no job');
    const ids = await page.$$eval('#statement-jobs tbody tr td:first-child', (tds) => tds.map((t) => Number(t.textContent)));
    assert(JSON.stringify(ids.sort()) === JSON.stringify(r.jobs.map((j) => j.id).sort()), `page jobs ${ids} vs API ${r.jobs.map((j) => j.id)}`);
  });
  await check('the manager may only pick their own partner', async () => {
    const opts = await page.$$eval('#stmt-partner option', (o) => o.map((x) => x.value));
    assert(opts.join(',') === 'ulb', opts.join(','));
  });
  await shot(page, 'manager-statement-laptop');
  await check('no console error for the manager', () => assert(errors.length === 0, errors.join(' | ')));
  await ctx.close();
}

async function asStaff(browser) {
  const { ctx, page, errors } = await open(browser, LAPTOP);
  await signIn(page, T.staff);
  const nav = await navNames(page);
  await check('staff see the queue, quotas, usage and statements, not the audit trail', () => assert(['queue', 'quotas', 'usage', 'statements'].every((p) => nav.includes(p)) && !nav.includes('audit'), nav.join(',')));
  await go(page, 'queue');
  await check('the queue shows every partner\'s jobs', async () => {
    await page.waitForSelector('#jobs-list table');
    await page.selectOption('#filter-state', '');
    const parts = await page.$$eval('#jobs-list tbody tr td:nth-child(3)', (tds) => [...new Set(tds.map((t) => t.textContent))].sort());
    assert(parts.includes('ulb') && parts.includes('vub'), parts.join(','));
  });
  await shot(page, 'staff-queue-laptop');
  await go(page, 'quotas');
  await check('staff see every partner and the quota form', async () => {
    await page.waitForSelector('#quota-form');
    const parts = await page.$$eval('#quota-cards article', (as) => as.map((a) => a.dataset.partner));
    assert(parts.includes('ulb') && parts.includes('vub'), parts.join(','));
  });
  const setBudget = async (hours) => {
    await page.selectOption('#quota-partner', 'vub');
    await page.fill('#quota-gpu_hours', String(hours));
    await page.click('#quota-form button[type=submit]');
    await page.waitForFunction((h) => {
      const b = document.querySelector('[data-partner="vub"] [data-kpi="budget"] b');
      return b && Math.abs(parseFloat(b.textContent) - h) < 0.006;
    }, hours, { timeout: 10000 });
    const r = await api(T.staff, 'GET', '/v1/quotas?partner=vub');
    const q = r.body.quotas[0];
    assert(Math.abs(q.gpu_hours - hours) < 1e-6, `the API says ${q.gpu_hours}, wanted ${hours}`);
    return q;
  };
  await check('staff set a quota from the form; the page and the API show it (ample budget: no warning)', async () => {
    await setBudget(123456);
    await page.waitForSelector('[data-partner="vub"] [data-trend="ok"]');
    assert((await page.$('[data-partner="vub"] [data-alert="warn"]')) === null, 'warning shown with an ample budget');
  });
  await check('a budget the trend exhausts before the period ends shows a warning', async () => {
    const before = (await api(T.staff, 'GET', '/v1/quotas?partner=vub')).body.quotas[0];
    const spent = before.used_gpu_hours + before.held_gpu_hours;
    assert(spent > 0, 'vub spent nothing: no trend to test');
    await setBudget(Math.floor(spent * 1e6) / 1e6); // nothing left: the trend runs out now
    const w = await text(page, '[data-partner="vub"] [data-alert="warn"]');
    assert(/runs out/.test(w), w);
  });
  await shot(page, 'staff-quotas-laptop');
  await go(page, 'usage');
  await check('staff see usage of every partner, charted by user too', async () => {
    await page.waitForSelector('#usage-out table');
    const t = await page.textContent('#usage-out table');
    assert(/ulb/.test(t) && /vub/.test(t), t.slice(0, 200));
    await page.selectOption('#usage-by', 'user');
    await page.click('form[aria-label="Usage query"] button[type=submit]');
    await page.waitForFunction(() => /alice/.test(document.querySelector('#usage-out table')?.textContent || ''));
    await page.waitForSelector('#usage-out [data-chart="usage"] canvas');
  });
  await shot(page, 'staff-usage-laptop');
  await check('no console error for staff', () => assert(errors.length === 0, errors.join(' | ')));
  await ctx.close();
}

async function asAuditor(browser) {
  const { ctx, page, errors } = await open(browser, LAPTOP);
  await signIn(page, T.auditor);
  const nav = await navNames(page);
  await check('an auditor sees the queue and the audit trail, not my jobs', () => assert(nav.includes('queue') && nav.includes('audit') && !nav.includes('jobs'), nav.join(',')));
  await go(page, 'quotas');
  await check('an auditor sees the quotas but no quota form', async () => {
    await page.waitForSelector('#quota-cards article');
    assert((await page.$('#quota-form')) === null, 'quota form shown to an auditor');
  });
  await go(page, 'queue');
  await check('an auditor gets no cancel button', async () => {
    await page.waitForSelector('#jobs-list table');
    assert((await page.$('#jobs-list button.danger')) === null, 'a cancel button is shown');
  });
  await go(page, 'audit');
  await check('the audit trail shows the verify status', async () => {
    const t = await text(page, '#audit-verify [data-alert]');
    assert(/verified/.test(t), t);
  });
  await check('the audit filter by action shows only those entries', async () => {
    await page.fill('#audit-action', 'quota.set');
    await page.click('form[aria-label="Filter the audit trail"] button[type=submit]');
    await page.waitForFunction(() => {
      const tds = [...document.querySelectorAll('#audit-out tbody tr td:nth-child(5)')];
      return tds.length > 0 && tds.every((t) => t.textContent === 'quota.set');
    }, null, { timeout: 10000 });
    const staffSet = await page.$$eval('#audit-out tbody tr td:nth-child(3)', (tds) => tds.map((t) => t.textContent));
    assert(staffSet.includes(env('STAFF_NAME', 'cstaff')), `actors: ${staffSet.join(',')}`);
  });
  await shot(page, 'auditor-audit-laptop');
  await check('no console error for the auditor', () => assert(errors.length === 0, errors.join(' | ')));
  await ctx.close();
}

async function onPhone(browser) {
  const { ctx, page, errors } = await open(browser, PHONE);
  await shot(page, 'signin-phone');
  await signIn(page, T.staff);
  await go(page, 'quotas');
  await page.waitForSelector('#quota-cards article canvas');
  await check('on a phone the page does not scroll sideways', async () => {
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    assert(w <= PHONE.width + 1, `page is ${w} px wide`);
  });
  await shot(page, 'staff-quotas-phone');
  await go(page, 'queue');
  await page.waitForSelector('#jobs-list table');
  await shot(page, 'staff-queue-phone');
  await check('no console error on a phone', () => assert(errors.length === 0, errors.join(' | ')));
  await ctx.close();
}

main().then(() => process.exit(failed ? 1 : 0), (e) => { ko('browser run', e && e.stack ? e.stack : e); process.exit(1); });
