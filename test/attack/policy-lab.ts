// The man in the middle of a destination's MX path, for the outbound TLS policy attacks: a raw
// SMTP peer on loopback whose every byte we choose (STARTTLS offered, stripped, refused, answered
// with injected lines; TLS versions), which records each command and whether it came under TLS;
// a DNS responder that can answer CNAME chains and answer from another address than the one asked;
// and one delivery through the send path (createRemoteDelivery) with its last error.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureVersion } from 'node:tls';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import { requireDomainName } from '../../src/domain-name.js';
import { buildGeneration, type Generation } from '../../src/engine/generation.js';
import { memoryLog } from '../../src/engine/log.js';
import { StsPolicyCache } from '../../src/engine/policy/mta-sts-cache.js';
import type { DeliveryOutcome, OutboundMessage } from '../../src/engine/queue/outcome.js';
import { createRemoteDelivery } from '../../src/engine/send/deliver.js';
import type { Named, TlsPolicySpec } from '../../src/model.js';
import { smtpReplyText } from '../../src/smtp-reply.js';
import { runtimeConfig, sendConnector } from '../support/runtime-config.js';

export const TIMEOUTS = { connectMs: 3_000, greetingMs: 3_000, socketMs: 4_000 };

export interface RawPeerOptions {
  certificate: { certPem: string; keyPem: string };
  /** Announce STARTTLS in the plaintext EHLO (default true): false is a stripped STARTTLS. */
  offerStarttls?: boolean;
  /** What STARTTLS is answered with, CRLFs included (default "220 2.0.0 ready\r\n"). */
  starttlsReply?: string;
  /** The server's TLS versions (a downgrade to TLS 1.0/1.1). */
  tls?: { minVersion?: SecureVersion; maxVersion?: SecureVersion; ciphers?: string };
}

export interface RawCommand {
  line: string;
  secure: boolean;
}

export interface RawPeer {
  port: number;
  /** Every command line received (DATA content excluded), and whether it came over TLS. */
  commands: RawCommand[];
  /** Messages received to the end of DATA, and whether over TLS. */
  messages: { secure: boolean; body: string }[];
  connections: number;
  /** TLS handshakes completed. */
  handshakes: number;
  /** The first MAIL FROM, RCPT TO or DATA received in plaintext, if any. */
  cleartextTransaction(): RawCommand | undefined;
  close(): Promise<void>;
}

/** A receiving MX we control byte for byte (RFC 5321 and RFC 3207, the happy path and the traps). */
export async function startRawPeer(options: RawPeerOptions): Promise<RawPeer> {
  const sockets = new Set<Socket>();
  const context = createSecureContext({
    cert: options.certificate.certPem,
    key: options.certificate.keyPem,
    ...(options.tls?.minVersion === undefined ? {} : { minVersion: options.tls.minVersion }),
    ...(options.tls?.maxVersion === undefined ? {} : { maxVersion: options.tls.maxVersion }),
    ...(options.tls?.ciphers === undefined ? {} : { ciphers: options.tls.ciphers }),
  });
  const peer: Omit<RawPeer, 'port' | 'close'> = {
    commands: [],
    messages: [],
    connections: 0,
    handshakes: 0,
    cleartextTransaction: () =>
      peer.commands.find((c) => !c.secure && /^(MAIL FROM|RCPT TO|DATA|BDAT)/i.test(c.line)),
  };
  const server: Server = createServer((plain) => {
    peer.connections += 1;
    sockets.add(plain);
    plain.on('close', () => sockets.delete(plain));
    plain.on('error', () => plain.destroy());
    plain.setTimeout(8_000, () => plain.destroy());
    serve(plain, false);
    plain.write('220 mx.attack.example ESMTP\r\n');
  });

  function serve(socket: Socket | TLSSocket, secure: boolean): void {
    let buffer = '';
    let inData = false;
    let body = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let end = buffer.indexOf('\r\n'); end !== -1; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            peer.messages.push({ secure, body });
            body = '';
            socket.write('250 2.0.0 queued\r\n');
          } else body += `${line}\n`;
          continue;
        }
        peer.commands.push({ line, secure });
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') {
          const starttls = !secure && options.offerStarttls !== false;
          socket.write(
            `250-mx.attack.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n${starttls ? '250-STARTTLS\r\n' : ''}250 SMTPUTF8\r\n`,
          );
        } else if (verb === 'HELO') socket.write('250 mx.attack.example\r\n');
        else if (verb === 'STAR' && !secure && options.offerStarttls === false)
          // A stripped STARTTLS: the man in the middle refuses the command it hid.
          socket.write('502 5.5.1 unrecognized command\r\n');
        else if (verb === 'STAR' && !secure) {
          const reply = options.starttlsReply ?? '220 2.0.0 ready\r\n';
          socket.write(reply);
          if (!reply.startsWith('220')) continue;
          socket.removeListener('data', onData);
          const tls = new TLSSocket(socket, { isServer: true, secureContext: context });
          tls.on('secure', () => {
            peer.handshakes += 1;
          });
          tls.on('error', () => socket.destroy());
          serve(tls, true);
          return;
        } else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP')
          socket.write('250 2.0.0 ok\r\n');
        else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') {
          socket.end('221 2.0.0 bye\r\n');
          return;
        } else socket.write('502 5.5.2 not implemented\r\n');
      }
    };
    socket.on('data', onData);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return Object.assign(peer, {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
}

/** One DNS question as the responder sees it. */
export interface DnsQuestion {
  name: string;
  type: string;
  /** The query asked for DNSSEC records (the DO bit): the policy resolver's questions do. */
  dnssecOk: boolean;
}

/** What the responder answers: records, AD, an rcode; undefined leaves the question unanswered. */
export interface DnsReply {
  answers?: Answer[];
  secure?: boolean;
  rcode?: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL';
  /** Sent from the `replyFrom` socket instead of the one asked (a spoofed answer). */
  spoofed?: boolean;
}

export interface DnsResponder {
  server: string;
  queries: string[];
  close(): Promise<void>;
}

/**
 * A DNS server on 127.0.0.1 (UDP only: every answer here is small) answering by a function. With
 * `replyFrom`, the answers marked `spoofed` leave from a socket on that address: an attacker
 * answering from an address that was not asked.
 */
export async function startDnsResponder(
  answer: (question: DnsQuestion) => DnsReply | undefined,
  options: { replyFrom?: string } = {},
): Promise<DnsResponder> {
  const queries: string[] = [];
  const bind = (socket: UdpSocket, address: string) =>
    new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => resolve());
    });
  const listener = createSocket('udp4');
  await bind(listener, '127.0.0.1');
  const sender = options.replyFrom === undefined ? listener : createSocket('udp4');
  if (sender !== listener) await bind(sender, options.replyFrom ?? '127.0.0.1');
  listener.on('message', (message, remote) => {
    let query: Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    queries.push(`${question.type} ${name}`);
    const opt = query.additionals?.find((record) => record.type === 'OPT') as
      { flag_do?: boolean } | undefined;
    const reply = answer({ name, type: question.type, dnssecOk: opt?.flag_do === true });
    if (reply === undefined) return;
    const rcode = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 }[reply.rcode ?? 'NOERROR'];
    const flags =
      dnsPacket.RECURSION_DESIRED |
      dnsPacket.RECURSION_AVAILABLE |
      (reply.secure === true ? dnsPacket.AUTHENTIC_DATA : 0) |
      rcode;
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags,
      questions: [question],
      answers: reply.answers ?? [],
    });
    (reply.spoofed === true ? sender : listener).send(response, remote.port, remote.address);
  });
  return {
    server: `127.0.0.1:${listener.address().port}`,
    queries,
    close: async () => {
      await new Promise<void>((resolve) => listener.close(() => resolve()));
      if (sender !== listener) await new Promise<void>((resolve) => sender.close(() => resolve()));
    },
  };
}

export const spkiSha256 = (pem: string): Buffer =>
  createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest();
export const certDigest = (pem: string, algorithm: 'sha256' | 'sha512'): Buffer =>
  createHash(algorithm).update(new X509Certificate(pem).raw).digest();

let sequence = 0;

function message(recipient: string): OutboundMessage {
  const body = Buffer.from(`From: alice@treyresearch.net\r\nSubject: attack\r\n\r\nsecret\r\n`);
  sequence += 1;
  return {
    id: `ATTACK${sequence}.1`,
    from: 'alice@treyresearch.net',
    recipients: [recipient],
    size: body.length,
    receivedAt: new Date(),
    body: () => Promise.resolve(body),
  };
}

export interface GenerationOptions {
  validating?: boolean;
  policies?: Named<TlsPolicySpec>[];
  requireTls?: boolean;
  routing?: { smartHosts: string[] };
  static?: Record<string, { host: string; port?: number }[]>;
}

/** A generation sending everything through one connector to `port`, DNS from `dns`. */
export function attackGeneration(
  dns: string,
  port: number,
  options: GenerationOptions = {},
): Generation {
  const config = runtimeConfig({
    organization: {
      resolver: {
        servers: [dns],
        validating: options.validating ?? true,
        static: options.static ?? {},
      },
      allowInternalPolicyHosts: true,
    },
    sendConnectors: [
      sendConnector('out', {
        domainSecure: false,
        requireTls: options.requireTls ?? false,
        port,
        ...(options.routing === undefined ? {} : { routing: options.routing }),
      }),
    ],
  });
  return buildGeneration({ ...config, tlsPolicies: options.policies ?? [] }, 1);
}

export interface Sent {
  outcome: DeliveryOutcome;
  log: ReturnType<typeof memoryLog>;
  /** The queue's last error: every failure's reply, one a line. */
  lastError: string;
}

/** One message to bob@domain through the send path, with DANE and MTA-STS services. */
export async function sendOne(
  domain: string,
  generation: Generation,
  services: {
    stateDir: string;
    extraCas?: string[];
    mtaStsPort?: number;
    cache?: StsPolicyCache;
    /** A delivery kept across calls (its sessions cached for reuse); closed by the caller. */
    delivery?: KeptDelivery;
  },
): Promise<Sent> {
  const kept = services.delivery;
  const log = kept?.log ?? memoryLog();
  const deliver =
    kept?.deliver ??
    createRemoteDelivery({
      log,
      timeouts: TIMEOUTS,
      dns: { timeoutMs: 1_000, tries: 1 },
      tlsPolicy: {
        cache: services.cache ?? new StsPolicyCache(`${services.stateDir}/mta-sts-${sequence}`),
        ...(services.extraCas === undefined ? {} : { extraCas: services.extraCas }),
        ...(services.mtaStsPort === undefined ? {} : { mtaStsPort: services.mtaStsPort }),
        timeoutMs: 1_000,
      },
    });
  try {
    const [outcome] = await deliver(
      requireDomainName(domain),
      [message(`bob@${domain}`)],
      generation,
      kept?.signal ?? new AbortController().signal,
    );
    assert.ok(outcome);
    return {
      outcome,
      log,
      lastError: outcome.failures.map((f) => smtpReplyText(f.reply)).join('\n'),
    };
  } finally {
    if (kept === undefined) await deliver.close?.();
  }
}

export interface KeptDelivery {
  deliver: ReturnType<typeof createRemoteDelivery>;
  log: ReturnType<typeof memoryLog>;
  /** The queue's one signal: a kept session serves only sends under the signal it opened with. */
  signal: AbortSignal;
}

/** One delivery for several sends, keeping idle sessions `connectionCacheMs` for the next. */
export function keptDelivery(stateDir: string, connectionCacheMs: number): KeptDelivery {
  const log = memoryLog();
  const deliver = createRemoteDelivery({
    log,
    timeouts: TIMEOUTS,
    dns: { timeoutMs: 1_000, tries: 1 },
    connectionCacheMs,
    tlsPolicy: { cache: new StsPolicyCache(`${stateDir}/mta-sts-kept`), timeoutMs: 1_000 },
  });
  return { deliver, log, signal: new AbortController().signal };
}

/** The message waits (a temporary failure for its recipient) with this last error. */
export function assertDeferred(sent: Sent, lastError: RegExp): void {
  assert.equal(sent.outcome.failures.length, 1, `not deferred: ${JSON.stringify(sent.outcome)}`);
  assert.equal(sent.outcome.failures[0]?.permanent, false);
  assert.match(sent.lastError, lastError);
}

/** Delivered: no failure. */
export function assertDelivered(sent: Sent): void {
  assert.deepEqual(sent.outcome.failures, [], sent.lastError);
}
