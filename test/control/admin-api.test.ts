// The admin API: the token is required, a stale plan is refused, and an apply that cannot bind
// leaves the previous generation running with its listeners answering.
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlClient, ControlError } from '../../src/control/client.js';
import { startEngine, type RunningEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';
import { banner } from '../support/banner.js';

describe('admin API', () => {
  let state: Awaited<ReturnType<typeof tempDir>>;
  let running: RunningEngine;
  let port: number;

  before(async () => {
    state = await tempDir();
    running = await startEngine(state.path);
    port = await freePort();
    await running.client.apply(
      runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${port}`] } }),
    );
  });
  after(async () => {
    await running.stop();
    await state.remove();
  });

  it('refuses requests without the token or with a wrong one (401)', async () => {
    const response = await fetch(`${running.control.url}/v1/state`);
    assert.equal(response.status, 401);
    const body = await response.text();
    assert.doesNotMatch(body, new RegExp(running.token));
    await assert.rejects(
      new ControlClient(running.control.url, `${running.token}x`).state(),
      (error: unknown) => {
        assert.ok(error instanceof ControlError);
        assert.equal(error.code, 'unauthorized');
        return true;
      },
    );
  });

  it('reports what runs: generation, listeners bound, the certificate fingerprint, never a key', async () => {
    const text = await (
      await fetch(`${running.control.url}/v1/state`, {
        headers: { authorization: `Bearer ${running.token}` },
      })
    ).text();
    assert.doesNotMatch(text, /PRIVATE KEY/);
    const engineState = JSON.parse(text) as Awaited<ReturnType<ControlClient['state']>>;
    assert.equal(engineState.generation, 1);
    assert.deepEqual(
      engineState.listeners.map((l) => [l.binding, l.listening, l.port]),
      [[`127.0.0.1:${port}`, true, port]],
    );
    assert.ok(
      engineState.objects.some(
        (o) => o.kind === 'Certificate' && typeof o.spec.fingerprint === 'string',
      ),
    );
  });

  it('refuses a plan made against an older generation (stale plan)', async () => {
    await assert.rejects(
      running.client.apply(
        runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${port}`] } }),
        0,
      ),
      (error: unknown) => {
        assert.ok(error instanceof ControlError);
        assert.equal(error.code, 'stale-plan');
        assert.match(error.message, /generation 0.*now at 1/);
        return true;
      },
    );
  });

  it('keeps the previous generation and its listeners when an apply cannot bind a port', async () => {
    const occupied: Server = createServer();
    const busyPort = await freePort();
    await new Promise<void>((resolve) => occupied.listen(busyPort, '127.0.0.1', resolve));
    try {
      const broken = runtimeConfig({
        receiveConnectors: [
          receiveConnector('from-partners', { bindings: [`127.0.0.1:${port}`] }),
          receiveConnector('second', {
            bindings: [`127.0.0.1:${busyPort}`],
            domainSecure: false,
            requireTls: false,
          }),
        ],
      });
      await assert.rejects(running.client.apply(broken), (error: unknown) => {
        assert.ok(error instanceof ControlError);
        assert.equal(error.code, 'apply-failed');
        assert.match(
          error.message,
          new RegExp(
            `127\\.0\\.0\\.1:${busyPort} \\(EADDRINUSE\\).*previous configuration keeps running`,
          ),
        );
        return true;
      });
      const after = await running.client.state();
      assert.equal(after.generation, 1);
      assert.equal(after.listeners.length, 1);
      assert.match(await banner(port), /^220 /);
    } finally {
      await new Promise((resolve) => occupied.close(resolve));
    }
  });

  it('refuses a configuration whose key does not match its certificate, keeping the old one', async () => {
    const config = runtimeConfig({ receiveConnector: { bindings: [`127.0.0.1:${port}`] } });
    const [first] = config.certificates;
    assert.ok(first !== undefined);
    first.spec.keyPem = (await import('../support/lab.js')).lab().adatumMail.keyPem;
    await assert.rejects(running.client.apply(config), /private key does not match/);
    assert.equal((await running.client.state()).generation, 1);
  });

  it('refuses an apply whose configuration cannot be saved, and closes the listeners it opened', async () => {
    // A directory where the temporary file must go makes the write fail, even for root.
    const blocker = join(state.path, `applied-config.json.${process.pid}.tmp`);
    await mkdir(blocker);
    const extraPort = await freePort();
    try {
      const config = runtimeConfig({
        receiveConnectors: [
          receiveConnector('from-partners', { bindings: [`127.0.0.1:${port}`] }),
          receiveConnector('second', {
            bindings: [`127.0.0.1:${extraPort}`],
            domainSecure: false,
            requireTls: false,
          }),
        ],
      });
      await assert.rejects(
        running.client.apply(config),
        /cannot save the configuration in the state directory \(EISDIR\); the previous configuration keeps running/,
      );
      const after = await running.client.state();
      assert.equal(after.generation, 1);
      assert.equal(after.listeners.length, 1);
      await assert.rejects(banner(extraPort), /ECONNREFUSED/);
    } finally {
      await rm(blocker, { recursive: true, force: true });
    }
  });
});
