#!/usr/bin/env node
/*
 * dashboard.js SPEC.json - drives workq-producer's dashboard (/ui) in
 * Debian's headless Chromium through playwright-core, against the real
 * daemons tests/integration/test_dashboard.c started and the tasks it
 * created (SPEC names them, the tokens, the expected counts and where the
 * screenshots go).  Prints "ok - ..." per assertion; the first failed one
 * prints "not ok - ..." and exits 1.  Exits 2 when Chromium or
 * playwright-core is missing (npm ci in tests/browser: make deps).
 */
'use strict';

const fs = require('fs');
const path = require('path');

const CHROMIUM = process.env.WQ_CHROMIUM || '/usr/bin/chromium';
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const base = 'http://127.0.0.1:' + spec.port;
const shots = spec.artifacts;
let nok = 0;

function ok(what) {
  nok++;
  console.log('ok - ' + what);
}
function fail(what) {
  console.log('not ok - ' + what);
  process.exit(1);
}
function check(cond, what) {
  if (!cond)
    fail(what);
  ok(what);
}

if (!fs.existsSync(CHROMIUM)) {
  console.log('not ok - no Chromium at ' + CHROMIUM + ' (apt-get install chromium: make deps)');
  process.exit(2);
}
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  console.log('not ok - playwright-core is not installed (cd tests/browser && npm ci: make deps): ' + e.message);
  process.exit(2);
}

/* Waits until fn() (run in the test) is true, up to ms; what else it
 * returned last is in the failure. */
async function until(fn, ms, what, soft) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last === true)
        return;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) {
      if (soft)
        return 'within ' + ms + ' ms; last: ' + JSON.stringify(last);
      fail(what + ' (within ' + ms + ' ms; last: ' + JSON.stringify(last) + ')');
    }
    await new Promise(r => setTimeout(r, 250));
  }
}

async function cellText(page, sel) {
  const l = page.locator(sel);
  if (await l.count() !== 1)
    return null;
  return (await l.textContent()).trim();
}

async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  const file = path.join(shots, spec.kind + '-' + name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  ok('screenshot ' + file);
}

/* A fresh tab that logged in with `token`; collects page errors and
 * Content-Security-Policy violations. */
async function login(browser, token, troubles) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  page.on('pageerror', e => troubles.push('page error: ' + e.message));
  page.on('console', m => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text()))
      troubles.push('console: ' + m.text());
  });
  page.on('dialog', d => { troubles.push('dialog: ' + d.message()); d.dismiss(); });
  const resp = await page.goto(base + '/ui/');
  check(resp.status() === 200, 'GET /ui/ answers 200');
  const h = resp.headers();
  const csp = h['content-security-policy'] || '';
  check(/script-src 'self'/.test(csp) && /style-src 'self'/.test(csp) &&
    /default-src 'self'/.test(csp) && /frame-ancestors 'none'/.test(csp) &&
    !/unsafe-inline|unsafe-eval/.test(csp), '/ui/ has a strict Content-Security-Policy: ' + csp);
  check(h['x-content-type-options'] === 'nosniff', '/ui/ answers X-Content-Type-Options: nosniff');
  check(h['referrer-policy'] === 'no-referrer', '/ui/ answers Referrer-Policy: no-referrer');
  await page.waitForSelector('#token');
  if (token === spec.admin)
    await shot(page, 'login');
  await page.fill('#token', 'not-a-token');
  await page.click('#login-button');
  await until(async () => (await cellText(page, '#login-error')) !== '', 10000,
    'an unknown token is refused at login');
  ok('an unknown token is refused at login');
  await page.fill('#token', token);
  await page.click('#login-button');
  await page.waitForSelector('#stats');
  check(await page.evaluate(() => sessionStorage.getItem('workq.token')) === token,
    'the token is kept in sessionStorage');
  check((await ctx.cookies()).length === 0, 'no cookie is set');
  return { ctx, page };
}

/* The overview row of queue q shows `want` in column k. */
async function overviewShows(page, q, k, want) {
  const sel = `#stats tr[data-queue="${q}"] td[data-k="${k}"]`;
  const why = await until(async () => {
    const t = await cellText(page, sel);
    return t === String(want) || 'the cell holds ' + JSON.stringify(t);
  }, 30000, null, true);
  if (why !== undefined) {
    /* what the page was given, for the failure */
    const stats = await page.evaluate(() => fetch('/v1/stats', { headers:
      { Authorization: 'Bearer ' + sessionStorage.getItem('workq.token') } }).then(r => r.text()));
    let brief = stats;
    try {
      const j = JSON.parse(stats);
      brief = JSON.stringify({ broker_error: j.broker_error, queues: j.queues.map(x =>
        ({ queue: x.queue, queued: x.queued, scheduled: x.scheduled, broker: x.broker })) });
    } catch (e) { /* as it came */ }
    fail(`overview: ${q} ${k} = ${want} (${why}); GET /v1/stats: ${brief}`);
  }
  ok(`overview shows ${k} = ${want} for queue ${q}`);
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM });
  const troubles = [];
  try {
    /* ---- admin ---------------------------------------------------------- */
    const { ctx, page } = await login(browser, spec.admin, troubles);
    for (const [q, counts] of Object.entries(spec.overview))
      for (const [k, v] of Object.entries(counts))
        await overviewShows(page, q, k, v);
    await until(async () => await page.locator('#charts figure.chart svg polyline').count() >= 3,
      20000, 'the overview draws the per-minute charts');
    ok('the overview draws the per-minute charts');
    await shot(page, 'overview');

    /* queue detail, filtered */
    await page.goto(base + '/ui/#/queue/' + encodeURIComponent(spec.queue) + '?state=succeeded');
    await until(async () => await page.locator('#tasks tr[data-id]').count() === spec.succeeded,
      20000, 'the queue page lists the succeeded tasks');
    ok('the queue page filtered by state lists ' + spec.succeeded + ' succeeded tasks');
    await shot(page, 'queue');
    check(await page.locator('#tasks tr[data-id] td[data-k="priority"]').allTextContents()
      .then(v => v.length === spec.succeeded && v.every(x => x === 'normal')),
      'the queue page shows each task\'s priority (normal)');

    /* the task with markup everywhere: shown as text, never run */
    await page.goto(base + '/ui/#/task/' + spec.xss_id);
    await page.waitForSelector('#payload');
    await until(async () => (await cellText(page, '#last-error')) === spec.xss_error, 20000,
      'the error with markup is shown as text');
    ok('the error with markup is shown as its text');
    check((await page.textContent('#payload')) === spec.xss_payload,
      'the payload with <script> is shown as its text');
    check((await page.textContent('#task-fields tr[data-k="idempotency_key"] td')) === spec.xss_key,
      'the key with markup is shown as its text');
    check(await page.locator('#main script, #main img, #main iframe').count() === 0,
      'no element was made from task data');
    await shot(page, 'task');

    /* dead letters, the same markup in the list */
    await page.goto(base + '/ui/#/dead?queue=' + encodeURIComponent(spec.queue));
    await until(async () => await page.locator('#dead tr[data-id]').count() === spec.dead_ids.length,
      20000, 'the dead letters page lists the dead tasks');
    ok('the dead letters page lists ' + spec.dead_ids.length + ' dead tasks');
    check((await page.textContent(`#dead tr[data-id="${spec.xss_id}"] td[data-k="key"]`)) === spec.xss_key,
      'the dead list shows the key with markup as text');
    await shot(page, 'dead');

    /* the undecodable message beside them, its bytes downloadable */
    const u = spec.undecodable;
    await until(async () => await page.locator(`#undecodable tr[data-id="${u.id}"]`).count() === 1,
      20000, 'the dead letters page lists the undecodable message');
    ok('the dead letters page lists the undecodable message ' + u.id);
    check((await page.textContent(`#undecodable tr[data-id="${u.id}"] td[data-k="bytes"]`)) === String(u.bytes),
      'its size is shown');
    check((await page.textContent(`#undecodable tr[data-id="${u.id}"] td[data-k="transport"]`)) === spec.kind,
      'its transport is shown');
    check((await page.textContent(`#undecodable tr[data-id="${u.id}"] td[data-k="error"]`)).length > 0,
      'its decoding error is shown');
    const [dl] = await Promise.all([
      page.waitForEvent('download', { timeout: 20000 }),
      page.click(`#undecodable tr[data-id="${u.id}"] button.download`)
    ]);
    const saved = await dl.path();
    check(require('fs').readFileSync(saved).toString('hex') === u.hex,
      'the download holds the message\'s bytes, byte for byte');
    check(dl.suggestedFilename() === 'workq-undecodable-' + u.id + '.bin',
      'the download is named after the message');

    /* replay one dead task: it runs again and succeeds */
    await page.check(`#dead tr[data-id="${spec.replay_id}"] input.pick`);
    await page.click('#dead-replay');
    await page.waitForSelector('#confirm-ok');
    check((await page.textContent('#confirm-text')).includes('1 selected'),
      'replay asks for a confirmation naming 1 task');
    await shot(page, 'dead-confirm');
    await page.click('#confirm-ok');
    await until(async () => /Replayed 1 task/.test(await page.textContent('#notice')), 20000,
      'the replay is reported');
    ok('the replay of 1 dead task is reported');
    await page.goto(base + '/ui/#/task/' + spec.replay_id);
    await until(async () => {
      const t = await cellText(page, '#task-fields tr[data-k="state"] td');
      return t === 'succeeded' || 'state ' + t;
    },
      90000, 'the replayed task succeeds (seen by live refresh)');
    ok('the replayed task is shown succeeded, by the live refresh');
    await until(async () => await page.locator('#attempts tr[data-attempt]').count() === 2, 10000,
      'the replayed task shows its two attempts');
    check(await page.locator('#timeline svg rect.bar').count() === 2,
      'the attempts timeline draws both attempts');
    await shot(page, 'task-replayed');

    /* cancel a waiting (delayed) task from its page */
    await page.goto(base + '/ui/#/task/' + spec.cancel_id);
    await page.waitForSelector('#act-cancel');
    check(await cellText(page, '#task-fields tr[data-k="priority"] td') === 'low',
      'the task page shows the priority it was submitted with (low)');
    await page.click('#act-cancel');
    await page.waitForSelector('#confirm-ok');
    await page.click('#confirm-ok');
    await until(async () => (await cellText(page, '#task-fields tr[data-k="state"] td')) === 'cancelled',
      20000, 'the cancelled task is shown cancelled');
    ok('the waiting task cancelled from its page is shown cancelled');
    check(await page.locator('#act-cancel').count() === 0, 'a cancelled task offers no Cancel');

    /* workers and periodic tasks */
    await page.goto(base + '/ui/#/workers');
    await until(async () => await page.locator('#workers tr[data-status="live"]').count() >= 1, 20000,
      'the workers page lists the live worker');
    ok('the workers page lists the live worker');
    await shot(page, 'workers');
    await page.goto(base + '/ui/#/periodic');
    await until(async () => await page.locator(`#periodic tr[data-name="${spec.periodic}"]`).count() === 1,
      20000, 'the periodic page lists the configured task');
    ok('the periodic page lists ' + spec.periodic);
    await shot(page, 'periodic');

    check(await page.evaluate(() => window.__pwned === undefined && document.title === 'workq'),
      'no script from task data ran (window.__pwned unset, title unchanged)');
    await ctx.close();

    /* ---- read scope --------------------------------------------------- */
    const r = await login(browser, spec.read, troubles);
    const pages = ['#/overview', '#/queue/' + encodeURIComponent(spec.queue),
      '#/dead?queue=' + encodeURIComponent(spec.queue), '#/task/' + spec.xss_id];
    for (const h of pages) {
      await r.page.goto(base + '/ui/' + h);
      await r.page.waitForFunction(() => document.body.hasAttribute('data-refreshed'));
      await until(async () => !(await r.page.evaluate(() => document.body.hasAttribute('data-loading'))),
        10000, 'the page loads');
      check(await r.page.locator('#main table tr').count() > 1, 'read scope sees data on ' + h);
      check(await r.page.locator('button.act, input.act, #dead-replay, #dead-purge, #act-cancel, #act-retry').count() === 0,
        'read scope sees no acting button on ' + h);
    }
    await shot(r.page, 'read-scope');
    const refused = await r.page.evaluate(async (a) => {
      const tok = sessionStorage.getItem('workq.token');
      const post = (p, b) => fetch(p, { method: 'POST', body: JSON.stringify(b),
        headers: { 'Authorization': 'Bearer ' + tok, 'Content-Type': 'application/json' } })
        .then(x => x.status);
      return [await post('/v1/dead:replay', { ids: [a.xss] }),
        await post('/v1/dead:purge', { ids: [a.xss] }),
        await post('/v1/tasks/' + a.xss + ':retry', {})];
    }, { xss: spec.xss_id });
    check(refused.every(s => s === 403), 'the API refuses the read token acting: ' + refused.join(','));
    check(await r.page.evaluate(() => window.__pwned === undefined), 'no script from task data ran (read tab)');
    await r.ctx.close();

    check(troubles.length === 0, 'no page error, dialog or CSP violation: ' + troubles.join(' | '));
  } finally {
    await browser.close();
  }
  console.log(`dashboard ${spec.kind}: ${nok} assertions passed`);
}

main().catch(e => {
  console.log('not ok - ' + (e && e.stack || e));
  process.exit(1);
});
