// A real DNS server on loopback (UDP and TCP on one port 0) answering MX/A/AAAA/TLSA/TXT from a
// table, NXDOMAIN for names it does not know, SERVFAIL for names told to fail; a zone marked
// secure answers with AD, as a validating resolver does for a signed zone. Names can be told to
// truncate over UDP (the answer then comes over TCP) or to go unanswered. Built on dns-packet.
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';

export interface DnsZone {
  MX?: { preference: number; exchange: string }[];
  A?: string[];
  AAAA?: string[];
  /** Answered at this name (write the `_25._tcp.host` name as the zone's key). */
  TLSA?: { usage: number; selector: number; matchingType: number; data: Buffer }[];
  TXT?: string[];
  /** Answers (and the denial of absent types) carry the AD bit. */
  secure?: boolean;
}

export interface DnsServer {
  /** "127.0.0.1:port", as resolver.servers takes it. */
  server: string;
  port: number;
  /** Questions received, "type name", in order (" tcp" appended for those over TCP). */
  queries: string[];
  /** Replaces the table (names lower case, no trailing dot). */
  zones: Map<string, DnsZone>;
  /** Names answered with SERVFAIL. */
  failing: Set<string>;
  /** Names answered over UDP with TC set and no records: the client must ask again over TCP. */
  truncating: Set<string>;
  /** Names never answered (a resolver that times out). */
  silent: Set<string>;
  close(): Promise<void>;
}

const NXDOMAIN = 3;
const SERVFAIL = 2;
const TRUNCATED = 1 << 9;

export async function startDnsServer(table: Record<string, DnsZone>): Promise<DnsServer> {
  const zones = new Map(Object.entries(table).map(([name, zone]) => [canonical(name), zone]));
  const failing = new Set<string>();
  const truncating = new Set<string>();
  const silent = new Set<string>();
  const queries: string[] = [];

  const answer = (message: Buffer, tcp: boolean): Buffer | undefined => {
    let query: Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return undefined; // not DNS: ignore, as a server would
    }
    const question = query.questions?.[0];
    if (question === undefined) return undefined;
    const name = canonical(question.name);
    queries.push(`${question.type} ${name}${tcp ? ' tcp' : ''}`);
    if (silent.has(name)) return undefined;
    const zone = zones.get(name);
    let rcode = 0;
    let flags = dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED;
    const answers: Answer[] = [];
    if (failing.has(name)) rcode = SERVFAIL;
    else if (zone === undefined) rcode = NXDOMAIN;
    else if (!tcp && truncating.has(name)) flags |= TRUNCATED;
    else {
      if (zone.secure === true) flags |= dnsPacket.AUTHENTIC_DATA;
      if (question.type === 'MX') {
        for (const mx of zone.MX ?? [])
          answers.push({ type: 'MX', name: question.name, ttl: 60, data: mx });
      } else if (question.type === 'A' || question.type === 'AAAA') {
        for (const address of zone[question.type] ?? [])
          answers.push({ type: question.type, name: question.name, ttl: 60, data: address });
      } else if (question.type === 'TLSA') {
        for (const tlsa of zone.TLSA ?? [])
          answers.push({
            type: 'TLSA',
            name: question.name,
            ttl: 60,
            data: { ...tlsa, certificate: tlsa.data },
          });
      } else if (question.type === 'TXT') {
        for (const text of zone.TXT ?? [])
          answers.push({ type: 'TXT', name: question.name, ttl: 60, data: text });
      }
    }
    return dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: flags | rcode,
      questions: [question],
      answers,
    });
  };

  const { udp, tcp, port } = await listen(answer);
  return {
    server: `127.0.0.1:${port}`,
    port,
    queries,
    zones,
    failing,
    truncating,
    silent,
    close: async () => {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/** UDP on port 0, then TCP on the same port (again when another socket took it meanwhile). */
async function listen(
  answer: (message: Buffer, tcp: boolean) => Buffer | undefined,
): Promise<{ udp: Socket; tcp: Server; port: number }> {
  for (let attempt = 0; ; attempt += 1) {
    const udp = createSocket('udp4');
    udp.on('message', (message, remote) => {
      const response = answer(message, false);
      if (response !== undefined) udp.send(response, remote.port, remote.address);
    });
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, '127.0.0.1', () => resolve(udp.address().port));
    });
    const tcp = createServer((socket) => {
      // A client that never reads is not waited for at close.
      socket.setTimeout(5_000, () => socket.destroy());
      let received = Buffer.alloc(0);
      socket.on('error', () => socket.destroy());
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        while (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
          const length = received.readUInt16BE(0);
          const response = answer(received.subarray(2, 2 + length), true);
          received = received.subarray(2 + length);
          if (response === undefined) continue;
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(response.length);
          socket.write(Buffer.concat([prefix, response]));
        }
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => resolve());
      });
      return { udp, tcp, port };
    } catch (error) {
      udp.close();
      if (attempt >= 5) throw error;
    }
  }
}

function canonical(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}
