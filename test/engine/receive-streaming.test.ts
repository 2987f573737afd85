// A message read as it arrives (receive/message.ts) is the message read whole: for any line-ending
// mix and any chunking, the same stored bytes or the same refusal as prepareReceived over the whole
// message; a large body goes to the spool in bounded writes, and a refused one leaves nothing there.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { prepareReceived, type HeaderMarking } from '../../src/engine/headers.js';
import type { BodySpool, SpooledBody } from '../../src/engine/message-sink.js';
import { receiveMessage, WRITE_CHUNK } from '../../src/engine/receive/message.js';
import { headerExceeds } from '../../src/engine/receive/limits.js';

const MARKING: HeaderMarking = {
  hostname: 'mail.treyresearch.net',
  tls: true,
  domainSecured: {
    partner: 'adatum.com',
    certificateSubject: 'CN=mail.adatum.com',
    certificateFingerprint: 'AB:CD',
    requireHeaderFromDomain: true,
  },
};

/** A spool in memory that records its writes, and whether what it holds was discarded. */
class MemorySpool implements BodySpool {
  readonly bodies: (SpooledBody & { chunks: Buffer[]; writes: number[]; discarded: boolean })[] =
    [];
  open(): Promise<SpooledBody> {
    const body = {
      chunks: [] as Buffer[],
      writes: [] as number[],
      discarded: false,
      get size() {
        return this.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      },
      write(chunks: readonly Buffer[]) {
        this.chunks.push(...chunks.map((chunk) => Buffer.from(chunk)));
        this.writes.push(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
        return Promise.resolve();
      },
      discard() {
        this.discarded = true;
        this.chunks = [];
        return Promise.resolve();
      },
    };
    this.bodies.push(body);
    return Promise.resolve(body);
  }
  accept(): Promise<string[]> {
    return Promise.reject(new Error('not used'));
  }
}

/** The raw message cut at the given offsets, as smtp-server's data stream would hand it over. */
function chunked(raw: Buffer, cuts: number[]): Readable {
  const points = [...new Set(cuts.map((cut) => cut % (raw.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of [...points, raw.length]) {
    if (point > start) chunks.push(raw.subarray(start, point));
    start = Math.max(start, point);
  }
  return Readable.from(chunks, { objectMode: false });
}

async function streamed(
  raw: Buffer,
  cuts: number[],
  options: { memoryLimit?: number; limit?: number; maxHeaderSize?: number } = {},
) {
  const spool = new MemorySpool();
  const received = await receiveMessage(chunked(raw, cuts), {
    limit: options.limit ?? 1 << 30,
    maxHeaderSize: options.maxHeaderSize ?? 1 << 20,
    prepare: (header) => prepareReceived(header, MARKING),
    spool,
    memoryLimit: options.memoryLimit ?? 0,
  });
  return { received, spool };
}

function bodyOf(body: Buffer | SpooledBody): Buffer {
  return Buffer.isBuffer(body)
    ? body
    : Buffer.concat((body as SpooledBody & { chunks: Buffer[] }).chunks);
}

const lineEnd = fc.constantFrom('\r\n', '\n', '\r', '\r\n', '\r\n');
const text = fc.string({
  unit: fc.constantFrom('a', ' ', ':', '\t', '\0', 'é', '\x7f'),
  maxLength: 8,
});
const fieldName = fc.constantFrom('From', 'Subject', 'X-Domsec-AuthAs', 'Authentication-Results');
const headerLine = fc.oneof(
  fc.tuple(fieldName, text).map(([name, value]) => `${name}: ${value}`),
  fc.constantFrom('From: a@adatum.com', ' continued', 'From a@b', 'Bad Name: x', ''),
  text,
);
/** Header lines and body lines, each with its own line end; the empty line may be missing. */
const message = fc
  .tuple(
    fc.array(fc.tuple(headerLine, lineEnd), { maxLength: 6 }),
    fc.option(lineEnd),
    fc.array(fc.tuple(text, lineEnd), { maxLength: 8 }),
    fc.option(text),
  )
  .map(([header, empty, body, tail]) =>
    Buffer.from(
      header.map(([line, end]) => line + end).join('') +
        (empty ?? '') +
        body.map(([line, end]) => line + end).join('') +
        (tail ?? ''),
      'latin1',
    ),
  );

describe('a message read as it arrives', () => {
  it('stores the same bytes, or refuses the same way, as the message read whole', async () => {
    await fc.assert(
      fc.asyncProperty(
        message,
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.constantFrom(0, 8, 1 << 20),
        async (raw, cuts, memoryLimit) => {
          const whole = prepareReceived(raw, MARKING);
          const { received } = await streamed(raw, cuts, { memoryLimit });
          if ('malformed' in whole) {
            assert.deepEqual(received, {
              kind: 'malformed',
              size: raw.length,
              reason: whole.malformed,
            });
            return;
          }
          assert.equal(received.kind, 'received');
          if (received.kind !== 'received') return;
          assert.equal(bodyOf(received.body).toString('latin1'), whole.body.toString('latin1'));
          assert.deepEqual(received.domainSecured, whole.domainSecured);
          assert.equal(received.size, raw.length);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('judges the header section size as headerExceeds does, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        message,
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.nat({ max: 40 }),
        async (raw, cuts, maxHeaderSize) => {
          const { received } = await streamed(raw, cuts, { maxHeaderSize });
          // headerExceeds looks for CRLF CRLF or LF LF only: judged where those end the section.
          const text = raw.toString('latin1');
          if (/\r(?!\n)|\n\r\n/.test(text)) return;
          assert.equal(received.kind === 'header-too-big', headerExceeds(raw, maxHeaderSize));
        },
      ),
      { numRuns: 800 },
    );
  });

  it('normalises a CR that ends one chunk and an LF that starts the next as one line end', async () => {
    const raw = Buffer.from('Subject: x\r\n\r\nab\r', 'latin1');
    const next = Buffer.from('\ncd\r', 'latin1');
    const spool = new MemorySpool();
    const received = await receiveMessage(Readable.from([raw, next, Buffer.from('e')]), {
      limit: 1000,
      maxHeaderSize: 1000,
      prepare: (header) => prepareReceived(header, { hostname: 'mx', tls: false }),
      spool,
      memoryLimit: 0,
    });
    assert.equal(received.kind, 'received');
    if (received.kind !== 'received') return;
    assert.equal(bodyOf(received.body).toString('latin1'), 'Subject: x\r\n\r\nab\r\ncd\r\ne\r\n');
  });

  it('writes a large body to the spool in writes of about 64 KB, never holding it whole', async () => {
    const line = `${'x'.repeat(76)}\r\n`;
    const raw = Buffer.from(`Subject: big\r\n\r\n${line.repeat(40_000)}`, 'latin1'); // 3.1 MB
    const { received, spool } = await streamed(
      raw,
      Array.from({ length: 800 }, (_, i) => i * 4_001),
      {
        memoryLimit: 256 * 1024,
      },
    );
    assert.equal(received.kind, 'received');
    const [body] = spool.bodies;
    assert.ok(body !== undefined && !body.discarded);
    const whole = prepareReceived(raw, MARKING);
    assert.ok(!('malformed' in whole));
    assert.equal(bodyOf(body).length, whole.body.length);
    // The first write is what was held up to the memory limit, the others a chunk each.
    const [first, ...rest] = body.writes;
    assert.ok((first ?? 0) <= 256 * 1024 + 8_192, `first write ${first}`);
    assert.ok(
      rest.every((bytes) => bytes < WRITE_CHUNK + 8_192),
      `writes ${rest.join(' ')}`,
    );
  });

  it('drains a message over the size limit and removes what was spooled', async () => {
    const raw = Buffer.from(`Subject: big\r\n\r\n${'y'.repeat(300_000)}\r\n`, 'latin1');
    const cuts = Array.from({ length: 60 }, (_, i) => i * 5_000);
    const { received, spool } = await streamed(raw, cuts, { memoryLimit: 1024, limit: 200_000 });
    assert.deepEqual(received, { kind: 'oversized', size: raw.length });
    assert.ok(spool.bodies.length > 0, 'the body was being spooled');
    assert.ok(spool.bodies.every((body) => body.discarded && body.size === 0));
  });

  it('refuses a header section over the limit without holding more of it than the limit', async () => {
    const raw = Buffer.from(`X-Pad: ${'p'.repeat(500_000)}\r\n\r\nbody\r\n`, 'latin1');
    const cuts = Array.from({ length: 100 }, (_, i) => i * 4_096);
    const { received, spool } = await streamed(raw, cuts, { maxHeaderSize: 1024, memoryLimit: 0 });
    assert.deepEqual(received, { kind: 'header-too-big', size: raw.length });
    assert.equal(spool.bodies.length, 0, 'nothing was spooled');
  });

  it('removes what was spooled when the client goes away mid-DATA', async () => {
    const spool = new MemorySpool();
    const stream = new Readable({ read() {} });
    const reading = receiveMessage(stream, {
      limit: 1 << 30,
      maxHeaderSize: 1024,
      prepare: (header) => prepareReceived(header, MARKING),
      spool,
      memoryLimit: 0,
    });
    stream.push(Buffer.from(`Subject: x\r\n\r\n${'z'.repeat(200_000)}`, 'latin1'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    stream.destroy(new Error('connection closed'));
    await assert.rejects(reading, /connection closed/);
    assert.ok(spool.bodies.length > 0 && spool.bodies.every((body) => body.discarded));
  });
});

describe('a hostile header section', () => {
  it('sent one byte at a time is refused over maxHeaderSize within a bounded time', async () => {
    const raw = Buffer.from(`X-Pad: ${'p'.repeat(100_000)}\r\n\r\nbody\r\n`, 'latin1');
    const bytes = Array.from({ length: raw.length }, (_, i) => raw.subarray(i, i + 1));
    const started = performance.now();
    const received = await receiveMessage(Readable.from(bytes), {
      limit: 1 << 30,
      maxHeaderSize: 64 * 1024,
      prepare: (header) => prepareReceived(header, MARKING),
    });
    assert.deepEqual(received, { kind: 'header-too-big', size: raw.length });
    // Each byte is scanned once: rescanning the held section per chunk would take minutes here.
    assert.ok(performance.now() - started < 10_000, 'no rescans of what was read');
  });
});
