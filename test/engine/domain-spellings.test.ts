// One canonical identity per domain: generated spellings of a partner's or an accepted domain
// (case, trailing dot, U-label and A-label, full-width and other compatibility forms, ideographic
// dots, ignorable characters) reach the same partner, TLS policy, queue and mailbox as the
// canonical name, or are refused; never a weaker policy. Pure decisions first, then a real engine
// with a hostile MX on loopback that must never see MAIL FROM for a partner in any spelling.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalConfig } from '../../src/canonical-config.js';
import {
  addressDomain,
  parseAddress,
  parseDomainName,
  requireDomainName,
} from '../../src/domain-name.js';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { groupByDomain } from '../../src/engine/queue/recipients.js';
import { decideRecipient, receiveSecurePartner } from '../../src/engine/receive/policy.js';
import {
  chooseSendConnector,
  sendSecurePartner,
  tlsPolicyFor,
} from '../../src/engine/send/route.js';
import type { RuntimeConfig } from '../../src/model.js';
import { startDnsServer, type DnsServer } from '../support/dns-server.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { LineClient } from '../support/line-client.js';
import {
  internalConnector,
  partnerDomain,
  receiveConnector,
  runtimeConfig,
  sendConnector,
} from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { tempDir, type TempDir } from '../support/tmp.js';

const IDN = 'xn--bcher-kva.example'; // bücher.example
const IDN_UNICODE = 'bücher.example';

// ---------------------------------------------------------------------------------------------
// Spellings

const FULL_WIDTH_OFFSET = 0xff01 - 0x21; // U+FF01..U+FF5E are U+0021..U+007E in full width
const DOTS = ['.', '\u3002', '\uff0e', '\uff61']; // UTS #46 maps all four to "."
const IGNORED = ['\u00ad', '\u200b']; // soft hyphen, zero width space: UTS #46 drops them

/** One character of a label, in any of the forms that map back to it. */
function spelledCharacter(char: string): fc.Arbitrary<string> {
  const forms = new Set([char, char.toUpperCase()]);
  if (/[a-z0-9-]/.test(char)) {
    for (const form of [char, char.toUpperCase()]) {
      forms.add(String.fromCodePoint((form.codePointAt(0) ?? 0) + FULL_WIDTH_OFFSET));
    }
  }
  if (char === 'ü') forms.add('u\u0308').add('U\u0308'); // NFD, either case
  return fc.constantFrom(...forms);
}

/** A spelling of `name` (labels as written, U-labels allowed) that UTS #46 maps to it. */
function spelling(name: string): fc.Arbitrary<string> {
  const labels = name.split('.');
  const label = (text: string) =>
    fc
      .tuple(...[...text].map(spelledCharacter), fc.option(fc.constantFrom(...IGNORED)))
      .map((parts) => {
        const ignorable = parts.pop() ?? null;
        const chars = parts as string[];
        // An ignorable character inside the label (never at its start, where it changes nothing).
        if (ignorable !== null && chars.length > 1) chars.splice(1, 0, ignorable);
        return chars.join('');
      });
  return fc
    .tuple(
      fc.tuple(...labels.map(label)),
      fc.array(fc.constantFrom(...DOTS), { minLength: labels.length, maxLength: labels.length }),
      fc.boolean(),
    )
    .map(
      ([parts, dots, trailing]) =>
        parts.map((part, index) => (index === 0 ? part : `${dots[index] ?? '.'}${part}`)).join('') +
        (trailing ? (dots[0] ?? '.') : ''),
    );
}

/** Every spelling of a partner domain: its A-label or its U-label form, each spelled any way. */
const idnSpelling = fc.oneof(spelling(IDN), spelling(IDN_UNICODE));

/** Characters that must never pass as part of a name, whatever is around them. */
const HOSTILE = [
  '%',
  '/',
  '\\',
  '?',
  '#',
  '@',
  ':',
  '[',
  ']',
  ' ',
  '\t',
  '\u0000',
  '\r',
  '\n',
  '_',
  '*',
  '\uff0f',
  '"',
  "'",
];

// ---------------------------------------------------------------------------------------------
// The generation the decisions run against

/**
 * treyresearch.net (accepted) with two send- and receive-secure partners, adatum.com and the IDN
 * bücher.example, a domain-secure send connector for both and an opportunistic one for the rest.
 */
function config(port = 25, resolverServer?: string): RuntimeConfig {
  return runtimeConfig({
    organization: {
      resolver: { servers: resolverServer === undefined ? [] : [resolverServer], static: {} },
    },
    partners: [
      partnerDomain('adatum', { domain: 'adatum.com' }),
      partnerDomain('buecher', { domain: IDN_UNICODE }),
    ],
    sendConnectors: [
      sendConnector('to-partners', { addressSpaces: ['adatum.com', IDN], port }),
      sendConnector('to-internet', {
        addressSpaces: ['*'],
        domainSecure: false,
        requireTls: false,
        port,
      }),
      // A domain-secure connector for a whole namespace, with no partner for most of it.
      sendConnector('to-partner-namespace', { addressSpaces: ['*.partners.example'], port }),
    ],
  });
}

interface Decisions {
  partner: string | undefined;
  policy: string;
  connector: string | undefined;
  local: boolean;
}

/** What the engine decides for mail to (and from) an address, from the envelope boundary on. */
function decide(generation: Generation, address: string): Decisions | 'refused' {
  const parsed = parseAddress(address);
  if (!parsed.ok || parsed.address === undefined) return 'refused';
  const [[queueDomain] = []] = [...groupByDomain([parsed.address.address])];
  assert.ok(queueDomain !== undefined);
  assert.equal(queueDomain, parsed.address.domain, 'the queue keys on the envelope domain');
  const received = receiveSecurePartner(generation, addressDomain(parsed.address.address));
  const partner = sendSecurePartner(generation, queueDomain);
  assert.equal(received, partner, 'the same partner both ways');
  const connector = chooseSendConnector(generation.sendConnectors, queueDomain);
  const policy =
    connector === undefined ? 'none' : tlsPolicyFor(connector, partner, queueDomain).kind;
  return {
    partner: partner?.name,
    policy,
    connector: connector?.name,
    local: generation.acceptedDomains.has(queueDomain),
  };
}

describe('canonical domain names', () => {
  let generation: Generation;
  before(() => {
    generation = buildGeneration(config(), 1);
  });

  it('maps every generated spelling of a domain to its one canonical form', () => {
    fc.assert(
      fc.property(spelling('adatum.com'), (spelled) => {
        assert.deepEqual(parseDomainName(spelled), { ok: true, name: 'adatum.com' });
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(idnSpelling, (spelled) => {
        assert.deepEqual(parseDomainName(spelled), { ok: true, name: IDN });
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a name holding a delimiter, an escape, white space, a control character or an underscore', () => {
    fc.assert(
      fc.property(
        spelling('adatum.com'),
        fc.constantFrom(...HOSTILE),
        fc.nat(),
        (spelled, hostile, at) => {
          const index = at % (spelled.length + 1);
          const name = spelled.slice(0, index) + hostile + spelled.slice(index);
          assert.equal(parseDomainName(name).ok, false, JSON.stringify(name));
        },
      ),
      { numRuns: 400 },
    );
    for (const name of [
      '%61datum.com',
      'adatum.com/x',
      'adatum.com#',
      '1.2.3.4',
      'a..com',
      'xn--zz.com',
      'a.123',
      '',
    ]) {
      assert.equal(parseDomainName(name).ok, false, name);
    }
  });

  it('gives canonical names that are LDH A-labels and map to themselves, for any input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        const parsed = parseDomainName(text);
        if (!parsed.ok) return;
        assert.match(
          parsed.name,
          /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/,
        );
        assert.equal(domainToASCII(parsed.name), parsed.name);
        assert.deepEqual(parseDomainName(parsed.name), parsed);
      }),
      { numRuns: 1000 },
    );
  });

  it('routes, verifies and queues every spelling of a partner as the partner itself: the same partner, connector and mutual TLS', () => {
    const adatum = decide(generation, 'bob@adatum.com');
    const buecher = decide(generation, `bob@${IDN}`);
    assert.deepEqual(adatum, {
      partner: 'adatum',
      policy: 'domain-secure',
      connector: 'to-partners',
      local: false,
    });
    assert.deepEqual(buecher, {
      partner: 'buecher',
      policy: 'domain-secure',
      connector: 'to-partners',
      local: false,
    });
    fc.assert(
      fc.property(spelling('adatum.com'), fc.constantFrom('bob', 'Bob.Smith'), (spelled, local) => {
        assert.deepEqual(decide(generation, `${local}@${spelled}`), adatum);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(idnSpelling, (spelled) => {
        assert.deepEqual(decide(generation, `bob@${spelled}`), buecher);
      }),
      { numRuns: 300 },
    );
  });

  it('delivers every spelling of an accepted domain locally, never to the Internet', () => {
    const connector = generation.receiveConnectors[0];
    assert.ok(connector !== undefined);
    fc.assert(
      fc.property(spelling('treyresearch.net'), (spelled) => {
        const decided = decide(generation, `bob@${spelled}`);
        assert.notEqual(decided, 'refused');
        assert.equal((decided as Decisions).local, true, spelled);
        const canonical = parseAddress(`bob@${spelled}`);
        assert.ok(canonical.ok && canonical.address !== undefined);
        assert.equal(decideRecipient(generation, connector, canonical.address.address), undefined);
      }),
      { numRuns: 300 },
    );
  });

  it('never gives a near-spelling of a partner a weaker policy than its own canonical name has', () => {
    // Anything mutated: either refused, or decided exactly as the name it maps to is.
    const mutation = fc.tuple(
      spelling('adatum.com'),
      fc.constantFrom(
        ...HOSTILE,
        '\u2215', // DIVISION SLASH: UTS #46 keeps it, so the name is another domain's
        ...DOTS,
        ...IGNORED,
        '\u0430',
        '\u0251',
        'ı',
        'ſ',
        'ß',
        'K',
        '\u212a',
        '-',
        '0',
      ),
      fc.nat(),
    );
    fc.assert(
      fc.property(mutation, ([spelled, inserted, at]) => {
        const index = at % (spelled.length + 1);
        const name = spelled.slice(0, index) + inserted + spelled.slice(index);
        const decided = decide(generation, `bob@${name}`);
        if (decided === 'refused') return;
        const parsed = parseAddress(`bob@${name}`);
        assert.ok(parsed.ok && parsed.address !== undefined);
        const canonical = parsed.address.domain;
        assert.deepEqual(decided, decide(generation, `bob@${canonical}`));
        if (canonical === 'adatum.com') assert.equal(decided.policy, 'domain-secure');
      }),
      { numRuns: 500 },
    );
  });

  it('defers mail routed by a domain-secure connector to a domain no partner covers, naming why', () => {
    const domain = requireDomainName('stranger.partners.example');
    const connector = chooseSendConnector(generation.sendConnectors, domain);
    assert.equal(connector?.name, 'to-partner-namespace');
    assert.ok(connector !== undefined);
    const policy = tlsPolicyFor(connector, sendSecurePartner(generation, domain), domain);
    assert.equal(policy.kind, 'refused');
    assert.match(
      (policy as { reason: string }).reason,
      /to-partner-namespace has domainSecure: true and no PartnerDomain with domainSecure.send matches stranger.partners.example/,
    );
  });

  it('makes every name of a configuration canonical, and names each field that is not a domain', () => {
    const raw = config();
    raw.organization.spec.acceptedDomains = ['TreyResearch.NET.', 'ＴＲＥＹ.example'];
    raw.organization.spec.resolver.static = { 'ADATUM.com.': [{ host: 'MX.Adatum.COM' }] };
    const { config: canonical, problems } = canonicalConfig(raw);
    assert.deepEqual(problems, []);
    assert.deepEqual(canonical.organization.spec.acceptedDomains, [
      'treyresearch.net',
      'trey.example',
    ]);
    assert.deepEqual(canonical.organization.spec.resolver.static, {
      'adatum.com': [{ host: 'mx.adatum.com' }],
    });
    assert.deepEqual(
      canonical.partners.map((p) => p.spec.domain),
      ['adatum.com', IDN],
    );

    const bad = config();
    bad.partners[0] = partnerDomain('adatum', { domain: '%61datum.com' });
    const refused = canonicalConfig(bad);
    assert.deepEqual(
      refused.problems.map((p) => [p.object, p.field, p.value]),
      [['PartnerDomain/adatum', 'spec.domain', '%61datum.com']],
    );
    assert.throws(
      () => buildGeneration(bad, 1),
      /PartnerDomain\/adatum spec.domain: "%61datum.com" is not a domain name/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// A real engine, a lab DNS server and a hostile MX

describe('a hostile MX for a send-secure partner, reached in every spelling', () => {
  let state: TempDir;
  let dns: DnsServer;
  let attacker: SmtpPeer;
  let running: RunningEngine;
  let internalPort: number;

  before(async () => {
    state = await tempDir('domsec-spellings-');
    // smtp-server's own self-signed certificate: whoever answers on the partner's MX.
    attacker = await startSmtpPeer({ name: 'mx.attacker.example' });
    const mx = [{ preference: 10, exchange: 'mx.attacker.example' }];
    dns = await startDnsServer({
      'adatum.com': { MX: mx },
      [IDN]: { MX: mx },
      'stranger.partners.example': { MX: mx },
      'fabrikam.example': { MX: mx },
      'mx.attacker.example': { A: [attacker.host] },
    });
    running = await startEngine(join(state.path, 'engine'));
    const base = config(attacker.port, dns.server);
    await running.client.apply({
      ...base,
      receiveConnectors: [
        internalConnector('127.0.0.1:0'),
        // Keeps the domain-secure listener of the default config out of the way.
        receiveConnector('from-partners', { bindings: ['127.0.0.2:0'] }),
      ],
    });
    const address = running.engine.listenerAddress('127.0.0.1:0');
    assert.ok(address !== null);
    internalPort = address.port;
  });
  after(async () => {
    await running.stop();
    await attacker.close();
    await dns.close();
    await state.remove();
  });

  /** One message through the internal relay connector; the RCPT reply is returned. */
  async function relay(recipient: string): Promise<string> {
    const client = await LineClient.open(internalPort);
    try {
      await client.reply();
      client.write('EHLO workstation.treyresearch.net');
      await client.reply();
      client.write('MAIL FROM:<alice@treyresearch.net>');
      assert.match(await client.reply(), /^250/);
      client.write(`RCPT TO:<${recipient}>`);
      const rcpt = await client.reply();
      if (!rcpt.startsWith('250')) return rcpt;
      client.write('DATA');
      assert.match(await client.reply(), /^354/);
      client.write(`From: alice@treyresearch.net\r\nSubject: to ${recipient}\r\n\r\nhello\r\n.`);
      assert.match(await client.reply(), /^250/);
      client.write('QUIT');
      return rcpt;
    } finally {
      client.close();
    }
  }

  it('queues each spelling under the canonical partner, never sends it to the MX, and asks DNS for the canonical name only', async () => {
    // smtp-server refuses some spellings itself (an ASCII trailing dot): a refusal is fine too.
    const spellings = fc.sample(spelling('adatum.com'), { numRuns: 8, seed: 7 });
    const idn = fc.sample(idnSpelling, { numRuns: 8, seed: 11 });
    let queued = 0;
    for (const spelled of [
      'ADATUM.COM',
      'adatum.com.',
      'ａｄａｔｕｍ．ｃｏｍ',
      'adatum.com。',
      ...spellings,
    ]) {
      const reply = await relay(`bob@${spelled}`);
      assert.match(reply, /^(250|501)/, spelled);
      if (reply.startsWith('250')) queued += 1;
    }
    assert.ok(queued >= 6, `${queued} spellings queued`);
    for (const spelled of ['BÜCHER.example', 'XN--BCHER-KVA.EXAMPLE', ...idn]) {
      assert.match(await relay(`bob@${spelled}`), /^(250|501)/, spelled);
    }
    // The control: a domain that is nobody's partner is delivered to that MX, so it is reachable.
    assert.match(await relay('carol@fabrikam.example'), /^250/);
    // A domain-secure connector's namespace with no partner: held, not sent.
    assert.match(await relay('dave@stranger.partners.example'), /^250/);

    const queues = await eventually('every queue attempted', () => {
      const found = running.engine.state().queues;
      const attempted = ['adatum.com', IDN, 'stranger.partners.example'].map((domain) =>
        found.find((q) => q.nextHopDomain === domain && q.lastError !== null),
      );
      return attempted.every((q) => q !== undefined) && attacker.messages.length === 1
        ? found
        : undefined;
    });
    // One queue per canonical domain, however it was spelled.
    assert.deepEqual(
      queues.map((q) => q.nextHopDomain).sort(),
      ['adatum.com', 'stranger.partners.example', IDN].sort(),
    );
    const adatum = queues.find((q) => q.nextHopDomain === 'adatum.com');
    assert.equal(adatum?.messageCount, queued);
    assert.match(adatum?.lastError ?? '', /454 4\.7\.5 Certificate validation failure/);
    assert.match(queues.find((q) => q.nextHopDomain === IDN)?.lastError ?? '', /4\.7\.5/);
    assert.match(
      queues.find((q) => q.nextHopDomain === 'stranger.partners.example')?.lastError ?? '',
      /451 4\.7\.0 Domain security is required and no partner matches the recipient domain/,
    );
    // The hostile MX saw exactly one MAIL FROM: the non-partner's.
    assert.deepEqual(
      attacker.mailCommands.map((c) => c.from),
      ['alice@treyresearch.net'],
    );
    assert.deepEqual(attacker.messages[0]?.recipients, ['carol@fabrikam.example']);
    const mxQuestions = dns.queries.filter((q) => q.startsWith('MX '));
    for (const question of mxQuestions) {
      assert.ok(['MX adatum.com', `MX ${IDN}`, 'MX fabrikam.example'].includes(question), question);
    }
  });

  it('refuses a recipient whose domain does not map with 501 5.1.3, and a sender with 501 5.1.7', async () => {
    // Past smtp-server's own syntax check (it takes any character from U+0080 on) to ours.
    assert.match(await relay('bob@ａ／ｂ.example'), /^501 5\.1\.3 /);
    assert.match(await relay('bob@xn--zzzz.example'), /^501/); // smtp-server's Punycode refuses it
    assert.match(await relay('bob@adatum..com'), /^501/);
    // No queue is keyed on an address literal: refused at RCPT, not failed after DATA.
    assert.match(await relay('bob@[127.0.0.1]'), /^501 5\.1\.3 .*address literal/);
    const client = await LineClient.open(internalPort);
    try {
      await client.reply();
      client.write('EHLO workstation.treyresearch.net');
      await client.reply();
      client.write('MAIL FROM:<alice@ａ／ｂ.example>');
      assert.match(await client.reply(), /^501 5\.1\.7 /);
      client.write('QUIT');
    } finally {
      client.close();
    }
  });

  it('takes <postmaster> without a domain as postmaster of our first accepted domain', async () => {
    assert.match(await relay('postmaster'), /^250/);
    const mailbox = join(state.path, 'engine', 'mail', 'treyresearch.net', 'postmaster', 'new');
    await eventually("the message in postmaster's mailbox", async () => {
      const files = await readdir(mailbox).catch(() => [] as string[]);
      return files.length === 1 ? files : undefined;
    });
  });
});
