// TLS session resumption on the receive side: a client that resumes skips the handshake's
// certificate exchange, yet its certificate is still judged at MAIL FROM against the partner's
// anchors of the generation its new session runs under, never by an earlier verdict.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { ticketKeys } from '../../src/engine/receive/server-tls.js';
import { memoryLog } from '../../src/engine/log.js';
import type { RuntimeConfig } from '../../src/model.js';
import { lab } from '../support/lab.js';
import { partnerDomain, runtimeConfig, trustAnchor } from '../support/runtime-config.js';
import { resumeAttempt, type ResumeAttempt } from '../support/tls-resume.js';
import { tempDir } from '../support/tmp.js';

/** One session as mail.adatum.com with its certificate: STARTTLS (resuming if given), MAIL FROM. */
function attempt(port: number, session?: Buffer): Promise<ResumeAttempt> {
  const { adatumMail, treyRoot } = lab();
  return resumeAttempt({
    port,
    client: adatumMail,
    serverCa: treyRoot.certPem,
    ...(session === undefined ? {} : { session }),
  });
}

/**
 * treyresearch.net receiving from two partners whose anchors, together and in this order, are
 * adatum-root then stranger-root: the server's CA list, and so its TLS context and the session
 * tickets it issued, stay the same whichever partner trusts which.
 */
function config(adatumTrusts: 'adatum-root' | 'stranger-root'): RuntimeConfig {
  const { adatumRoot, strangerRoot } = lab();
  const adatum = partnerDomain('adatum', { domain: 'adatum.com', trustAnchors: [adatumTrusts] });
  const other = partnerDomain('contoso', {
    domain: 'contoso.com',
    trustAnchors: [adatumTrusts === 'adatum-root' ? 'stranger-root' : 'adatum-root'],
  });
  return runtimeConfig({
    trustAnchors: [
      trustAnchor('adatum-root', adatumRoot),
      trustAnchor('stranger-root', strangerRoot),
    ],
    partners: adatumTrusts === 'adatum-root' ? [adatum, other] : [other, adatum],
  });
}

describe('TLS session resumption on receive', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('accepts a partner that resumes its session, and refuses it with 454 4.7.5 once an apply took the partner’s trust away', async () => {
    const dir = await tempDir('domsec-resume-');
    cleanups.push(() => dir.remove());
    const engine = await Engine.open({ stateDir: dir.path, log: memoryLog() });
    cleanups.push(() => engine.close());
    await engine.apply(config('adatum-root'));
    const port = engine.state().listeners[0]?.port;
    assert.ok(typeof port === 'number');

    const first = await attempt(port);
    assert.equal(first.resumed, false);
    assert.match(first.mailFrom, /^250 /);
    assert.ok(first.session !== undefined, 'the engine issues session tickets');

    const resumed = await attempt(port, first.session);
    assert.equal(resumed.resumed, true, 'a client that offers its session resumes it');
    assert.match(resumed.mailFrom, /^250 /, 'a resumed session is still domain-secured');

    await engine.apply(config('stranger-root'));
    const afterApply = await attempt(port, first.session);
    assert.equal(afterApply.resumed, true, 'the same TLS context: the old ticket still resumes');
    assert.match(afterApply.mailFrom, /^454 4\.7\.5 /);
  });

  it('resumes across receive workers (one ticket key for the group), each resumed session judged at MAIL FROM', async () => {
    const dir = await tempDir('domsec-resume-workers-');
    cleanups.push(() => dir.remove());
    const engine = await Engine.open({ stateDir: dir.path, log: memoryLog(), workers: 2 });
    cleanups.push(() => engine.close());
    await engine.apply(config('adatum-root'));
    const port = engine.state().listeners[0]?.port;
    assert.ok(typeof port === 'number');

    const first = await attempt(port);
    assert.match(first.mailFrom, /^250 /);
    assert.ok(first.session !== undefined);
    // Round robin hands the connections to the two workers in turn: with a key each, a ticket
    // would resume in its own worker only.
    const resumed: boolean[] = [];
    let session = first.session;
    for (let n = 0; n < 6; n += 1) {
      const next = await attempt(port, session);
      assert.match(next.mailFrom, /^250 /, 'a resumed session is still domain-secured');
      resumed.push(next.resumed);
      session = next.session ?? session;
    }
    assert.deepEqual(resumed, [true, true, true, true, true, true]);

    await engine.apply(config('stranger-root'));
    for (let n = 0; n < 2; n += 1) {
      const afterApply = await attempt(port, session);
      assert.equal(afterApply.resumed, true, 'the same TLS identity: the ticket still resumes');
      assert.match(afterApply.mailFrom, /^454 4\.7\.5 /, 'in either worker');
    }
  });

  it('makes the same ticket keys from the same secret and TLS identity only', () => {
    const secret = Buffer.alloc(32, 7);
    const a = buildGeneration(config('adatum-root'), 1);
    const b = buildGeneration(config('adatum-root'), 2);
    // A partner fewer: the CA list the server asks with is another.
    const base = config('adatum-root');
    const other = buildGeneration({ ...base, partners: base.partners.slice(0, 1) }, 3);
    assert.equal(ticketKeys(secret, a).length, 48);
    assert.deepEqual(
      ticketKeys(secret, a),
      ticketKeys(secret, b),
      'another generation, same identity',
    );
    assert.notDeepEqual(ticketKeys(secret, a), ticketKeys(secret, other), 'another CA list');
    assert.notDeepEqual(ticketKeys(secret, a), ticketKeys(Buffer.alloc(32, 8), a), 'another group');
  });
});
