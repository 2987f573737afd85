// One SMTP listener per binding: smtp-server speaks the protocol and domsec's policy
// runs in its hooks. A session keeps the generation current at its connect; reload() serves new
// sessions and new TLS handshakes from the next generation without closing the listener.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerDataStream,
  type SMTPServerOptions,
  type SMTPServerSession,
} from 'smtp-server';
import type { Binding } from './addresses.js';
import type { Generation, LoadedPartner, LoadedReceiveConnector } from './generation.js';
import type { EngineLog } from './log.js';
import type { MessageSink } from './message-sink.js';
import type { StorageGuard } from './queue/storage-guard.js';
import { queueMessage } from './receive/queue-message.js';
import { newReceiveSession, type ReceiveSession } from './receive/session.js';
import type { ProtocolEvent, ProtocolLog } from './protocol-log.js';
import { coversHost } from '../certificate-names.js';
import {
  decideRecipient,
  decideSender,
  largestMessageSize,
  placeConnection,
} from './receive/policy.js';
import {
  describeHandshake,
  offersStartTls,
  tlsFacts,
  tlsIdentity,
  tlsOptions,
  type TlsFacts,
} from './receive/server-tls.js';
import { smtpServerLogger } from './receive/protocol-trace.js';
import {
  ConnectionCounter,
  fromPartnerRange,
  type Admission,
  type SessionCounter,
  type StressChange,
} from './receive/capacity.js';
import { adaptSmtpServer } from './receive/smtp-server-adapter.js';
import {
  DEFAULT_RECEIVE_LIMITS,
  ReceiveLimiter,
  recipientLimitReply,
  type ReceiveLimits,
} from './receive/limits.js';
import { REPLIES, SmtpReplyError } from './replies.js';
import { verifyPeer, type PeerVerdict } from './tls/verify.js';
import { loggedEvents, type EngineEvents } from './events.js';
import { addressDomain, parseAddress } from '../domain-name.js';

export interface ReceiveListenerOptions {
  binding: Binding;
  /** The current generation; a session keeps the one current at its connect. */
  generation: () => Generation;
  /** resolve = durably queued; only then does the client get 250. */
  sink: MessageSink;
  log: EngineLog;
  protocolLog: ProtocolLog;
  /** How long close() lets sessions in flight finish before ending them (ms). */
  closeTimeout?: number;
  /**
   * Line and junk-command limits, and the idle time before a session is placed; DEFAULT_RECEIVE_LIMITS
   * for what is not given. The others are the placed connector's, read at session start.
   */
  limits?: Partial<ReceiveLimits>;
  /**
   * Sessions counted against connector limits, shared by an engine's listeners so that a
   * connector bound to several addresses (or being rebound) has one count; one per listener alone.
   * A receive worker's asks the primary, so that the count is the group's.
   */
  counter?: SessionCounter;
  /**
   * The secret session ticket keys are made from, shared by the receive processes of a group
   * (server-tls.ts ticketKeys); read at each new SecureContext. Undefined: OpenSSL's own keys.
   */
  ticketSecret?: () => Buffer | undefined;
  /** Shared by an engine's listeners: while the queue is short of storage, MAIL FROM gets 452 4.3.1. */
  storage?: StorageGuard;
  /** Where partner refusals and stress changes are told; its log only when not given. */
  events?: EngineEvents;
}

const DEFAULT_CLOSE_TIMEOUT = 5_000;
/** After the grace period: how long ended sockets may take to flush their 421 before being cut. */
const FLUSH_TIMEOUT = 1_000;

export class ReceiveListener {
  private readonly server: SMTPServer;
  private readonly sessions = new Map<string, ReceiveSession>();
  private readonly sockets = new Set<Socket>();
  private latest: Generation | undefined;
  private tlsIdentity: string;
  private listening = false;
  private closing: Promise<void> | undefined;
  private readonly counter: SessionCounter;
  /** Sessions whose admission is being asked for; true once the client left meanwhile. */
  private readonly admitting = new Map<string, boolean>();
  private readonly limiter: ReceiveLimiter;
  private readonly unwatchStress: () => void;
  private readonly events: EngineEvents;

  constructor(private readonly options: ReceiveListenerOptions) {
    this.counter = options.counter ?? new ConnectionCounter();
    this.events = options.events ?? loggedEvents(options.log);
    const generation = options.generation();
    const limits = { ...DEFAULT_RECEIVE_LIMITS, ...options.limits };
    this.tlsIdentity = tlsIdentity(generation);
    const serverOptions: SMTPServerOptions = {
      secure: false,
      name: generation.hostname,
      banner: 'domsec',
      size: largestMessageSize(generation, options.binding) || undefined,
      ...tlsOptions(generation, options.ticketSecret?.()),
      requestCert: true,
      // Decided per transaction at MAIL FROM, so that the reply can say why.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      disabledCommands: ['AUTH'],
      disableReverseLookup: true,
      closeTimeout: options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT,
      socketTimeout: limits.idleTimeout,
      maxCommandLength: limits.commandLineLength,
      // Our refusals carry their enhanced code in the text (SmtpReplyError), smtp-server's own
      // mapping would prefix a second, different one: ENHANCEDSTATUSCODES stays hidden.
      hideENHANCEDSTATUSCODES: true,
      onConnect: (session, callback) => {
        const answer = this.onConnect(session);
        if (!(answer instanceof Promise)) {
          callback(answer);
          return;
        }
        // No greeting until the admission is had; a client gone meanwhile gets nothing.
        answer.then(
          (error) => {
            if (error !== null) callback(error);
          },
          (error: Error) => callback(error),
        );
      },
      onSecure: (socket, session, callback) => callback(this.onSecure(socket, session)),
      onMailFrom: (address, session, callback) => {
        const storage = this.options.storage;
        if (storage === undefined || !storage.suspected) {
          callback(this.onMailFrom(address, session));
          return;
        }
        storage.isShort().then(
          (short) =>
            callback(short ? this.refuseShortStorage(session) : this.onMailFrom(address, session)),
          (error: Error) => callback(error),
        );
      },
      onRcptTo: (address, session, callback) => callback(this.onRcptTo(address, session)),
      onData: (stream, session, callback) => {
        this.onData(stream, session).then(
          (reply) => callback(null, reply),
          (error: Error) => callback(error),
        );
      },
      onClose: (session) => this.onClose(session),
    };
    this.server = new SMTPServer(serverOptions);
    // Given as the `logger` option, smtp-server would wrap the trace in a logger that copies every
    // entry (some twenty per session) before handing it on: the trace reads its lines directly.
    this.server.logger = smtpServerLogger((id, event, data) => this.traceById(id, event, data));
    this.limiter = new ReceiveLimiter(limits);
    // Greeting at once, and the limits on each connection: the only patches of smtp-server.
    adaptSmtpServer(this.server, {
      greetAtOnce: true,
      connection: (connection) => this.limiter.connection(connection),
    });
    // A connector under stress (counted across the engine's listeners) shortens the waits of its
    // sessions on every listener, this one included.
    this.unwatchStress = this.counter.watch((change) =>
      change.stressed ? this.limiter.stress(change.connector) : 0,
    );
    this.server.on('error', (error: Error & { remoteAddress?: string }) => {
      if (!this.listening) return; // listen() reports its own failure
      options.log.log('debug', 'receive.connection-error', {
        binding: options.binding.text,
        remote: error.remoteAddress,
        error: error.message,
      });
    });
    this.server.server.on('connection', (socket: Socket) => {
      socket.setNoDelay(true); // Nagle and delayed ACK cost ~40 ms per pipelined exchange
      // STARTTLS strips every listener off the raw socket (smtp-server's upgrade), so a 'close'
      // listener cannot keep this set current: it is pruned here and read with care in close().
      for (const known of this.sockets) if (known.destroyed) this.sockets.delete(known);
      this.sockets.add(socket);
    });
  }

  /** Binds the binding; rejects (EADDRINUSE, EADDRNOTAVAIL, ...) leaving nothing bound. */
  async listen(): Promise<void> {
    const net = this.server.server;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        net.off('listening', onListening);
        reject(error);
      };
      const onListening = () => {
        net.off('error', onError);
        resolve();
      };
      net.once('error', onError);
      net.once('listening', onListening);
      this.server.listen(this.options.binding.port, this.options.binding.host);
    });
    this.listening = true;
  }

  address(): { address: string; port: number } | null {
    const bound = this.listening ? this.server.server.address() : null;
    return bound !== null && typeof bound === 'object'
      ? { address: bound.address, port: bound.port }
      : null;
  }

  /** New handshakes use the new certificate and CA list; new sessions the new generation. */
  reload(generation: Generation): void {
    this.latest = generation;
    // smtp-server reads these per connection, so sessions in flight keep what they greeted with.
    this.server.options.name = generation.hostname;
    this.server.options.size = largestMessageSize(generation, this.options.binding) || undefined;
    const identity = tlsIdentity(generation);
    if (identity === this.tlsIdentity) return;
    try {
      // One new SecureContext for all later handshakes; live TLS sessions keep theirs.
      this.server.updateSecureContext(tlsOptions(generation, this.options.ticketSecret?.()));
      this.tlsIdentity = identity;
    } catch (error) {
      this.options.log.log('error', 'receive.reload-failed', {
        binding: this.options.binding.text,
        generation: generation.number,
        error: (error as Error).message,
      });
    }
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Stops accepting; resolves once every session has ended (at most the close timeout, plus a flush). */
  close(): Promise<void> {
    this.unwatchStress();
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (!this.listening) return;
    const net = this.server.server;
    const closed = new Promise<void>((resolve) => net.once('close', () => resolve()));
    // smtp-server answers 421 to sessions still open after closeTimeout and ends them.
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Sessions still open got their 421 and were ended; give that a moment to flush, then cut.
    const deadline = Date.now() + FLUSH_TIMEOUT;
    while ([...this.sockets].some((s) => !s.destroyed) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
    this.listening = false;
  }

  private currentGeneration(): Generation {
    const provided = this.options.generation();
    const latest = this.latest;
    return latest !== undefined && latest.number > provided.number ? latest : provided;
  }

  // ------------------------------------------------------------------------------------------
  // smtp-server hooks

  /**
   * Places the connection on a connector and counts it in. Undefined: greet; an error: refuse
   * with it; a promise when the count is asked for elsewhere, of null when the client left while
   * it was asked (its count is given back at once).
   */
  private onConnect(
    session: SMTPServerSession,
  ): Error | undefined | Promise<Error | undefined | null> {
    const generation = this.currentGeneration();
    const connector = placeConnection(generation, this.options.binding, session.remoteAddress);
    if (connector === undefined) {
      this.options.log.log('info', 'receive.connection-refused', {
        binding: this.options.binding.text,
        remote: session.remoteAddress,
      });
      return new SmtpReplyError(REPLIES.connectionRefused);
    }
    // A client inside a partner's remoteIPRanges may use the capacity strangers cannot.
    const partnerRange = fromPartnerRange(generation, session.remoteAddress);
    const admission = this.counter.admit(
      connector.name,
      session.remoteAddress,
      connector.limits,
      partnerRange,
    );
    if (!(admission instanceof Promise))
      return this.admitted(session, generation, connector, partnerRange, admission);
    this.admitting.set(session.id, false);
    return admission.then((answer) => {
      const left = this.admitting.get(session.id) === true;
      this.admitting.delete(session.id);
      if (left) {
        if (answer.refusal === undefined)
          this.counter.release(connector.name, session.remoteAddress);
        return null;
      }
      return this.admitted(session, generation, connector, partnerRange, answer);
    });
  }

  private admitted(
    session: SMTPServerSession,
    generation: Generation,
    connector: LoadedReceiveConnector,
    partnerRange: boolean,
    admission: Admission,
  ): Error | undefined {
    // The connector's limits as this generation has them hold for the whole session.
    const limits = connector.limits;
    if (admission.stress !== undefined) this.logStress(admission.stress);
    const overLimit = admission.refusal;
    if (overLimit !== undefined) {
      this.options.log.log('info', 'receive.connection-limit', {
        connector: connector.name,
        remote: session.remoteAddress,
        reply: `${overLimit.code} ${overLimit.enhanced}`,
        ...(partnerRange ? { partnerRange } : {}),
      });
      return new SmtpReplyError(overLimit);
    }
    // Exchange offers STARTTLS only on a connector whose AuthMechanism has Tls: elsewhere it is
    // neither announced in EHLO nor accepted (smtp-server answers it as an unknown command).
    if (!offersStartTls(connector.spec)) session.disabledCommands = ['AUTH', 'STARTTLS'];
    const state = newReceiveSession(session, generation, connector);
    this.sessions.set(session.id, state);
    this.limiter.place(session.id, connector.name, limits, this.counter.stressed(connector.name));
    this.trace(state, '+', '', `generation ${generation.number}`);
    return undefined;
  }

  private onSecure(socket: Socket | TLSSocket, session: SMTPServerSession): undefined {
    if (!(socket instanceof TLSSocket)) return undefined;
    // A client-started TLS 1.2 renegotiation costs us a handshake each time for nothing it needs
    // (testssl's secure_client_renego); TLS 1.3 has none. Before the first command is read.
    socket.disableRenegotiation();
    const state = this.sessions.get(session.id);
    if (state === undefined) return undefined;
    socket.setNoDelay(true);
    state.tls = tlsFacts(socket);
    // Formatting the chain's names costs a little per connection: only for a log that keeps it.
    if (state.connector.spec.protocolLogging === 'verbose')
      for (const line of describeHandshake(state.tls)) this.trace(state, '*', line);
    return undefined;
  }

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession): Error | undefined {
    const state = this.sessions.get(session.id);
    if (state === undefined) return new SmtpReplyError(REPLIES.localError);
    state.domainSecured = undefined;
    const canonical = canonicalEnvelopeAddress(address);
    if (canonical !== undefined) {
      this.trace(state, '*', `refused: sender ${JSON.stringify(address.address)}: ${canonical}`);
      return new SmtpReplyError(REPLIES.badSenderDomain, canonical);
    }
    const size = address.args === false ? undefined : address.args.SIZE;
    const decision = decideSender({
      generation: state.generation,
      connector: state.connector,
      sender: address.address,
      declaredSize: typeof size === 'string' ? Number(size) : undefined,
      remoteAddress: state.remoteAddress,
      tls: state.tls,
      verdict: (partner, tls) => this.verdict(state, partner, tls),
    });
    if (!decision.accepted) {
      const partner = decision.partner?.domain;
      this.trace(
        state,
        '*',
        `${partner === undefined ? '' : `partner ${partner} `}refused: ${decision.reason}`,
      );
      if (partner !== undefined && !state.refusedPartners.has(partner)) {
        state.refusedPartners.add(partner);
        this.events.emit({
          type: 'partner.refused',
          partner,
          reason: decision.reason,
          reply: `${decision.reply.code} ${decision.reply.enhanced}`,
          remote: state.remote,
          connector: state.connector.name,
          session: state.id,
          ehlo: session.hostNameAppearsAs || undefined,
        });
      }
      return new SmtpReplyError(decision.reply);
    }
    const secured = decision.domainSecured;
    if (secured !== undefined) {
      state.domainSecured = secured;
      this.trace(
        state,
        '*',
        `domain-secured for partner ${secured.partner}: subject="${secured.certificateSubject}" fingerprint=${secured.certificateFingerprint}`,
      );
      const verdict =
        decision.partner === undefined ? undefined : state.verdicts.get(decision.partner);
      if (verdict?.ok === true) this.noteEhloName(state, session, verdict.names);
    }
    return undefined;
  }

  /** MAIL FROM while the queue cannot keep mail (queue/storage-guard.ts): 452 4.3.1 before any data. */
  private refuseShortStorage(session: SMTPServerSession): Error {
    const state = this.sessions.get(session.id);
    if (state !== undefined) this.trace(state, '*', 'refused: the queue is short of storage');
    return new SmtpReplyError(REPLIES.storageFull);
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession): Error | undefined {
    const state = this.sessions.get(session.id);
    if (state === undefined) return new SmtpReplyError(REPLIES.localError);
    const overLimit = recipientLimitReply(session, state.connector.limits);
    if (overLimit !== undefined) return new SmtpReplyError(overLimit);
    const canonical =
      canonicalEnvelopeAddress(address) ?? routableRecipient(address, state.generation);
    if (canonical !== undefined) {
      this.trace(state, '*', `refused: recipient ${JSON.stringify(address.address)}: ${canonical}`);
      return new SmtpReplyError(REPLIES.badRecipientDomain, canonical);
    }
    const refusal = decideRecipient(state.generation, state.connector, address.address);
    return refusal === undefined ? undefined : new SmtpReplyError(refusal);
  }

  /** Resolves with the 250 text once the sink has the message durably; rejects with the refusal. */
  private async onData(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const state = this.sessions.get(session.id);
    if (state === undefined) throw new SmtpReplyError(REPLIES.localError);
    const { ids, size } = await queueMessage(
      stream,
      {
        hostname: state.generation.hostname,
        sessionId: state.id,
        connector: state.connector.name,
        remoteAddress: state.remoteAddress,
        tls: state.tls,
        domainSecured: state.domainSecured,
        maxMessageSize: state.connector.maxMessageSize,
        maxHeaderSize: state.connector.limits.maxHeaderSize,
        trace: (line) => this.trace(state, '*', line),
      },
      session,
      this.options.sink,
      this.options.log,
      this.options.storage,
    );
    this.trace(state, '*', `message of ${size} bytes queued as ${ids.join(' ')}`);
    return `2.6.0 Ok: queued as ${ids.join(' ')}`;
  }

  private onClose(session: SMTPServerSession): void {
    if (this.admitting.has(session.id)) this.admitting.set(session.id, true);
    const state = this.sessions.get(session.id);
    if (state === undefined) return;
    this.trace(state, '-', '');
    const stress = this.counter.release(state.connector.name, state.remoteAddress);
    this.sessions.delete(session.id);
    if (stress !== undefined) this.logStress(stress);
  }

  /** Once per start or end of a connector's stress, by the listener whose session caused it. */
  private logStress(change: StressChange): void {
    const { stressed, ...counts } = change;
    this.events.emit({
      type: stressed ? 'receive.stress-started' : 'receive.stress-ended',
      ...counts,
    });
  }

  // ------------------------------------------------------------------------------------------

  private verdict(state: ReceiveSession, partner: LoadedPartner, tls: TlsFacts): PeerVerdict {
    let verdict = state.verdicts.get(partner);
    if (verdict === undefined) {
      verdict = verifyPeer({
        chain: tls.chain,
        partner,
        role: 'client',
        opensslError: tls.authorized ? null : tls.authorizationError,
      });
      state.verdicts.set(partner, verdict);
    }
    return verdict;
  }

  /** The EHLO name is logged beside the certificate names; a mismatch is only a note. */
  private noteEhloName(state: ReceiveSession, session: SMTPServerSession, names: string[]): void {
    const ehlo = session.hostNameAppearsAs || '';
    if (ehlo !== '' && !coversHost(names, ehlo)) {
      const list = names.join(', ');
      this.trace(state, '*', `note: EHLO name ${ehlo} is not among the certificate names ${list}`);
    }
  }

  private traceById(sessionId: string, event: ProtocolEvent, data: string): void {
    const state = this.sessions.get(sessionId);
    if (state === undefined || state.connector.spec.protocolLogging !== 'verbose') return;
    // A multi-line reply (EHLO) is one line per event, as Exchange logs it.
    for (const line of data.split('\r\n')) this.trace(state, event, line);
  }

  private trace(state: ReceiveSession, event: ProtocolEvent, data: string, context?: string): void {
    const verbose = state.connector.spec.protocolLogging === 'verbose';
    if (!verbose) return;
    this.options.protocolLog.write(
      {
        connector: state.connector.name,
        sessionId: state.id,
        sequence: state.sequence++,
        local: state.local,
        remote: state.remote,
        event,
        data,
        ...(context === undefined ? {} : { context }),
      },
      verbose,
    );
  }
}

/**
 * The envelope boundary: an address's domain is rewritten to its canonical form in place
 * (smtp-server keeps this object in session.envelope, and hands recipient domains over as
 * U-labels), so the queue, routing and marking only ever see one spelling. Returns why the domain
 * is not a domain name, or undefined when the address is now canonical (or has no domain).
 */
function canonicalEnvelopeAddress(address: SMTPServerAddress): string | undefined {
  const parsed = parseAddress(address.address);
  if (!parsed.ok) return parsed.reason;
  if (parsed.address !== undefined) address.address = parsed.address.address;
  return undefined;
}

/**
 * A recipient the queue can route: `<postmaster>` without a domain (RFC 5321 §4.1.1.3: it must be
 * accepted) becomes postmaster of our first accepted domain; an address literal or any other
 * address without a domain name is refused, since no queue, partner or mailbox is keyed on one.
 */
function routableRecipient(address: SMTPServerAddress, generation: Generation): string | undefined {
  if (!address.address.includes('@')) {
    const ours = generation.acceptedDomains.values().next();
    // eslint-disable-next-line no-restricted-syntax -- the local part "postmaster", any case
    if (address.address.toLowerCase() !== 'postmaster' || ours.done === true)
      return 'an address without a domain';
    address.address = `postmaster@${ours.value}`;
    return undefined;
  }
  if (parseAddress(address.address).ok && addressDomain(address.address) === undefined)
    return 'an address literal is not routed';
  return undefined;
}
