// A real DNS server on loopback UDP (port 0) answering MX/A/AAAA from a table, NXDOMAIN for names
// it does not know, SERVFAIL for names told to fail; built on dns-packet. For resolver tests.
import { createSocket } from 'node:dgram';
import dnsPacket, { type Answer } from 'dns-packet';

export interface DnsZone {
  MX?: { preference: number; exchange: string }[];
  A?: string[];
  AAAA?: string[];
}

export interface DnsServer {
  /** "127.0.0.1:port", as resolver.servers takes it. */
  server: string;
  port: number;
  /** Questions received, "type name", in order. */
  queries: string[];
  /** Replaces the table (names lower case, no trailing dot). */
  zones: Map<string, DnsZone>;
  /** Names answered with SERVFAIL. */
  failing: Set<string>;
  close(): Promise<void>;
}

const NXDOMAIN = 3;
const SERVFAIL = 2;

export async function startDnsServer(table: Record<string, DnsZone>): Promise<DnsServer> {
  const zones = new Map(Object.entries(table).map(([name, zone]) => [canonical(name), zone]));
  const failing = new Set<string>();
  const queries: string[] = [];
  const socket = createSocket('udp4');

  socket.on('message', (message, remote) => {
    let query;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return; // not DNS: ignore, as a server would
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    const name = canonical(question.name);
    queries.push(`${question.type} ${name}`);
    const zone = zones.get(name);
    let rcode = 0;
    const answers: Answer[] = [];
    if (failing.has(name)) rcode = SERVFAIL;
    else if (zone === undefined) rcode = NXDOMAIN;
    else if (question.type === 'MX') {
      for (const mx of zone.MX ?? []) {
        answers.push({ type: 'MX', name: question.name, ttl: 60, data: mx });
      }
    } else if (question.type === 'A' || question.type === 'AAAA') {
      for (const address of zone[question.type] ?? []) {
        answers.push({ type: question.type, name: question.name, ttl: 60, data: address });
      }
    }
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | rcode,
      questions: [question],
      answers,
    });
    socket.send(response, remote.port, remote.address);
  });

  const port = await new Promise<number>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve(socket.address().port));
  });
  return {
    server: `127.0.0.1:${port}`,
    port,
    queries,
    zones,
    failing,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function canonical(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}
