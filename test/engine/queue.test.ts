// The durable queue on real files: what accept writes, what a restart (or kill -9) recovers, what
// it cleans up or quarantines, the retry schedule on an injected clock, and non-delivery reports.
import { requireDomainName } from '../../src/domain-name.js';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { memoryLog } from '../../src/engine/log.js';
import type { IncomingMessage } from '../../src/engine/message-sink.js';
import { MessageQueue, type SettlePolicy } from '../../src/engine/queue/queue.js';
import { MessageIds } from '../../src/engine/queue/record.js';
import { runUntilKilled } from '../support/killed-script.js';
import { tempDir } from '../support/tmp.js';
import { reply } from '../support/replies.js';

const MINUTE = 60_000;
const POLICY: SettlePolicy = {
  hostname: 'mail.treyresearch.net',
  retrySchedule: [1 * MINUTE, 5 * MINUTE, 15 * MINUTE],
  expireAfter: 2 * 86_400_000,
};
const T0 = Date.parse('2026-11-02T10:00:00Z');

function incoming(recipients: string[], from = 'alice@adatum.com'): IncomingMessage {
  return {
    from,
    recipients,
    body: Buffer.from('From: alice@adatum.com\r\nSubject: Q4 results\r\n\r\nNumbers.\r\n'),
    receivedAt: new Date(T0),
    connector: 'from-partners',
    remoteAddress: '127.0.0.1',
    domainSecured: {
      partner: 'adatum.com',
      certificateSubject: 'CN=mail.adatum.com',
      certificateFingerprint: 'AA:BB',
    },
  };
}

describe('MessageQueue', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let now: number;
  const clock = () => now;
  const open = (log = memoryLog()) => MessageQueue.open(join(dir.path, 'queue'), log, clock);
  beforeEach(async () => {
    await dir?.remove();
    dir = await tempDir('domsec-queue-');
    now = T0;
  });
  after(() => dir.remove());

  it('journals the message before accept resolves, and moves it to one body and one control record per next-hop domain when reopened', async () => {
    const first = await open();
    const ids = await first.accept(
      incoming(['bob@treyresearch.net', 'Carol@TreyResearch.NET', 'dave@fabrikam.com']),
    );
    assert.equal(ids.length, 2);
    const [message] = ids[0]?.split('.') ?? [];
    // Durable in the journal alone; the process dies without a close.
    const segments = await readdir(join(dir.path, 'queue', 'journal'));
    assert.equal(segments.length, 1);
    const segment = await readFile(join(dir.path, 'queue', 'journal', segments[0] ?? ''));
    assert.ok(segment.includes(Buffer.from(`"message":"${message}"`)));
    assert.deepEqual(await readdir(join(dir.path, 'queue', 'data')), []);
    const queue = await open();
    assert.deepEqual(await readdir(join(dir.path, 'queue', 'journal')), []);
    assert.deepEqual(await readdir(join(dir.path, 'queue', 'data')), [`${message}.eml`]);
    assert.deepEqual(
      (await readdir(join(dir.path, 'queue', 'control'))).sort(),
      ids.map((id) => `${id}.json`).sort(),
    );
    const record = JSON.parse(
      await readFile(join(dir.path, 'queue', 'control', `${ids[0]}.json`), 'utf8'),
    );
    assert.equal(record.nextHopDomain, 'treyresearch.net');
    // The domain in its canonical form (the queue's one spelling), the local part as given.
    assert.deepEqual(record.recipients, ['bob@treyresearch.net', 'Carol@treyresearch.net']);
    assert.equal(record.domainSecured.partner, 'adatum.com');
    assert.deepEqual(
      queue.summaries().map((s) => [s.nextHopDomain, s.messageCount, s.status]),
      [
        ['fabrikam.com', 1, 'ready'],
        ['treyresearch.net', 1, 'ready'],
      ],
    );
    await queue.close();
    await first.close();
  });

  it('gives message ids that sort by arrival, within one millisecond and when the clock steps back', () => {
    const at = Date.now() + 60_000;
    const generator = new MessageIds();
    const ids = [
      ...Array.from({ length: 500 }, () => generator.next(at)),
      generator.next(at - 5_000), // the clock stepped back
      generator.next(at + 1),
    ];
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^[0-9A-Z]+$/);
  });

  it('recovers every entry after a restart, attempts and last error included', async () => {
    const first = await open();
    const [id] = await first.accept(incoming(['bob@fabrikam.com']));
    first.claim([id ?? '']);
    await first.settle(
      id ?? '',
      {
        delivered: [],
        failures: [
          {
            recipient: 'bob@fabrikam.com',
            reply: reply('421 4.2.1 Unable to connect'),
            permanent: false,
          },
        ],
      },
      POLICY,
    );
    await first.close();

    const second = await open();
    assert.deepEqual(second.messages(), [
      {
        id,
        nextHopDomain: 'fabrikam.com',
        from: 'alice@adatum.com',
        recipients: ['bob@fabrikam.com'],
        size: incoming([]).body.length,
        receivedAt: new Date(T0).toISOString(),
        attempts: 1,
        lastError: '421 4.2.1 Unable to connect',
        nextRetryAt: new Date(T0 + MINUTE).toISOString(),
      },
    ]);
    await second.close();
  });

  it('keeps an acknowledged message when the process is killed with SIGKILL right after accept', async () => {
    const queueDir = join(dir.path, 'queue');
    const module = fileURLToPath(new URL('../../src/engine/queue/queue.ts', import.meta.url));
    const script = `
      const { MessageQueue } = await import(${JSON.stringify(module)});
      const queue = await MessageQueue.open(${JSON.stringify(queueDir)}, { log() {} });
      const ids = await queue.accept({ from: 'a@adatum.com', recipients: ['b@fabrikam.com'], body: Buffer.from('x'),
        receivedAt: new Date(), connector: 'c', remoteAddress: '127.0.0.1' });
      process.stdout.write(ids.join(','), () => process.kill(process.pid, 'SIGKILL'));`;
    const output = await runUntilKilled(script);
    const queue = await open();
    assert.deepEqual(
      queue.messages().map((m) => m.id),
      [output],
    );
    await queue.close();
  });

  it('removes at open a body no control record names, and temporary files', async () => {
    const first = await open();
    const [id] = await first.accept(incoming(['bob@fabrikam.com']));
    await first.close();
    await writeFile(join(dir.path, 'queue', 'data', 'ORPHAN0000.eml'), 'half a message');
    await writeFile(join(dir.path, 'queue', 'control', `${id}.json.tmp`), '{"half');
    const log = memoryLog();
    const second = await open(log);
    const [message] = id?.split('.') ?? [];
    assert.deepEqual(await readdir(join(dir.path, 'queue', 'data')), [`${message}.eml`]);
    assert.deepEqual(await readdir(join(dir.path, 'queue', 'control')), [`${id}.json`]);
    assert.ok(
      log.entries.some(
        (e) => e.event === 'queue.orphan-removed' && e.fields.message === 'ORPHAN0000',
      ),
    );
    assert.equal(second.messages().length, 1);
    await second.close();
  });

  it('moves a control record that does not parse to corrupt/ with a log line, keeping the others', async () => {
    const first = await open();
    const [good] = await first.accept(incoming(['bob@fabrikam.com']));
    await first.close();
    await writeFile(join(dir.path, 'queue', 'control', 'BROKEN.1.json'), '{"version": 1, "id": ');
    const log = memoryLog();
    const second = await open(log);
    assert.deepEqual(
      second.messages().map((m) => m.id),
      [good],
    );
    const corrupt = await readdir(join(dir.path, 'queue', 'corrupt'));
    assert.equal(corrupt.length, 1);
    assert.match(corrupt[0] ?? '', /^BROKEN\.1\.json\.\d+$/);
    const line = log.entries.find((e) => e.event === 'queue.corrupt-control');
    assert.equal(line?.level, 'error');
    assert.match(String(line?.fields.reason), /not JSON/);
    await second.close();
  });

  it('waits schedule[n] after the n-th failed attempt, repeating the last step', async () => {
    const queue = await open();
    const [id = ''] = await queue.accept(incoming(['bob@fabrikam.com']));
    const fail = {
      delivered: [],
      failures: [
        { recipient: 'bob@fabrikam.com', reply: reply('451 4.4.0 later'), permanent: false },
      ],
    };
    const waits: number[] = [];
    for (let attempt = 0; attempt < 4; attempt += 1) {
      assert.deepEqual(
        queue.due().map((d) => d.id),
        [id],
        `due for attempt ${attempt}`,
      );
      queue.claim([id]);
      const failedAt = now;
      await queue.settle(id, fail, POLICY);
      const next = Date.parse(queue.summaries()[0]?.nextRetryAt ?? '');
      waits.push(next - failedAt);
      now = next - 1;
      assert.deepEqual(queue.due(), [], 'not due a millisecond early');
      assert.equal(queue.summaries()[0]?.status, 'retry');
      now = next;
    }
    assert.deepEqual(waits, [1 * MINUTE, 5 * MINUTE, 15 * MINUTE, 15 * MINUTE]);
    assert.equal(queue.messages()[0]?.attempts, 4);
    assert.equal(queue.retryNow(requireDomainName('FABRIKAM.com')), 1);
    await queue.close();
  });

  it('bounces at once on a 5xx with an RFC 3464 report to the sender, queued like any message', async () => {
    const queue = await open();
    const [id = ''] = await queue.accept(incoming(['bob@fabrikam.com', 'nobody@fabrikam.com']));
    queue.claim([id]);
    await queue.settle(
      id,
      {
        delivered: ['bob@fabrikam.com'],
        failures: [
          {
            recipient: 'nobody@fabrikam.com',
            reply: reply('550 5.1.1 User unknown'),
            permanent: true,
          },
        ],
      },
      POLICY,
    );
    const [report] = queue.messages();
    assert.equal(queue.messages().length, 1, 'the original is done');
    assert.equal(report?.from, '');
    assert.deepEqual(report?.recipients, ['alice@adatum.com']);
    assert.equal(report?.nextHopDomain, 'adatum.com');
    const body = await readReport(queue, report?.id ?? '');
    assert.match(body, /^Content-Type: multipart\/report; report-type=delivery-status;/m);
    assert.match(body, /^Content-Type: message\/delivery-status$/m);
    assert.match(body, /^Reporting-MTA: dns; mail\.treyresearch\.net$/m);
    assert.match(body, /^Final-Recipient: rfc822; nobody@fabrikam\.com$/m);
    assert.match(body, /^Action: failed$/m);
    assert.match(body, /^Status: 5\.1\.1$/m);
    assert.match(body, /^Diagnostic-Code: smtp; 550 5\.1\.1 User unknown$/m);
    assert.match(body, /^Subject: Undeliverable: Q4 results$/m);
    assert.doesNotMatch(body, /Final-Recipient: rfc822; bob@fabrikam\.com/);
    await queue.close();
  });

  it('bounces recipients still failing after expireAfter, quoting the last error', async () => {
    // The delay notice (4 hours) has its own test; here only the expiry's report is read.
    const NO_DELAY_NOTICE = { ...POLICY, delayNoticeAfter: Infinity };
    const queue = await open();
    const [id = ''] = await queue.accept(incoming(['bob@fabrikam.com']));
    const fail = {
      delivered: [],
      failures: [
        {
          recipient: 'bob@fabrikam.com',
          reply: reply('451 4.4.0 Primary target IP address responded with: "x."'),
          permanent: false,
        },
      ],
    };
    queue.claim([id]);
    await queue.settle(id, fail, NO_DELAY_NOTICE);
    now = T0 + POLICY.expireAfter - MINUTE;
    queue.claim([id]);
    await queue.settle(id, fail, NO_DELAY_NOTICE);
    assert.equal(
      queue.messages()[0]?.nextRetryAt,
      new Date(T0 + POLICY.expireAfter).toISOString(),
      'one last try at expiry',
    );
    now = T0 + POLICY.expireAfter;
    queue.claim([id]);
    await queue.settle(id, fail, NO_DELAY_NOTICE);
    const [report] = queue.messages();
    assert.equal(report?.from, '');
    const body = await readReport(queue, report?.id ?? '');
    assert.match(body, /^Status: 5\.4\.7$/m);
    assert.match(
      body,
      /^Diagnostic-Code: smtp; 550 5\.4\.7 Message expired before it could be delivered\. Last error: 451 4\.4\.0 Primary target/m,
    );
    await queue.close();
  });

  it('sends one delay notice (Action: delayed) after 4 hours in the queue, and keeps the message', async () => {
    const log = memoryLog();
    const queue = await open(log);
    const [id = ''] = await queue.accept(incoming(['bob@fabrikam.com']));
    const fail = {
      delivered: [],
      failures: [
        {
          recipient: 'bob@fabrikam.com',
          reply: reply('451 4.4.0 Primary target IP address responded with: "454 4.7.5 x."'),
          permanent: false,
        },
      ],
    };
    const settleAt = async (at: number) => {
      now = at;
      queue.claim([id]);
      await queue.settle(id, fail, POLICY);
    };
    await settleAt(T0 + 4 * 3_600_000 - MINUTE);
    assert.equal(queue.messages().length, 1, 'no notice before 4 hours');
    await settleAt(T0 + 4 * 3_600_000);
    const notices = queue.messages().filter((m) => m.from === '');
    assert.equal(notices.length, 1);
    const body = await readReport(queue, notices[0]?.id ?? '');
    assert.match(body, /^Subject: Delivery Delayed: Q4 results$/m);
    assert.match(body, /^Action: delayed$/m);
    assert.match(body, /^Status: 4\.4\.0$/m);
    assert.match(body, /^Will-Retry-Until: Wed, 04 Nov 2026 10:00:00 \+0000$/m);
    assert.ok(
      queue.messages().some((m) => m.id === id),
      'the message stays queued',
    );
    await settleAt(T0 + 6 * 3_600_000);
    assert.equal(queue.messages().filter((m) => m.from === '').length, 1, 'only one notice');
    assert.ok(log.entries.some((e) => e.event === 'queue.delay-notified'));
    await queue.close();
    // The flag survives a restart: no second notice from a reopened queue.
    const reopened = await open();
    now = T0 + 7 * 3_600_000;
    reopened.claim([id]);
    await reopened.settle(id, fail, POLICY);
    assert.equal(reopened.messages().filter((m) => m.from === '').length, 1);
    await reopened.close();
  });

  it('never sends a report about a report (null sender): the entry ends with a log line', async () => {
    const log = memoryLog();
    const queue = await open(log);
    const [id = ''] = await queue.accept(incoming(['alice@fabrikam.com'], ''));
    queue.claim([id]);
    await queue.settle(
      id,
      {
        delivered: [],
        failures: [
          { recipient: 'alice@fabrikam.com', reply: reply('550 5.1.1 no'), permanent: true },
        ],
      },
      POLICY,
    );
    assert.deepEqual(queue.messages(), []);
    assert.deepEqual(await readdir(join(dir.path, 'queue', 'data')), []);
    assert.ok(log.entries.some((e) => e.event === 'queue.bounced-without-report'));
    await queue.close();
  });

  it('keeps only the deferred recipients after a partial delivery, and the body until the last entry goes', async () => {
    const queue = await open();
    const [first = '', second = ''] = await queue.accept(
      incoming(['bob@fabrikam.com', 'carol@fabrikam.com', 'dave@contoso.com']),
    );
    queue.claim([first]);
    await queue.settle(
      first,
      {
        delivered: ['bob@fabrikam.com'],
        failures: [
          {
            recipient: 'carol@fabrikam.com',
            reply: reply('452 4.2.2 Mailbox full'),
            permanent: false,
          },
        ],
      },
      POLICY,
    );
    assert.deepEqual(queue.messages().find((m) => m.id === first)?.recipients, [
      'carol@fabrikam.com',
    ]);
    queue.claim([second]);
    await queue.settle(second, { delivered: ['dave@contoso.com'], failures: [] }, POLICY);
    assert.equal(
      (await readdir(join(dir.path, 'queue', 'data'))).length,
      1,
      'the body stays for carol',
    );
    queue.claim([first]);
    await queue.settle(first, { delivered: ['carol@fabrikam.com'], failures: [] }, POLICY);
    assert.deepEqual(await readdir(join(dir.path, 'queue', 'data')), []);
    assert.deepEqual(await readdir(join(dir.path, 'queue', 'control')), []);
    await queue.close();
  });
});

async function readReport(queue: MessageQueue, id: string): Promise<string> {
  const [message] = queue.claim([id]);
  assert.ok(message !== undefined);
  queue.release(id);
  return (await message.body()).toString('utf8');
}
