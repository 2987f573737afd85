// The README's first command: the demo runs the whole story on real engine processes and exits 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { tempDir } from '../support/tmp.js';

const DEMO = fileURLToPath(new URL('../../dist/demo/main.js', import.meta.url));

describe('npm run demo', () => {
  let work: Awaited<ReturnType<typeof tempDir>> | undefined;
  after(async () => work?.remove());

  it('queues on an untrusted partner certificate, then delivers domain-secured after apply', async () => {
    work = await tempDir('domsec-demo-');
    const { code, output } = await new Promise<{ code: number; output: string }>(
      (resolve, reject) => {
        const child = spawn(process.execPath, [DEMO], {
          cwd: work?.path,
          env: { ...process.env, NO_COLOR: '1' },
          timeout: 90_000,
        });
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.once('error', reject);
        child.once('close', (status) => resolve({ code: status ?? -1, output }));
      },
    );
    assert.equal(code, 0, output);
    assert.match(
      output,
      /451 4\.4\.0 Primary target IP address responded with: "454 4\.7\.5 Certificate validation failure\."/,
    );
    assert.match(output, /~ PartnerDomain\/adatum/);
    assert.match(output, /\+ TrustAnchor\/adatum-root/);
    assert.match(output, /X-Domsec-AuthAs: Partner/);
    assert.match(output, /x-domsec=pass/);
    assert.match(output, /Both engines stopped\./);
  });
});
