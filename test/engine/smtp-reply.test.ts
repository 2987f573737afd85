// SMTP replies as values: parsed once where they arrive, carried in outcomes, made text only for
// the log, the queue's last error and the DSN. Properties over generated and hostile replies, and
// a queue entry as an earlier version stored it (its last error as text) read back at expiry.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { memoryLog } from '../../src/engine/log.js';
import { MessageQueue } from '../../src/engine/queue/queue.js';
import { REPLIES } from '../../src/engine/replies.js';
import {
  deliveryStatus,
  isPermanent,
  parseSmtpReply,
  smtpReplyText,
  storedReply,
  withDetail,
  type SmtpReply,
} from '../../src/smtp-reply.js';
import { tempDir } from '../support/tmp.js';

/** Text as a reply carries it: printable words separated by single spaces. */
const words = fc
  .array(fc.stringMatching(/^[!-~]{1,12}$/), { maxLength: 8 })
  .map((parts) => parts.join(' '));
const generated: fc.Arbitrary<SmtpReply> = fc
  .tuple(
    fc.integer({ min: 200, max: 599 }),
    fc.option(fc.tuple(fc.integer({ min: 0, max: 999 }), fc.integer({ min: 0, max: 999 }))),
    words,
  )
  .map(([code, status, text]) => {
    const kind = Math.floor(code / 100);
    // A text that starts like an enhanced status would be read as one: not a reply's text.
    const body = /^[245]\.\d/.test(text) ? `x ${text}` : text;
    if (status === null || kind === 3) return { code, text: body };
    return { code, enhanced: `${kind}.${status[0]}.${status[1]}`, text: body };
  });

describe('parseSmtpReply', () => {
  it('reads the code, the enhanced status and the text of one line', () => {
    assert.deepEqual(parseSmtpReply('550 5.1.1 User unknown'), {
      code: 550,
      enhanced: '5.1.1',
      text: 'User unknown',
    });
    assert.deepEqual(parseSmtpReply('421 Service not available\r\n'), {
      code: 421,
      text: 'Service not available',
    });
    assert.deepEqual(parseSmtpReply('250'), { code: 250, text: '' });
  });

  it('joins a multi-line reply, dropping continuation codes and a repeated enhanced status', () => {
    assert.deepEqual(parseSmtpReply('250-mx.adatum.com\r\n250-PIPELINING\r\n250 STARTTLS'), {
      code: 250,
      text: 'mx.adatum.com PIPELINING STARTTLS',
    });
    assert.deepEqual(
      parseSmtpReply(
        '550-5.1.1 The email account that you tried to reach does not exist.\n550-5.1.1 Please check\n550 5.1.1 the address.',
      ),
      {
        code: 550,
        enhanced: '5.1.1',
        text: 'The email account that you tried to reach does not exist. Please check the address.',
      },
    );
  });

  it('takes an enhanced status only when its class is the code’s (RFC 3463)', () => {
    const mismatched = parseSmtpReply('550 4.1.1 Try later');
    assert.deepEqual(mismatched, { code: 550, text: '4.1.1 Try later' });
    assert.equal(deliveryStatus(mismatched as SmtpReply), '5.0.0');
    assert.equal(parseSmtpReply('451 4.4.0 x')?.enhanced, '4.4.0');
    assert.equal(parseSmtpReply('451 4.4.01x')?.enhanced, undefined, 'the status ends at a space');
  });

  it('is not a reply without a code 200-599 first', () => {
    for (const raw of ['', 'hello', '199 x', '600 x', '55 x', ' x 250', '2500 x', '-250 x']) {
      assert.equal(parseSmtpReply(raw), undefined, JSON.stringify(raw));
    }
  });

  it('gives back what smtpReplyText wrote, for any reply', () => {
    fc.assert(
      fc.property(generated, (reply) => {
        assert.deepEqual(parseSmtpReply(smtpReplyText(reply)), reply);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on hostile input, and its text stays one bounded line', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.string({ unit: 'binary', maxLength: 300 }),
          fc
            .tuple(fc.integer({ min: 200, max: 599 }), fc.string({ maxLength: 5_000 }))
            .map(([code, rest]) => `${code} ${rest}`),
          fc
            .array(fc.string({ maxLength: 100 }), { maxLength: 60 })
            .map((lines) => lines.map((l) => `250-${l}`).join('\r\n')),
        ),
        (raw) => {
          const reply = parseSmtpReply(raw);
          if (reply === undefined) return;
          assert.ok(reply.text.length <= 2_000, 'bounded');
          const line = smtpReplyText(reply);
          assert.doesNotMatch(line, /[\r\n]/, 'one line, whatever the server sent');
          assert.equal(isPermanent(reply), reply.code >= 500);
          const kind = String(reply.code).charAt(0);
          assert.equal(deliveryStatus(reply).charAt(0), kind === '3' ? '5' : kind);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('replies of our own', () => {
  it('adds a detail as Exchange writes it, on one line whatever the detail holds', () => {
    const reply = withDetail(REPLIES.dnsFailure, 'MX lookup for adatum.com: ETIMEOUT');
    assert.equal(
      smtpReplyText(reply),
      '451 4.4.0 DNS query failed: MX lookup for adatum.com: ETIMEOUT',
    );
    const injected = withDetail(REPLIES.localError, 'read failed\r\nStatus: 2.0.0');
    assert.doesNotMatch(smtpReplyText(injected), /[\r\n]/);
    assert.equal(isPermanent(withDetail(REPLIES.badMailbox, 'x')), true);
  });

  it('reads stored text back, or keeps text that is no reply as the detail of a fallback', () => {
    assert.deepEqual(storedReply('421 4.2.1 Busy', REPLIES.localError), {
      code: 421,
      enhanced: '4.2.1',
      text: 'Busy',
    });
    const odd = storedReply('mailbox\nbusy', REPLIES.localError);
    assert.equal(odd.code, REPLIES.localError.code);
    assert.equal(smtpReplyText(odd), `${smtpReplyText(REPLIES.localError)}: mailbox busy`);
  });
});

describe('a queue entry stored by an earlier version', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('has its last error (text) read back when a suspended queue expires it', async () => {
    const dir = await tempDir('domsec-reply-');
    cleanups.push(dir.remove);
    const T0 = Date.parse('2026-11-02T10:00:00Z');
    let now = T0;
    const root = join(dir.path, 'queue');
    const policy = {
      hostname: 'mail.treyresearch.net',
      retrySchedule: [60_000],
      expireAfter: 3_600_000,
    };
    const first = await MessageQueue.open(root, memoryLog(), () => now);
    const [id = ''] = await first.accept({
      from: 'alice@treyresearch.net',
      recipients: ['bob@fabrikam.com'],
      body: Buffer.from('Subject: old\r\n\r\nold\r\n'),
      receivedAt: new Date(T0),
      connector: 'internal',
      remoteAddress: '127.0.0.1',
    });
    await first.close();
    // Move it to its control record, then write lastError as text, as every version has; this
    // one as earlier versions joined a multi-line reply (the first line's hyphen kept).
    const second = await MessageQueue.open(root, memoryLog(), () => now);
    await second.close();
    const controls = await readdir(join(root, 'control'));
    const file = join(root, 'control', controls.find((f) => f.startsWith(id)) ?? '');
    const record = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    const lastError = '452-4.2.2 Mailbox full 4.2.2 try later';
    await writeFile(file, JSON.stringify({ ...record, attempts: 1, lastError }));

    const queue = await MessageQueue.open(root, memoryLog(), () => now);
    assert.equal(queue.messages()[0]?.lastError, lastError);
    await queue.suspend('fabrikam.com');
    now = T0 + policy.expireAfter;
    assert.equal(await queue.expireSuspended(policy), 1);
    const [report] = queue.messages();
    assert.equal(report?.from, '');
    const [message] = queue.claim([report?.id ?? '']);
    const body = (await message?.body())?.toString('utf8') ?? '';
    queue.release(report?.id ?? '');
    assert.match(body, /^Status: 5\.4\.7$/m);
    assert.match(
      body,
      /^Diagnostic-Code: smtp; 550 5\.4\.7 Message expired before it could be delivered\. Last error: 452 4\.2\.2 Mailbox full 4\.2\.2 try later$/m,
    );
    await queue.close();
  });
});
