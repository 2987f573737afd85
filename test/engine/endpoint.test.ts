// formatEndpoint is the one way an endpoint is written (protocol log, listener keys, status,
// bind errors); parseHostPort reads back exactly what it writes, for every IPv4, IPv6 and name.
// The overview finds an IPv6 listener by it: a real engine listening on [::1].
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { OverviewResponse } from '../../src/control/protocol.js';
import { formatEndpoint, parseHostPort } from '../../src/units.js';
import { startEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import { receiveConnector, runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

const port = fc.integer({ min: 0, max: 65_535 });

describe('formatEndpoint', () => {
  it('brackets every IPv6 literal and reads back through parseHostPort', () => {
    fc.assert(
      fc.property(fc.ipV6(), port, (host, p) => {
        const text = formatEndpoint(host, p);
        assert.equal(text, `[${host}]:${p}`);
        assert.deepEqual(parseHostPort(text), { host, port: p });
      }),
      { numRuns: 500 },
    );
  });

  it('writes an IPv4 address or a name as host:port, and reads back', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.domain()), port, (host, p) => {
        const text = formatEndpoint(host, p);
        assert.equal(text, `${host}:${p}`);
        assert.deepEqual(parseHostPort(text), { host, port: p });
      }),
      { numRuns: 500 },
    );
  });

  it('writes an unknown port as given', () => {
    assert.equal(formatEndpoint('::1', '?'), '[::1]:?');
    assert.equal(formatEndpoint('127.0.0.1', '?'), '127.0.0.1:?');
  });
});

describe('an IPv6 listener', () => {
  it('is found listening by the overview, the engine and the overview keying it alike', async () => {
    const state = await tempDir('domsec-endpoint-');
    const running = await startEngine(state.path);
    try {
      const port = await freePort('::1');
      await running.client.apply(
        runtimeConfig({
          receiveConnectors: [receiveConnector('from-partners', { bindings: [`[::1]:${port}`] })],
        }),
      );
      const response = await fetch(`${running.control.url}/v1/overview`, {
        headers: { authorization: `Bearer ${running.token}` },
      });
      const view = (await response.json()) as OverviewResponse;
      assert.deepEqual(view.receiveConnectors[0]?.bindings, [
        { binding: `[::1]:${port}`, listening: true },
      ]);
    } finally {
      await running.stop();
      await state.remove();
    }
  });
});
