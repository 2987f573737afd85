// MTA-STS policies fetched over HTTPS from a real policy host with a lab CA, found through the lab
// DNS server, kept in the state directory: fetched once per TXT id, kept while unexpired when the
// fetch or the record fails, and never taken from a redirect, a wrong type, an untrusted or
// misnamed certificate or an oversized answer.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { StsPolicyCache } from '../../../src/engine/policy/mta-sts-cache.js';
import { PolicyResolver } from '../../../src/engine/policy/resolver.js';
import { requireDomainName } from '../../../src/domain-name.js';
import { createCertificateAuthority, issueCertificate } from '../../../src/pki/lab.js';
import { startDnsServer, type DnsServer } from '../../support/dns-server.js';
import { startPolicyHost, type PolicyHost } from '../../support/policy-host.js';
import { tempDir, type TempDir } from '../../support/tmp.js';

const POLICY = 'version: STSv1\nmode: enforce\nmx: *.fabrikam.example\nmax_age: 86400\n';
const fabrikam = requireDomainName('fabrikam.example');

describe('MTA-STS policy cache', () => {
  const ca = createCertificateAuthority({ commonName: 'Policy Lab CA' });
  const stranger = createCertificateAuthority({ commonName: 'Stranger Web CA' });
  let dns: DnsServer;
  let host: PolicyHost;
  let state: TempDir;
  let clock = Date.now();

  before(async () => {
    host = await startPolicyHost(
      issueCertificate(ca, {
        commonName: 'mta-sts.fabrikam.example',
        dnsNames: ['mta-sts.fabrikam.example'],
      }),
      { status: 200, contentType: 'text/plain', body: POLICY },
    );
    dns = await startDnsServer({
      '_mta-sts.fabrikam.example': { TXT: ['v=STSv1; id=one'] },
      'mta-sts.fabrikam.example': { A: ['127.0.0.1'] },
    });
  });
  after(async () => {
    await host.close();
    await dns.close();
  });
  afterEach(() => state.remove());
  beforeEach(async () => {
    state = await tempDir();
    clock = Date.now();
    host.response = { status: 200, contentType: 'text/plain', body: POLICY };
    host.requests.length = 0;
    dns.zones.set('_mta-sts.fabrikam.example', { TXT: ['v=STSv1; id=one'] });
    dns.failing.clear();
  });

  const cache = (extraCas = [ca.certPem]) => {
    const kept = new StsPolicyCache(join(state.path, 'mta-sts'), () => clock);
    const fetch = {
      resolver: new PolicyResolver({
        servers: [dns.server],
        validating: false,
        timeoutMs: 500,
        tries: 1,
      }),
      extraCas,
      port: host.port,
      timeoutMs: 3_000,
      // The lab's policy host is on loopback.
      allowInternalAddresses: true,
    };
    return { lookup: (domain: typeof fabrikam) => kept.lookup(domain, fetch) };
  };

  it('fetches the policy, keeps it in the state directory, and does not fetch again for the same id', async () => {
    const first = await cache().lookup(fabrikam);
    assert.equal(first.source, 'fetched');
    assert.deepEqual(first.policy, { mode: 'enforce', mx: ['*.fabrikam.example'], maxAge: 86400 });
    assert.deepEqual(host.requests, ['/.well-known/mta-sts.txt']);
    const kept = JSON.parse(
      await readFile(join(state.path, 'mta-sts', 'fabrikam.example.json'), 'utf8'),
    );
    assert.equal(kept.id, 'one');
    const again = await cache().lookup(fabrikam);
    assert.equal(again.source, 'cache');
    assert.equal(host.requests.length, 1);
  });

  it('fetches again when the id changes', async () => {
    await cache().lookup(fabrikam);
    dns.zones.set('_mta-sts.fabrikam.example', { TXT: ['v=STSv1; id=two'] });
    host.response = {
      status: 200,
      contentType: 'text/plain',
      body: POLICY.replace('enforce', 'testing'),
    };
    const changed = await cache().lookup(fabrikam);
    assert.equal(changed.source, 'fetched');
    assert.equal(changed.policy?.mode, 'testing');
    assert.equal(host.requests.length, 2);
  });

  it('keeps an unexpired policy when the fetch fails, the record goes or its look-up fails; drops it once expired', async () => {
    await cache().lookup(fabrikam);
    dns.zones.set('_mta-sts.fabrikam.example', { TXT: ['v=STSv1; id=two'] });
    host.response = { status: 500, contentType: 'text/plain', body: 'down' };
    const failed = await cache().lookup(fabrikam);
    assert.equal(failed.source, 'cache');
    assert.equal(failed.policy?.mode, 'enforce');
    assert.match(failed.problems.join(), /HTTP 500, not 200/);
    dns.zones.set('_mta-sts.fabrikam.example', {});
    assert.equal((await cache().lookup(fabrikam)).policy?.mode, 'enforce');
    dns.failing.add('_mta-sts.fabrikam.example');
    assert.equal((await cache().lookup(fabrikam)).policy?.mode, 'enforce');
    clock += 86_401_000;
    const expired = await cache().lookup(fabrikam);
    assert.equal(expired.source, 'none');
    assert.equal(expired.policy, undefined);
  });

  it('has no policy without a record and without a cache', async () => {
    dns.zones.set('_mta-sts.fabrikam.example', { TXT: ['v=STSv1; id=one', 'v=STSv1; id=two'] });
    const none = await cache().lookup(fabrikam);
    assert.equal(none.policy, undefined);
    assert.equal(host.requests.length, 0);
  });

  const refusals: [string, () => void, RegExp][] = [
    [
      'a redirect',
      () =>
        (host.response = {
          status: 301,
          body: '',
          headers: { location: 'https://elsewhere.example/' },
        }),
      /HTTP 301, not 200/,
    ],
    [
      'a type other than text/plain',
      () => (host.response = { status: 200, contentType: 'text/html', body: POLICY }),
      /content type "text\/html"/,
    ],
    [
      'an oversized policy',
      () =>
        (host.response = {
          status: 200,
          contentType: 'text/plain',
          body: POLICY + 'x'.repeat(70_000),
        }),
      /larger than 65536 bytes/,
    ],
    [
      'a policy that does not parse',
      () =>
        (host.response = {
          status: 200,
          contentType: 'text/plain',
          body: 'version: STSv1\nmode: enforce\n',
        }),
      /does not parse/,
    ],
  ];
  for (const [what, arrange, reason] of refusals) {
    it(`takes no policy from ${what}`, async () => {
      arrange();
      const result = await cache().lookup(fabrikam);
      assert.equal(result.policy, undefined);
      assert.match(result.problems.join(), reason);
    });
  }

  it('takes no policy from a host whose certificate chains to no trusted CA', async () => {
    const result = await cache([stranger.certPem]).lookup(fabrikam);
    assert.equal(result.policy, undefined);
    assert.match(
      result.problems.join(),
      /self.signed|unable to verify|unable to get local issuer/i,
    );
  });

  it('takes no policy from a trusted certificate for another name, or naming the host only in its CN', async () => {
    for (const [names, shown] of [
      [
        { commonName: 'www.fabrikam.example', dnsNames: ['www.fabrikam.example'] },
        'www.fabrikam.example',
      ],
      // RFC 9525 has no CN-ID: Node's own check would take the subject CN of a certificate without SANs.
      [{ commonName: 'mta-sts.fabrikam.example' }, 'nothing in its subjectAltName'],
    ] as [{ commonName: string; dnsNames?: string[] }, string][]) {
      const misnamed = await startPolicyHost(issueCertificate(ca, names), {
        status: 200,
        contentType: 'text/plain',
        body: POLICY,
      });
      try {
        const result = await new StsPolicyCache(join(state.path, 'mta-sts')).lookup(fabrikam, {
          resolver: new PolicyResolver({
            servers: [dns.server],
            validating: false,
            timeoutMs: 500,
            tries: 1,
          }),
          extraCas: [ca.certPem],
          port: misnamed.port,
          timeoutMs: 3_000,
          allowInternalAddresses: true,
        });
        assert.equal(result.policy, undefined);
        assert.equal(result.failure, 'sts-webpki-invalid');
        assert.ok(
          result.problems
            .join()
            .includes(`the certificate names ${shown}, not mta-sts.fabrikam.example`),
          result.problems.join(),
        );
        assert.equal(misnamed.requests.length, 0);
      } finally {
        await misnamed.close();
      }
    }
  });

  it('refreshes a policy in use before it expires though its id stays, and keeps it when the refresh fails', async () => {
    const start = clock;
    await cache().lookup(fabrikam);
    clock = start + 3_600_000;
    assert.equal((await cache().lookup(fabrikam)).source, 'cache');
    assert.equal(host.requests.length, 1);
    // Half its max_age (a day here, at most a day anyway) later: fetched again, fresh until +1.5 d.
    clock = start + 43_200_000;
    host.response = {
      status: 200,
      contentType: 'text/plain',
      body: POLICY.replace('86400', '86401'),
    };
    const refreshed = await cache().lookup(fabrikam);
    assert.equal(refreshed.source, 'fetched');
    assert.equal(refreshed.policy?.maxAge, 86401);
    assert.equal(host.requests.length, 2);
    // A day after the first fetch, its first max_age over, the look-ups blocked: still in force.
    clock = start + 86_400_000 + 60_000;
    dns.failing.add('_mta-sts.fabrikam.example');
    assert.equal((await cache().lookup(fabrikam)).policy?.mode, 'enforce');
    dns.failing.clear();
    // A refresh that fails keeps the cached policy in force.
    clock = start + 43_200_000 + 43_200_500;
    host.response = { status: 503, contentType: 'text/plain', body: 'down' };
    const kept = await cache().lookup(fabrikam);
    assert.equal(kept.source, 'cache');
    assert.equal(kept.policy?.mode, 'enforce');
    assert.match(kept.problems.join(), /HTTP 503/);
  });
});
