// Drives the subsync admin dashboard in Debian's Chromium, the way an operator would:
// sign in with a name, find the dead job, press Retry, see it leave `dead`, find the retry
// under that name on the audit page, keep screenshots.
//
//   node dashboard.spec.mjs <dashboard url> <admin token> <screenshot.png> [event id] [name]
//
// Exit 0 on success; non-zero with a one-line reason otherwise. Run by
// crates/admin/tests/browser.rs; install prerequisites with scripts/ensure-chromium.sh.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, token, screenshot, eventId, operatorName = 'Dashboard Tester'] = process.argv.slice(2);
if (!url || !token || !screenshot) {
  console.error('usage: node dashboard.spec.mjs <dashboard url> <admin token> <screenshot.png> [event id] [name]');
  process.exit(2);
}

// Never hang a test run: the whole script gets 60 s.
const deadline = setTimeout(() => {
  console.error('dashboard.spec: timed out after 60 s');
  process.exit(3);
}, 60_000);

const userDataDir = mkdtempSync(join(tmpdir(), 'subsync-chromium-'));
let context;
let page;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15_000);

  // Not signed in: the dashboard sends us to the login page.
  await page.goto(url);
  await page.waitForURL(/\/login/);
  await page.fill('input[name="name"]', operatorName);
  await page.fill('input[name="token"]', token);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith('/login')),
    page.click('button[type="submit"]'),
  ]);

  // The seeded dead job is in the table.
  const row = eventId
    ? page.locator('tbody tr').filter({ has: page.locator('td', { hasText: eventId }) })
    : page.locator('tbody tr[data-state="dead"]').first();
  await row.waitFor();
  const jobId = await row.getAttribute('data-job-id');
  const before = await row.getAttribute('data-state');
  if (before !== 'dead') throw new Error(`expected the job to be dead before retry, found ${before}`);
  const deadTile = await page.locator('a.tile[data-state="dead"] .n').innerText();
  if (Number(deadTile) < 1) throw new Error(`dead tile shows ${deadTile}`);

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot.replace(/\.png$/, '') + '-before.png', fullPage: true });

  // Retry it with its row's button (a POST form with the CSRF token).
  await Promise.all([
    page.waitForURL(/flash=retried/),
    row.getByRole('button', { name: 'Retry' }).click(),
  ]);
  const flash = await page.locator('.flash').innerText();
  const after = await page.locator(`tbody tr[data-job-id="${jobId}"]`).getAttribute('data-state');
  if (after === 'dead') throw new Error('the job is still dead after Retry');

  await page.screenshot({ path: screenshot, fullPage: true });

  // The job page too, for a visual check of the detail view.
  await page.goto(new URL(`/jobs/${jobId}`, url).toString());
  await page.locator('h1').waitFor();
  await page.screenshot({ path: screenshot.replace(/\.png$/, '') + '-job.png', fullPage: true });

  // The audit page, reached through the navigation, shows the retry under our name.
  await Promise.all([page.waitForURL(/\/audit$/), page.click('header nav a[href="/audit"]')]);
  const audited = page.locator('tbody tr[data-action="retry"][data-ok="true"]').filter({
    has: page.locator(`a[href="/jobs/${jobId}"]`),
  });
  await audited.first().waitFor();
  const auditedBy = await audited.first().locator('td').nth(1).innerText();
  if (auditedBy !== operatorName) throw new Error(`the retry is audited under "${auditedBy}", not "${operatorName}"`);
  const signIn = await page.locator('tbody tr[data-action="login"] td').nth(1).innerText();
  if (signIn !== operatorName) throw new Error(`the sign-in is audited under "${signIn}"`);
  await page.screenshot({ path: screenshot.replace(/\.png$/, '') + '-audit.png', fullPage: true });

  // The support view: look a user up by their Stripe customer id from the Entitlements page.
  await Promise.all([page.waitForURL(/\/entitlements$/), page.click('header nav a[href="/entitlements"]')]);
  await page.fill('input[name="user"]', 'cus_1QaZSupport');
  await Promise.all([page.waitForURL(/user=cus_1QaZSupport/), page.getByRole('button', { name: 'Look up' }).click()]);
  const tier = await page.locator('#tier').innerText();
  if (tier !== 'pro') throw new Error(`the support view shows tier "${tier}"`);
  const denied = await page.locator('#features tr.denied td.mono').allInnerTexts();
  if (!denied.includes('itsa.final_declaration')) throw new Error(`denied features: ${denied}`);
  const deadEvent = page.locator('#events tr').filter({ hasText: 'dead job' });
  await deadEvent.first().waitFor();
  await Promise.all([page.waitForURL(/\/events\/evt_1QaZ1mPriceUnmapped$/), deadEvent.first().locator('a').click()]);
  await page.goBack();
  await page.screenshot({ path: screenshot.replace(/\.png$/, '') + '-support.png', fullPage: true });

  console.log(JSON.stringify({ ok: true, jobId, before, after, flash, auditedBy, tier }));
} catch (err) {
  console.error(`dashboard.spec failed: ${err?.message ?? err}`);
  if (page) {
    const text = await page.locator('body').innerText({ timeout: 2_000 }).catch(() => '(no body)');
    console.error(`at ${page.url()}:\n${text.slice(0, 2_000)}`);
  }
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  clearTimeout(deadline);
}
