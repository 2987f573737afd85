// The status page in a real headless Chromium: it asks for the token and keeps it in the session
// only, shows each partner's domain security after a real secured exchange and after refusals,
// updates without a reload, retries, suspends and resumes a queue from its buttons, and renders
// manifest text as text.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { lab } from '../support/lab.js';
import {
  eventually,
  fabrikamFailed,
  startScenario,
  type OperatorScenario,
} from './operator-scenario.js';

const CHROMIUM = process.env.DOMSEC_CHROMIUM ?? '/usr/bin/chromium';
const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const WAIT_MS = 20_000; // the page refreshes every 3 s; two-way concurrency on two cores is slow

describe('status page', () => {
  let scenario: OperatorScenario;
  let browser: Browser;
  let page: Page;

  before(async () => {
    await mkdir(OUTPUT, { recursive: true });
    scenario = await startScenario();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Chromium's sandbox cannot start as root (CI containers run tests as root).
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
      timeout: 30_000,
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.setDefaultTimeout(WAIT_MS);
  });
  after(async () => {
    await browser?.close();
    await scenario?.close();
  });

  /** The text of a partner's cell in one direction. */
  const partnerCell = (domain: string, direction: 'send' | 'receive') =>
    page.locator(`#partners tr[data-partner="${domain}"] td.${direction}`);

  it('serves the shell without the token, asks for it, and refuses a wrong one', async () => {
    const { control, token } = scenario.running;
    const overview = await fetch(`${control.url}/v1/overview`);
    assert.equal(overview.status, 401, 'the data needs the token');
    const shell = await fetch(`${control.url}/status`);
    assert.equal(shell.status, 200);
    assert.match(shell.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.doesNotMatch(await shell.text(), new RegExp(token));

    await page.goto(`${control.url}/status`);
    await page.locator('#login').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#view').isVisible(), false);
    await page.fill('#token', `${token}x`);
    await page.click('#login button[type=submit]');
    await page.locator('#login-error', { hasText: 'the token was refused' }).waitFor();
    assert.equal(await page.locator('#view').isVisible(), false);

    await page.fill('#token', token);
    await page.click('#login button[type=submit]');
    await page.locator('#view').waitFor({ state: 'visible' });
    // Evaluated in the page (a string: the test is compiled without the DOM's types).
    const storage: unknown = await page.evaluate(
      "({ session: sessionStorage.getItem('domsec.adminToken'), local: localStorage.length, cookie: document.cookie })",
    );
    assert.deepEqual(storage, { session: token, local: 0, cookie: '' });
    assert.equal(
      await page.locator('#organization-name').textContent(),
      'treyresearch (mail.treyresearch.net)',
    );
    // Configured, never seen: neither secured nor failing yet; fabrikam is send-only.
    assert.match((await partnerCell('adatum.com', 'send').textContent()) ?? '', /no session yet/);
    assert.match(
      (await partnerCell('fabrikam.com', 'receive').textContent()) ?? '',
      /not configured/,
    );
    assert.equal(
      await page
        .locator('#receive-connectors tr[data-connector="from-partners"] td')
        .nth(1)
        .textContent(),
      `127.0.0.1:${scenario.partnerPort}`,
    );
  });

  it('shows the partner secured both ways, with the verified certificate, after a real exchange', async () => {
    assert.equal((await scenario.receiveSecured()).code, 250);
    assert.equal((await scenario.sendTo('bob@adatum.com')).code, 250);
    await eventually('delivery to the partner', () =>
      scenario.partner.messages.length === 1 ? true : undefined,
    );
    // No reload: the page's own refresh brings the change.
    for (const direction of ['send', 'receive'] as const) {
      const cell = partnerCell('adatum.com', direction);
      await cell.locator('.mark.secured').waitFor();
      const text = (await cell.textContent()) ?? '';
      assert.match(text, /last verified: CN=mail\.adatum\.com/);
      assert.ok(text.includes(lab().adatumMail.fingerprint), `fingerprint shown (${direction})`);
      assert.match(text, /expires /);
    }
    await page.screenshot({ path: `${OUTPUT}status-page-secured.png`, fullPage: true });
  });

  it('shows refusals as failing with their reason, the queue with its error, and retries it', async () => {
    assert.equal((await scenario.receiveImpostor()).code, 454);
    assert.equal((await scenario.sendTo('carol@fabrikam.com')).code, 250);
    await fabrikamFailed(scenario.running);

    const fabrikam = partnerCell('fabrikam.com', 'send');
    await fabrikam.locator('.mark.failing').waitFor();
    assert.match(
      (await fabrikam.textContent()) ?? '',
      /refused: certificate is not issued by a trust anchor of partner fabrikam\.com/,
    );
    // adatum's last session was an impostor: failing, and the certificate verified before stays.
    const adatum = partnerCell('adatum.com', 'receive');
    await adatum.locator('.mark.failing').waitFor();
    assert.match((await adatum.textContent()) ?? '', /last verified: CN=mail\.adatum\.com/);

    const queue = page.locator('#queues tr[data-domain="fabrikam.com"]');
    await queue.waitFor();
    assert.match((await queue.locator('td.last-error').textContent()) ?? '', /4\.7\.5/);
    const before = scenario.running.engine
      .queuedMessages()
      .find((m) => m.nextHopDomain === 'fabrikam.com')?.attempts;
    assert.equal(before, 1);
    await queue.locator('button.retry').click();
    await eventually('the retried attempt', () =>
      (scenario.running.engine.queuedMessages().find((m) => m.nextHopDomain === 'fabrikam.com')
        ?.attempts ?? 0) >= 2
        ? true
        : undefined,
    );
    await page.screenshot({ path: `${OUTPUT}status-page-failing.png`, fullPage: true });
  });

  it('suspends a queue from its button (retry disabled meanwhile) and resumes it', async () => {
    const queue = page.locator('#queues tr[data-domain="fabrikam.com"]');
    await queue.locator('button.suspend').click();
    await queue.locator('button.resume').waitFor();
    assert.equal(await queue.locator('td').nth(2).textContent(), 'suspended');
    assert.equal(await queue.locator('button.retry').isDisabled(), true);
    assert.deepEqual(scenario.running.engine.suspendedQueues(), ['fabrikam.com']);
    await queue.locator('button.resume').click();
    await queue.locator('button.suspend').waitFor();
    assert.notEqual(await queue.locator('td').nth(2).textContent(), 'suspended');
    assert.deepEqual(scenario.running.engine.suspendedQueues(), []);
  });

  it('shows the last reconcile, rendering its error as text', async () => {
    const { control, token } = scenario.running;
    const error = '<img src=x id=injected> manifests/partners.yaml:3:1 DS001';
    const response = await fetch(`${control.url}/v1/status`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ outcome: 'invalid', generation: 1, error, reconciler: 'watch test' }),
    });
    assert.equal(response.status, 200);
    await page.locator('#reconcile-error', { hasText: 'DS001' }).waitFor();
    assert.equal(await page.locator('#reconcile-error').textContent(), error);
    assert.equal(await page.locator('#injected').count(), 0);
    assert.match(
      (await page.locator('#reconcile-status').textContent()) ?? '',
      /^invalid at .* by watch test$/,
    );
    assert.match((await page.locator('#reconcile-generation').textContent()) ?? '', /^1 applied /);
  });
});
