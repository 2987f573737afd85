// What domsec keeps per SMTP session beside smtp-server's own session object: the generation and
// connector it was placed on at connect, its TLS facts, and the verdicts taken on them.
import type { SMTPServerSession } from 'smtp-server';
import type { Generation, LoadedPartner, LoadedReceiveConnector } from '../generation.js';
import type { DomainSecuredBy } from '../message-sink.js';
import type { PeerVerdict } from '../tls/verify.js';
import type { TlsFacts } from './server-tls.js';
import { formatEndpoint } from '../../units.js';

export interface ReceiveSession {
  id: string;
  generation: Generation;
  connector: LoadedReceiveConnector;
  remoteAddress: string;
  local: string;
  remote: string;
  sequence: number;
  tls: TlsFacts | null;
  verdicts: Map<LoadedPartner, PeerVerdict>;
  refusedPartners: Set<string>;
  /** Set by an accepted MAIL FROM of a verified partner, for this transaction's DATA. */
  domainSecured: DomainSecuredBy | undefined;
}

export function newReceiveSession(
  session: SMTPServerSession,
  generation: Generation,
  connector: LoadedReceiveConnector,
): ReceiveSession {
  return {
    id: session.id,
    generation,
    connector,
    remoteAddress: session.remoteAddress,
    local: formatEndpoint(session.localAddress, session.localPort),
    remote: formatEndpoint(session.remoteAddress, session.remotePort),
    sequence: 0,
    tls: null,
    verdicts: new Map(),
    refusedPartners: new Set(),
    domainSecured: undefined,
  };
}
