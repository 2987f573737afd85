// domsec probe against a real receive side (adatum's manifests on a ReceiveListener): every step
// passes when both sides trust each other, and the failing step says why when one side does not.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it, type TestContext } from 'node:test';
import { loadConfiguration } from '../../src/config/index.js';
import { probeCommand } from '../../src/cli/probe.js';
import type { Output } from '../../src/cli/output.js';
import { parseBinding } from '../../src/engine/addresses.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { ProtocolLog } from '../../src/engine/protocol-log.js';
import { ReceiveListener } from '../../src/engine/receive.js';
import { ADATUM, TREY, writeLab, writeManifests } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

function capture(): Output & { text: () => string } {
  let stdout = '';
  let stderr = '';
  return {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    color: false,
    interactive: false,
    text: () => `${stdout}${stderr}`,
  };
}

let root = '';
let removeRoot: () => Promise<void> = () => Promise.resolve();
before(async () => {
  const temp = await tempDir('domsec-probe-');
  removeRoot = temp.remove;
  root = temp.path;
  await writeLab(root);
});
after(() => removeRoot());

const bindings = { internalBinding: '127.0.0.1:0', adminListen: '127.0.0.1:0' };

/** adatum's receive side from its manifests; `trust` says whether it trusts treyresearch's root. */
async function startAdatum(t: TestContext, trust: 'root' | 'system'): Promise<number> {
  const dir = await writeManifests({
    root,
    org: ADATUM,
    partner: TREY,
    partnerBinding: '127.0.0.1:0',
    partnerRoute: { host: '127.0.0.1', port: 9 },
    trust,
    ...bindings,
  });
  const load = await loadConfiguration([dir]);
  assert.ok(load.config, JSON.stringify(load.diagnostics));
  const generation = buildGeneration(load.config, 1);
  const protocolLog = new ProtocolLog(null);
  const listener = new ReceiveListener({
    binding: parseBinding('127.0.0.1:0'),
    generation: () => generation,
    sink: { accept: () => Promise.reject(new Error('a probe sends no message')) },
    log: memoryLog(),
    protocolLog,
    closeTimeout: 500,
  });
  await listener.listen();
  t.after(async () => {
    await listener.close();
    await protocolLog.close();
  });
  const port = listener.address()?.port;
  assert.ok(port !== undefined);
  return port;
}

/** treyresearch's manifests, routing adatum.com to `port`. */
function treyManifests(port: number, trust: 'root' | 'system'): Promise<string> {
  return writeManifests({
    root,
    org: TREY,
    partner: ADATUM,
    partnerBinding: '127.0.0.1:0',
    partnerRoute: { host: '127.0.0.1', port },
    trust,
    ...bindings,
  });
}

async function probe(dir: string, domain = 'adatum.com') {
  const out = capture();
  const code = await probeCommand(domain, { file: [dir], output: 'text', timeout: 5 }, out);
  return { code, text: out.text() };
}

describe('domsec probe', () => {
  it('passes every step and exits 0 when both sides trust each other', async (t) => {
    const port = await startAdatum(t, 'root');
    const { code, text } = await probe(await treyManifests(port, 'root'));
    assert.equal(code, 0, text);
    for (const step of [
      'partner',
      'send connector',
      'next hops',
      'connect',
      'STARTTLS offered',
      'TLS handshake',
      'partner certificate',
      'our certificate accepted',
    ]) {
      assert.match(text, new RegExp(`\\[pass\\] ${step}: `), `${step} in\n${text}`);
    }
    assert.doesNotMatch(text, /FAIL/);
    assert.match(text, /names mail\.adatum\.com, adatum\.com/);
    assert.match(text, /OK: mail to adatum\.com would be sent domain-secured/);
  });

  it('fails at the partner certificate with 454 4.7.5 and the reason when we do not trust its CA', async (t) => {
    const port = await startAdatum(t, 'root');
    const { code, text } = await probe(await treyManifests(port, 'system'));
    assert.equal(code, 1, text);
    assert.match(
      text,
      /\[FAIL\] partner certificate: 454 4\.7\.5 Certificate validation failure: /,
    );
    assert.doesNotMatch(text, /our certificate accepted/);
  });

  it('fails at our certificate, quoting the partner’s 454 4.7.5, when the partner does not trust us', async (t) => {
    const port = await startAdatum(t, 'system');
    const { code, text } = await probe(await treyManifests(port, 'root'));
    assert.equal(code, 1, text);
    assert.match(text, /\[pass\] partner certificate/);
    assert.match(
      text,
      /\[FAIL\] our certificate accepted: MAIL FROM:<postmaster@treyresearch\.net> answered 454 4\.7\.5/,
    );
  });

  it('probes a domain that is not a send-secure partner as a TLS policy, failing where no connector covers it', async () => {
    const { code, text } = await probe(await treyManifests(9, 'root'), 'fabrikam.com');
    assert.equal(code, 1);
    assert.match(text, /^TLS to fabrikam\.com$/m);
    assert.match(text, /\[pass\] partner: fabrikam\.com is not a send-secure partner/);
    assert.match(
      text,
      /\[FAIL\] send connector: 451 4\.4\.0 No send connector covers the recipient domain/,
    );
    assert.match(text, /^FAILED: TLS to fabrikam\.com would not work$/m);
  });

  it('fails at connect, naming the hop, when nothing listens there', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    await new Promise((resolve) => server.close(resolve));
    assert.ok(typeof address === 'object' && address !== null);
    const { code, text } = await probe(await treyManifests(address.port, 'root'));
    assert.equal(code, 1, text);
    const hop = `next hop 127\\.0\\.0\\.1 127\\.0\\.0\\.1:${address.port}`;
    assert.match(text, new RegExp(`${hop}\\n    \\[FAIL\\] connect: `));
  });
});
