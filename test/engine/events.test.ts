// The engine's typed events: every subscriber is told, one that throws breaks neither the emitter
// nor the others, the event log writes each event as one line named by its type, and the partners'
// health reads the certificate from the event, not from the line (which names the partner only).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EngineEvents, eventLog, loggedEvents, type EngineEvent } from '../../src/engine/events.js';
import { memoryLog } from '../../src/engine/log.js';
import { PartnerHealth } from '../../src/engine/partner-health.js';

const accepted: EngineEvent = {
  type: 'queue.accepted',
  message: 'm1',
  entries: ['m1.1'],
  from: 'alice@adatum.com',
  nextHops: ['treyresearch.net'],
  size: 120,
  domainSecured: {
    partner: 'adatum.com',
    certificateSubject: 'CN=mail.adatum.com',
    certificateFingerprint: 'AB:CD',
    certificateNotAfter: 'Nov 25 09:00:00 2027 GMT',
  },
  connector: 'from-partners',
};

describe('engine events', () => {
  it('tells every subscriber in order, and a subscriber that throws is reported, not fatal', () => {
    const failures: string[] = [];
    const events = new EngineEvents((event, error) =>
      failures.push(`${event.type}: ${error.message}`),
    );
    const told: string[] = [];
    events.subscribe((event) => told.push(`first ${event.type}`));
    events.subscribe(() => {
      throw new Error('broken counter');
    });
    const unsubscribe = events.subscribe((event) => told.push(`last ${event.type}`));
    events.emit(accepted);
    assert.deepEqual(told, ['first queue.accepted', 'last queue.accepted']);
    assert.deepEqual(failures, ['queue.accepted: broken counter']);
    unsubscribe();
    events.emit(accepted);
    assert.deepEqual(told.slice(2), ['first queue.accepted']);
  });

  it('logs each event as one line named by its type, at its level', () => {
    const log = memoryLog();
    const write = eventLog(log);
    write(accepted);
    write({
      type: 'send.partner-refused',
      partner: 'adatum.com',
      host: 'mail.adatum.com',
      address: '127.0.0.1',
      reason: 'certificate name mismatch',
      subject: null,
      names: [],
      fingerprint: null,
    });
    assert.deepEqual(
      log.entries.map((e) => [e.level, e.event]),
      [
        ['info', 'queue.accepted'],
        ['warn', 'send.partner-refused'],
      ],
    );
    // The line names the partner; the certificate stays with the event (partner health reads it).
    assert.deepEqual(log.entries[0]?.fields, {
      message: 'm1',
      entries: ['m1.1'],
      from: 'alice@adatum.com',
      nextHops: ['treyresearch.net'],
      size: 120,
      domainSecured: 'adatum.com',
      connector: 'from-partners',
    });
    assert.equal(log.entries[1]?.fields.type, undefined);
  });

  it('is written to the log alone for a part used without an engine', () => {
    const log = memoryLog();
    loggedEvents(log).emit({ ...accepted, domainSecured: null, stored: 'data' });
    assert.equal(log.entries.length, 1);
    assert.equal(log.entries[0]?.fields.domainSecured, null);
    assert.equal(log.entries[0]?.fields.stored, 'data');
  });

  it("feeds the partners' health from the events, per direction", () => {
    const health = new PartnerHealth(() => new Date('2026-12-01T10:00:00Z'));
    health.observe(accepted);
    health.observe({
      type: 'send.partner-refused',
      partner: 'ADATUM.com',
      host: 'mail.adatum.com',
      address: '127.0.0.1',
      reason: 'certificate name mismatch',
      subject: 'CN=wrong.example',
      names: ['wrong.example'],
      fingerprint: 'EF:01',
    });
    assert.deepEqual(health.get('adatum.com', 'receive'), {
      result: 'secured',
      lastVerified: {
        subject: 'CN=mail.adatum.com',
        fingerprint: 'AB:CD',
        notAfter: '2027-11-25T09:00:00.000Z',
        at: '2026-12-01T10:00:00.000Z',
      },
      lastRefusal: null,
    });
    assert.deepEqual(health.get('adatum.com', 'send'), {
      result: 'failing',
      lastVerified: null,
      lastRefusal: {
        reason: 'certificate name mismatch',
        at: '2026-12-01T10:00:00.000Z',
        subject: 'CN=wrong.example',
        fingerprint: 'EF:01',
      },
    });
    // A report the queue wrote itself carries no partner: nothing is learnt from it.
    health.observe({ ...accepted, connector: 'queue', domainSecured: null });
    assert.equal(health.entries().length, 2);
  });
});
