// The status page's TLS policy results in a real headless Chromium, from the overview of a real
// engine whose metrics counted send sessions: one row per policy domain with successful and
// failed sessions and the failures by RFC 8460 result type, `other` last, and a domain's text
// rendered as text, never as HTML.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { overview } from '../../src/control/overview.js';
import {
  STATUS_CSP,
  STATUS_HTML,
  STATUS_PATH,
  STATUS_SCRIPT,
  STATUS_SCRIPT_PATH,
  STATUS_STYLE,
  STATUS_STYLE_PATH,
} from '../../src/control/status-page.js';
import { requireDomainName } from '../../src/domain-name.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const CHROMIUM = process.env.DOMSEC_CHROMIUM ?? '/usr/bin/chromium';
const ORIGIN = 'http://status.domsec.test';

describe('status page: TLS policy results', () => {
  let state: TempDir;
  let running: RunningEngine;
  let browser: Browser;

  before(async () => {
    state = await tempDir('domsec-policy-page-');
    running = await startEngine(state.path);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
      timeout: 30_000,
    });
  });
  after(async () => {
    await browser?.close();
    await running?.stop();
    await state?.remove();
  });

  it('shows each policy domain with its successes and failures by result type', async () => {
    const hop = {
      host: 'mx',
      address: '192.0.2.1',
      localAddress: null,
      policyStrings: [],
      mxHost: [],
    };
    const sessions: [string, 'sts' | 'tlsa' | 'no-policy-found', string][] = [
      ['fabrikam.example', 'sts', 'success'],
      ['fabrikam.example', 'sts', 'certificate-host-mismatch'],
      ['fabrikam.example', 'sts', 'certificate-host-mismatch'],
      ['contoso.example', 'tlsa', 'tlsa-invalid'],
      ['xn--bcher-kva.example', 'no-policy-found', 'success'],
    ];
    for (const [domain, policyType, result] of sessions)
      running.engine.metrics.observe({
        type: 'send.tls-result',
        domain: requireDomainName(domain),
        policyType,
        result: result as 'success',
        ...hop,
      });
    const view = overview(running.engine);
    assert.deepEqual(
      view.policyResults.map((p) => [p.domain, p.successful, p.failed]),
      [
        ['contoso.example', 0, 1],
        ['fabrikam.example', 1, 2],
        ['xn--bcher-kva.example', 1, 0],
      ],
    );
    // A hostile name in the data (a domain is canonical, but the page must not trust that).
    const body = JSON.stringify({
      ...view,
      policyResults: [
        ...view.policyResults,
        {
          domain: '<img src=x onerror=alert(1)>',
          policyTypes: ['sts'],
          successful: 0,
          failed: 1,
          failures: [{ result: 'validation-failure', sessions: 1 }],
        },
      ],
    });

    const page = await browser.newPage();
    try {
      await page.addInitScript("sessionStorage.setItem('domsec.adminToken', 'test-token')");
      const files: Record<string, [string, string]> = {
        [STATUS_PATH]: ['text/html', STATUS_HTML],
        [STATUS_SCRIPT_PATH]: ['text/javascript', STATUS_SCRIPT],
        [STATUS_STYLE_PATH]: ['text/css', STATUS_STYLE],
        '/v1/overview': ['application/json', body],
      };
      await page.route(`${ORIGIN}/**`, (route) => {
        const file = files[new URL(route.request().url()).pathname];
        if (file === undefined) return route.fulfill({ status: 404, body: '' });
        return route.fulfill({
          status: 200,
          contentType: file[0],
          headers: { 'content-security-policy': STATUS_CSP },
          body: file[1],
        });
      });
      await page.goto(`${ORIGIN}${STATUS_PATH}`);
      const rows = page.locator('#policy-results tbody tr');
      await rows.nth(3).waitFor({ timeout: 15_000 });
      const cells: string[][] = [];
      for (let index = 0; index < (await rows.count()); index += 1)
        cells.push(await rows.nth(index).locator('td').allTextContents());
      assert.deepEqual(cells, [
        ['contoso.example', 'tlsa', '0', '1', 'tlsa-invalid 1'],
        ['fabrikam.example', 'sts', '1', '2', 'certificate-host-mismatch 2'],
        ['xn--bcher-kva.example', 'no-policy-found', '1', '0', ''],
        ['<img src=x onerror=alert(1)>', 'sts', '0', '1', 'validation-failure 1'],
      ]);
      assert.equal(await page.locator('#policy-results img').count(), 0);
      assert.equal(await page.locator('#policy-results-empty').isVisible(), false);
    } finally {
      await page.close();
    }
  });
});
