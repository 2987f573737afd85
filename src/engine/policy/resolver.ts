// A DNS stub resolver for TLS policy look-ups (MX, A/AAAA, TLSA, TXT) that knows whether an answer
// was DNSSEC-validated: it asks with the DO bit and AD set (RFC 6840 §5.7) over UDP, again over
// TCP when the answer is truncated, and believes AD only from resolvers the configuration names
// as validating (Postfix's smtp_dns_support_level = dnssec). Bounded: a timeout per try, a few tries.
import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { isIP, connect } from 'node:net';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import { parseHostPort } from '../../units.js';
import type { TlsaRecord } from './tlsa.js';

export interface PolicyResolverSettings {
  /** "ip" or "ip:port" ("[v6]:port"); empty: the system's resolvers. */
  servers: readonly string[];
  /** These servers validate DNSSEC and their AD bit is believed; otherwise no answer is secure. */
  validating: boolean;
  timeoutMs?: number;
  tries?: number;
}

export type DnsStatus = 'answer' | 'nxdomain' | 'nodata';

export interface DnsAnswer<T> {
  status: DnsStatus;
  records: T[];
  /** AD from a validating resolver: the answer (or its denial) is DNSSEC-secure. */
  secure: boolean;
  /**
   * Where the answer's CNAME chain from the name asked ends (lower case, no trailing dot), when
   * there is one: the name the records belong to.
   */
  canonical?: string;
}

/** A look-up that gave no usable answer: SERVFAIL, REFUSED, a timeout, or bytes that do not parse. */
export class DnsLookupError extends Error {
  override name = 'DnsLookupError';
  constructor(
    readonly question: string,
    readonly problem: string,
  ) {
    super(`${question}: ${problem}`);
  }
}

interface Server {
  address: string;
  port: number;
}

type RecordType = 'MX' | 'A' | 'AAAA' | 'TLSA' | 'TXT';

/** A response larger than this over TCP is refused (64 KB is the protocol's own limit). */
const MAX_TCP_RESPONSE = 65_537;

export class PolicyResolver {
  private readonly servers: Server[];
  private readonly timeoutMs: number;
  private readonly tries: number;

  constructor(private readonly settings: PolicyResolverSettings) {
    const written = settings.servers.length > 0 ? settings.servers : getServers();
    this.servers = written.map(parseServer);
    this.timeoutMs = settings.timeoutMs ?? 3_000;
    this.tries = Math.max(1, Math.min(settings.tries ?? 2, 5));
  }

  async mx(name: string): Promise<DnsAnswer<{ preference: number; exchange: string }>> {
    return this.records(name, 'MX', (answer) =>
      answer.type === 'MX'
        ? { preference: answer.data.preference ?? 0, exchange: answer.data.exchange }
        : undefined,
    );
  }

  async addresses(name: string, type: 'A' | 'AAAA'): Promise<DnsAnswer<string>> {
    return this.records(name, type, (answer) => (answer.type === type ? answer.data : undefined));
  }

  /** `_port._tcp.host` (RFC 7672 §2.2.3 / RFC 6698 §3). */
  async tlsa(host: string, port: number): Promise<DnsAnswer<TlsaRecord>> {
    return this.records(`_${port}._tcp.${host}`, 'TLSA', (answer) =>
      answer.type === 'TLSA'
        ? {
            usage: answer.data.usage,
            selector: answer.data.selector,
            matchingType: answer.data.matchingType,
            data: Buffer.from(answer.data.certificate),
          }
        : undefined,
    );
  }

  /** Each TXT record as its strings joined (RFC 7208 §3.3 style). */
  async txt(name: string): Promise<DnsAnswer<string>> {
    return this.records(name, 'TXT', (answer) => {
      if (answer.type !== 'TXT') return undefined;
      const parts = Array.isArray(answer.data) ? answer.data : [answer.data];
      return parts
        .map((part) => (Buffer.isBuffer(part) ? part.toString('utf8') : String(part)))
        .join('');
    });
  }

  private async records<T>(
    name: string,
    type: RecordType,
    pick: (answer: Answer) => T | undefined,
  ): Promise<DnsAnswer<T>> {
    const response = await this.query(name, type);
    const secure = this.settings.validating && response.flag_ad === true;
    const rcode = response.rcode ?? 'NOERROR';
    if (rcode === 'NXDOMAIN') return { status: 'nxdomain', records: [], secure };
    if (rcode !== 'NOERROR') throw new DnsLookupError(`${type} ${name}`, rcode);
    const answers = response.answers ?? [];
    const records = answers.map(pick).filter((record): record is T => record !== undefined);
    const canonical = cnameTarget(answers, name);
    return {
      status: records.length > 0 ? 'answer' : 'nodata',
      records,
      secure,
      ...(canonical === undefined ? {} : { canonical }),
    };
  }

  /** Each server in turn, `tries` rounds; the last problem when none answered. */
  private async query(
    name: string,
    type: RecordType,
  ): Promise<Packet & { flag_ad?: boolean; rcode?: string }> {
    const question = `${type} ${name}`;
    let problem = 'no resolver configured';
    for (let round = 0; round < this.tries; round += 1) {
      for (const server of this.servers) {
        try {
          const id = Math.floor(Math.random() * 65_536);
          const request = encodeQuery(id, name, type);
          let response = await udpExchange(server, request, id, this.timeoutMs);
          if (response.flag_tc === true)
            response = await tcpExchange(server, request, id, this.timeoutMs);
          if (!sameQuestion(response, name, type))
            throw new Error('the answer is for another question');
          // SERVFAIL from one server may be its own trouble; REFUSED too: try the next.
          if (response.rcode === 'SERVFAIL' || response.rcode === 'REFUSED') {
            problem = response.rcode;
            continue;
          }
          return response;
        } catch (error) {
          problem = (error as Error).message;
        }
      }
    }
    throw new DnsLookupError(question, problem);
  }
}

function parseServer(text: string): Server {
  if (isIP(text) !== 0) return { address: text, port: 53 };
  const parsed = parseHostPort(text);
  if (parsed === undefined || isIP(parsed.host) === 0)
    throw new Error(`resolver server ${JSON.stringify(text)} is not an IP address or ip:port`);
  return { address: parsed.host, port: parsed.port };
}

function encodeQuery(id: number, name: string, type: RecordType): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ type, name }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: dnsPacket.DNSSEC_OK,
        flag_do: true,
        options: [],
      },
    ],
  });
}

type Decoded = Packet & { flag_ad?: boolean; flag_tc?: boolean; rcode?: string };

function sameQuestion(response: Decoded, name: string, type: RecordType): boolean {
  const question = response.questions?.[0];
  if (question === undefined) return false;
  return question.type === type && fold(question.name) === fold(name);
}

/** DNS names compared as DNS compares them (RFC 4343: only ASCII letters fold), no trailing dot. */
function fold(value: string): string {
  return value
    .replace(/\.$/, '')
    .replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** CNAME chains longer than this are not followed (resolvers stop well before). */
const MAX_CNAME_CHAIN = 16;

/** The end of the answer's CNAME chain from `name`, if it has one. */
function cnameTarget(answers: readonly Answer[], name: string): string | undefined {
  let current = fold(name);
  const start = current;
  for (let hop = 0; hop < MAX_CNAME_CHAIN; hop += 1) {
    let target: string | undefined;
    for (const answer of answers)
      if (answer.type === 'CNAME' && fold(answer.name) === current) target = answer.data;
    if (target === undefined) break;
    current = fold(target);
  }
  return current === start ? undefined : current;
}

function decode(bytes: Buffer, id: number): Decoded | undefined {
  try {
    const packet = dnsPacket.decode(bytes) as Decoded;
    return packet.type === 'response' && packet.id === id ? packet : undefined;
  } catch {
    return undefined;
  }
}

function udpExchange(
  server: Server,
  request: Buffer,
  id: number,
  timeoutMs: number,
): Promise<Decoded> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIP(server.address) === 6 ? 'udp6' : 'udp4');
    const finish = (error: Error | undefined, packet?: Decoded) => {
      clearTimeout(timer);
      socket.close();
      if (packet !== undefined) resolve(packet);
      else reject(error ?? new Error('no answer'));
    };
    const timer = setTimeout(() => finish(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (error) => finish(error));
    socket.on('message', (message, remote) => {
      // Only the server asked, and only the answer to this id: anything else is ignored.
      if (remote.port !== server.port || remote.address !== server.address) return;
      const packet = decode(message, id);
      if (packet !== undefined) finish(undefined, packet);
    });
    socket.send(request, server.port, server.address, (error) => {
      if (error) finish(error);
    });
  });
}

function tcpExchange(
  server: Server,
  request: Buffer,
  id: number,
  timeoutMs: number,
): Promise<Decoded> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.address, port: server.port });
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (error: Error | undefined, packet?: Decoded) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (packet !== undefined) resolve(packet);
      else reject(error ?? new Error('no answer over TCP'));
    };
    const timer = setTimeout(
      () => finish(new Error(`TCP timeout after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('error', (error) => finish(new Error(`TCP: ${error.message}`)));
    socket.on('connect', () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(request.length);
      socket.write(Buffer.concat([length, request]));
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length > MAX_TCP_RESPONSE) return finish(new Error('TCP answer too large'));
      if (received.length < 2) return;
      const length = received.readUInt16BE(0);
      if (received.length < 2 + length) return;
      const packet = decode(received.subarray(2, 2 + length), id);
      finish(packet === undefined ? new Error('TCP answer does not parse') : undefined, packet);
    });
    socket.on('end', () => finish(new Error('TCP connection closed before the answer')));
  });
}
