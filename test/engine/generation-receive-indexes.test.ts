// What the generation build computes once for receive: each connector's parsed limits, and the
// remote ranges of the receive-secure partners that capacity reserves room for.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildGeneration } from '../../src/engine/generation.js';
import { fromPartnerRange } from '../../src/engine/receive/capacity.js';
import { partnerDomain, receiveConnector, runtimeConfig } from '../support/runtime-config.js';

describe('the generation build, for receive', () => {
  it('parses each receive connector limits once, in the generation', () => {
    const generation = buildGeneration(
      runtimeConfig({
        receiveConnectors: [
          receiveConnector('slow', {
            connectionInactivityTimeout: '300ms',
            stressInactivityTimeout: '100ms',
            connectionTimeout: '2s',
            maxHeaderSize: '1KB',
            maxRecipientsPerMessage: 3,
          }),
        ],
      }),
      1,
    );
    const [connector] = generation.receiveConnectors;
    assert.ok(connector !== undefined);
    assert.deepEqual(
      {
        inactivityTimeout: connector.limits.inactivityTimeout,
        stressInactivityTimeout: connector.limits.stressInactivityTimeout,
        sessionTimeout: connector.limits.sessionTimeout,
        maxHeaderSize: connector.limits.maxHeaderSize,
        maxRecipientsPerMessage: connector.limits.maxRecipientsPerMessage,
      },
      {
        inactivityTimeout: 300,
        stressInactivityTimeout: 100,
        sessionTimeout: 2_000,
        maxHeaderSize: 1_024,
        maxRecipientsPerMessage: 3,
      },
    );
    // Read, not recomputed: the same object each time a session is placed.
    assert.equal(generation.receiveConnectors[0]?.limits, connector.limits);
  });

  it('keeps the remote ranges of receive-secure partners only', () => {
    const generation = buildGeneration(
      runtimeConfig({
        partners: [
          partnerDomain('adatum', { domain: 'adatum.com', remoteIPRanges: ['192.0.2.0/24'] }),
          partnerDomain('contoso', {
            domain: 'contoso.com',
            domainSecure: { send: true, receive: false },
            remoteIPRanges: ['198.51.100.0/24'],
          }),
        ],
      }),
      1,
    );
    assert.equal(generation.partnerRanges.length, 1);
    assert.equal(fromPartnerRange(generation, '192.0.2.7'), true);
    assert.equal(fromPartnerRange(generation, '198.51.100.7'), false, 'send-only partner');
    assert.equal(fromPartnerRange(generation, '203.0.113.1'), false);
  });
});
