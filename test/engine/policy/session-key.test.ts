// A kept session is reused only for what it was verified for: under a published policy, the same
// domain, mode and TLSA records; a session kept after an MTA-STS testing failure never carries an
// enforce domain's mail, nor one verified for another domain's records.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requireDomainName } from '../../../src/domain-name.js';
import { mtaStsContext, type PublishedPolicy } from '../../../src/engine/policy/session-policy.js';
import { ConnectionCache } from '../../../src/engine/send/connection-cache.js';

const hop = { host: 'mx.shared.example', address: '127.0.0.1', port: 25, preference: 10 };
const host = requireDomainName('mx.shared.example');
const key = (policy: PublishedPolicy | { kind: 'opportunistic' }) =>
  ConnectionCache.key({ hop, policy, connector: 'out' });
const sts = (domain: string, mode: 'enforce' | 'testing'): PublishedPolicy => ({
  kind: 'mta-sts',
  domain: requireDomainName(domain),
  host,
  mode,
  required: mode === 'enforce',
  context: mtaStsContext([]),
});
const dane = (domain: string, byte: number): PublishedPolicy => ({
  kind: 'dane',
  domain: requireDomainName(domain),
  host,
  records: [{ usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, byte) }],
  names: [host],
});

describe('kept sessions under published policies', () => {
  it('keys a session by the policy domain, its mode and its TLSA records', () => {
    assert.notEqual(key(sts('a.example', 'testing')), key(sts('b.example', 'enforce')));
    assert.notEqual(key(sts('a.example', 'testing')), key(sts('a.example', 'enforce')));
    assert.notEqual(key(dane('a.example', 1)), key(dane('a.example', 2)));
    assert.notEqual(key(dane('a.example', 1)), key(dane('b.example', 1)));
    assert.notEqual(key(dane('a.example', 1)), key({ kind: 'opportunistic' }));
    assert.equal(key(dane('a.example', 1)), key(dane('a.example', 1)));
    assert.equal(key(sts('a.example', 'enforce')), key(sts('a.example', 'enforce')));
  });
});
