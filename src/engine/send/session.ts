// One SMTP or LMTP client session to one hop (a remote MX or smart host, or the internal relay), on
// nodemailer's SMTPConnection: connect, STARTTLS by the TLS policy, a partner's certificate checked
// BEFORE MAIL FROM, then messages (RSET between) and QUIT. Failures of the hop throw HopFailure with
// the reply to quote; a message's own refusal (LMTP: each recipient's) is its DeliveryOutcome.
import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { NextHop } from '../dns.js';
import type { EngineLog } from '../log.js';
import { loggedEvents, type EngineEvents } from '../events.js';
import type { ProtocolLog, ProtocolEvent } from '../protocol-log.js';
import { REPLIES } from '../replies.js';
import { authorizationCode, distinguishedName, peerChain, verifyPeer } from '../tls/verify.js';
import { hasEightBitBytes, readStoredBody, type MessageContent } from '../queue/message-body.js';
import type { DeliveryOutcome, OutboundMessage } from '../queue/outcome.js';
import {
  HopFailure,
  hopReply,
  messageRefusal,
  recipientOutcome,
  type SmtpError,
} from './remote-replies.js';
import { clientTlsOptions, tlsMandatory, type SessionTlsPolicy } from './client-tls.js';
import { formatEndpoint } from '../../units.js';
import {
  judgePublishedPolicy,
  missingTlsReply,
  type PublishedPolicy,
} from '../policy/session-policy.js';
import { withDetail } from '../../smtp-reply.js';
import { certificateDnsNames, coversHost } from '../../certificate-names.js';
import type { DomainName } from '../../domain-name.js';
import { noPolicyResult, partnerResult, publishedPolicyResult } from '../tlsrpt/session-result.js';

export { tlsMandatory, type SessionTlsPolicy } from './client-tls.js';

export interface SendTimeouts {
  connectMs: number;
  greetingMs: number;
  /** Inactivity on an open session. */
  socketMs: number;
}

export const DEFAULT_SEND_TIMEOUTS: SendTimeouts = {
  connectMs: 30_000,
  greetingMs: 30_000,
  socketMs: 300_000,
};

/** SMTP client sessions open now (connected and not yet ended), by what they serve. */
export class OpenSessions {
  private readonly counts = new Map<string, number>();

  add(connector: string): void {
    this.counts.set(connector, (this.counts.get(connector) ?? 0) + 1);
  }

  remove(connector: string): void {
    const left = (this.counts.get(connector) ?? 0) - 1;
    if (left > 0) this.counts.set(connector, left);
    else this.counts.delete(connector);
  }

  count(connector: string): number {
    return this.counts.get(connector) ?? 0;
  }
}

export interface SessionSettings {
  hop: NextHop;
  /** Our EHLO (LHLO) name. */
  hostname: string;
  policy: SessionTlsPolicy;
  /** LMTP (RFC 2033): LHLO, and one reply per recipient after the data. */
  lmtp?: boolean;
  /** The send connector's name, or what else the session serves; for the logs. */
  connector: string;
  log: EngineLog;
  /** Where partner verifications and refusals are told; the log only when not given. */
  events?: EngineEvents | undefined;
  /** Written when the connector's protocolLogging is verbose. */
  protocolLog?: ProtocolLog | undefined;
  protocolLogging: boolean;
  timeouts: SendTimeouts;
  signal: AbortSignal;
  /** Counts this session from its first connection attempt until it ends (status, metrics). */
  openSessions?: OpenSessions | undefined;
  /**
   * Mail by MX to a domain that publishes no DANE or MTA-STS policy for this hop: TLS reporting
   * counts the session for it as no-policy-found (RFC 8460 §4.4), TLS or starttls-not-supported.
   */
  noPolicyDomain?: DomainName | undefined;
}

export class SmtpClientSession {
  private failure: SmtpError | undefined;
  private ended = false;
  private readonly endWaiters = new Set<() => void>();
  private sequence = 0;
  private endpoints: { local: string; remote: string };

  private constructor(
    private readonly connection: SMTPConnection,
    private readonly settings: SessionSettings,
  ) {
    this.endpoints = { local: '', remote: formatEndpoint(settings.hop.address, settings.hop.port) };
    settings.openSessions?.add(settings.connector);
  }

  /** Connects, negotiates TLS by the policy and verifies a partner; throws HopFailure. */
  static async open(settings: SessionSettings): Promise<SmtpClientSession> {
    const { hop, policy, timeouts } = settings;
    const mandatory = tlsMandatory(policy);
    const tls = clientTlsOptions(policy, hop.host);
    const verbose = settings.protocolLogging && settings.protocolLog !== undefined;
    const holder: { session?: SmtpClientSession } = {};
    const connection = new SMTPConnection({
      host: hop.address,
      port: hop.port,
      name: settings.hostname,
      lmtp: settings.lmtp === true,
      secure: false,
      requireTLS: mandatory, // never a plaintext fallback, whatever the server offers
      opportunisticTLS: !mandatory && policy.kind !== 'none', // an MTA-STS policy in testing too
      ignoreTLS: policy.kind === 'none',
      servername: tls.servername,
      connectionTimeout: timeouts.connectMs,
      greetingTimeout: timeouts.greetingMs,
      socketTimeout: timeouts.socketMs,
      tls, // probe.ts makes its handshake with the same options
      // transactionLog hands commands and replies to the logger, never the message (that is debug).
      transactionLog: verbose,
      logger: verbose ? protocolLogger(() => holder.session) : false,
    });
    // TCP_NODELAY: nodemailer sets it on the socket in _onConnect; the TLS socket of
    // STARTTLS writes through that same socket, so both phases go out without Nagle's delay.
    const session = new SmtpClientSession(connection, settings);
    holder.session = session;
    connection.on('error', (error: SmtpError) => {
      session.failure ??= error;
      session.note(`error: ${error.message}`);
    });
    connection.on('end', () => session.onEnd());
    if (settings.signal.aborted)
      throw new HopFailure(withDetail(REPLIES.connectionDropped, 'shutting down'));
    const onAbort = () => connection.close();
    settings.signal.addEventListener('abort', onAbort, { once: true });
    connection.once('end', () => settings.signal.removeEventListener('abort', onAbort));

    try {
      await session.operation<undefined>(
        (done) => connection.connect((error) => done(error ?? null)),
        'connect',
      );
    } catch (error) {
      const reply = hopReply(error as SmtpError, mandatory, 'connect');
      if (reply === REPLIES.starttlsRequiredToSend) session.reportNoTls();
      if (
        reply === REPLIES.starttlsRequiredToSend &&
        (policy.kind === 'dane' || policy.kind === 'mta-sts')
      ) {
        // The published policy is why TLS was required: its words, not the connector's.
        const missing = missingTlsReply(policy);
        throw new HopFailure(withDetail(missing.reply, missing.detail));
      }
      throw new HopFailure(reply);
    }
    try {
      session.checkTls();
    } catch (error) {
      await session.close();
      throw error;
    }
    return session;
  }

  /** After the TLS upgrade and the second EHLO, before any MAIL FROM. */
  private checkTls(): void {
    const { policy, hop, log } = this.settings;
    const events = this.settings.events ?? loggedEvents(log);
    const socket = this.connection._socket;
    // nodemailer keeps the live socket in `_socket` (typed, and documented @public) and sets
    // `secure` once STARTTLS succeeded: `_socket` is then the TLSSocket of tls.connect. It has no
    // hook between the handshake and the second EHLO; connect() calls back right after that EHLO,
    // before any MAIL FROM, which is the moment the certificate must be judged. So: `_socket` + `secure`.
    if (!this.connection.secure) {
      // MTA-STS testing sends without TLS, and TLS reporting counts the failure (so it does for
      // a domain without a policy: plaintext is what its report should show).
      if (
        policy.kind === 'mta-sts' ||
        tlsMandatory(policy) ||
        this.settings.noPolicyDomain !== undefined
      )
        this.reportNoTls();
      if (!tlsMandatory(policy)) return;
      this.note('STARTTLS was not negotiated; TLS is required');
      if (policy.kind === 'dane' || policy.kind === 'mta-sts') {
        const missing = missingTlsReply(policy);
        throw new HopFailure(withDetail(missing.reply, missing.detail));
      }
      throw new HopFailure(REPLIES.starttlsRequiredToSend);
    }
    const tls = socket as TLSSocket;
    this.note(`TLS ${tls.getProtocol() ?? '?'} ${tls.getCipher().name}`);
    const chain = peerChain(tls);
    const leaf = chain[0];
    if (leaf !== undefined) {
      this.note(
        `server certificate subject="${distinguishedName(leaf.subject)}" sha256=${leaf.fingerprint256}`,
      );
    }
    if (policy.kind === 'dane' || policy.kind === 'mta-sts') {
      this.judgePublished(policy, chain, tls);
      return;
    }
    if (policy.kind !== 'domain-secure') {
      const { noPolicyDomain } = this.settings;
      if (noPolicyDomain !== undefined)
        events.emit(noPolicyResult(noPolicyDomain, this.tlsHop(), null));
      return;
    }
    const verdict = verifyPeer({
      chain,
      partner: policy.partner,
      role: 'server',
      opensslError: authorizationCode(tls),
    });
    if (verdict.ok) {
      this.note(`domain security: verified ${policy.partner.domain} (issuer "${verdict.issuer}")`);
      events.emit(partnerResult(policy.partner.domain, this.tlsHop(), null));
      events.emit({
        type: 'send.partner-verified',
        partner: policy.partner.domain,
        host: hop.host,
        address: hop.address,
        subject: verdict.subject,
        fingerprint: verdict.fingerprint,
        notAfter: leaf?.validTo ?? null,
        connector: this.settings.connector,
      });
      return;
    }
    this.note(`domain security: refused ${policy.partner.domain}: ${verdict.reason}`);
    events.emit(
      partnerResult(policy.partner.domain, this.tlsHop(), {
        kind: 'refused',
        opensslError: authorizationCode(tls),
        reason: verdict.reason,
      }),
    );
    events.emit({
      type: 'send.partner-refused',
      partner: policy.partner.domain,
      host: hop.host,
      address: hop.address,
      reason: verdict.reason,
      subject: verdict.subject ?? null,
      names: verdict.names ?? [],
      fingerprint: verdict.fingerprint ?? null,
    });
    throw new HopFailure(withDetail(REPLIES.certificateValidation, verdict.reason));
  }

  /** DANE or MTA-STS on the server's chain; throws HopFailure when the policy refuses it. */
  private judgePublished(policy: PublishedPolicy, chain: X509Certificate[], tls: TLSSocket): void {
    const verdict = judgePublishedPolicy(policy, chain, tls.authorized, authorizationCode(tls));
    this.note(verdict.note);
    const problem = verdict.ok ? verdict.warning : verdict.detail;
    const leaf = chain[0];
    (this.settings.events ?? loggedEvents(this.settings.log)).emit(
      publishedPolicyResult(
        policy,
        this.tlsHop(),
        problem === undefined
          ? null
          : {
              kind: 'chain',
              authorized: tls.authorized,
              opensslError: authorizationCode(tls),
              nameMatches: leaf !== undefined && coversHost(certificateDnsNames(leaf), policy.host),
              reason: problem,
            },
      ),
    );
    const fields = {
      domain: policy.domain,
      host: policy.host,
      address: this.settings.hop.address,
      connector: this.settings.connector,
      fingerprint: chain[0]?.fingerprint256 ?? null,
    };
    if (verdict.ok) {
      this.settings.log.log(verdict.warning === undefined ? 'info' : 'warn', verdict.event, {
        ...fields,
        ...(verdict.warning === undefined ? {} : { reason: verdict.warning }),
      });
      return;
    }
    this.settings.log.log('warn', verdict.event, { ...fields, reason: verdict.detail });
    throw new HopFailure(withDetail(verdict.reply, verdict.detail));
  }

  /** The hop as TLS reporting names it: host, its address, our address. */
  private tlsHop(): { host: string; address: string; localAddress: string | undefined } {
    const socket = this.connection._socket as { localAddress?: string } | undefined;
    return {
      host: this.settings.hop.host,
      address: this.settings.hop.address,
      localAddress: socket?.localAddress,
    };
  }

  /** A session under DANE, MTA-STS or domain security without TLS: a reported failure. */
  private reportNoTls(): void {
    const { policy } = this.settings;
    const events = this.settings.events ?? loggedEvents(this.settings.log);
    if (policy.kind === 'dane' || policy.kind === 'mta-sts')
      events.emit(publishedPolicyResult(policy, this.tlsHop(), { kind: 'no-tls' }));
    else if (policy.kind === 'domain-secure')
      events.emit(partnerResult(policy.partner.domain, this.tlsHop(), { kind: 'no-tls' }));
    else if (this.settings.noPolicyDomain !== undefined)
      events.emit(noPolicyResult(this.settings.noPolicyDomain, this.tlsHop(), { kind: 'no-tls' }));
  }

  /** What closes this session on shutdown. */
  get signal(): AbortSignal {
    return this.settings.signal;
  }

  /** Whether the connection is still open, has not failed and is not shutting down: it may carry another message. */
  get usable(): boolean {
    return !this.ended && this.failure === undefined && !this.settings.signal.aborted;
  }

  /** One message; its refusal is its outcome, a failure of the session throws HopFailure. */
  async send(message: OutboundMessage, body: MessageContent): Promise<DeliveryOutcome> {
    const mandatory = tlsMandatory(this.settings.policy);
    // BODY=8BITMIME only for bodies that need it, and only if the server offers it.
    const use8BitMime = await hasEightBitBytes(body);
    // A stored body is read a chunk at a time as the socket takes it (nodemailer pipes it).
    const data = Buffer.isBuffer(body) ? body : readStoredBody(body);
    let info: SMTPConnection.SentMessageInfo;
    try {
      info = await this.operation<SMTPConnection.SentMessageInfo>(
        (done) =>
          this.connection.send(
            { from: message.from, to: message.recipients, size: message.size, use8BitMime },
            data,
            (error, result) => done(error ?? null, result),
          ),
        'send',
      );
    } catch (error) {
      const outcome = messageRefusal(message, error as SmtpError);
      if (outcome !== undefined) return outcome;
      // A 4xx to MAIL FROM (e.g. "454 4.7.5 Certificate validation failure": the partner does
      // not trust us) or a lost connection: the hop failed, the next one may do better.
      throw new HopFailure(hopReply(error as SmtpError, mandatory, 'send'));
    } finally {
      // Read to its end, or given up (a refusal, a lost connection): its file is closed either way.
      if (!Buffer.isBuffer(data)) data.destroy();
    }
    return recipientOutcome(
      message,
      info.accepted.map(String),
      (info.rejectedErrors ?? []) as SmtpError[],
    );
  }

  /** RSET between messages on one connection. */
  async reset(): Promise<void> {
    try {
      await this.operation<boolean | undefined>(
        (done) => this.connection.reset((error, ok) => done(error, ok)),
        'reset',
      );
    } catch (error) {
      throw new HopFailure(hopReply(error as SmtpError, false, 'send'));
    }
  }

  /** QUIT, then waits (bounded) until the socket is gone. */
  async close(): Promise<void> {
    if (this.ended) return;
    const gone = new Promise<void>((resolve) => this.endWaiters.add(resolve));
    this.connection.quit();
    const timer = setTimeout(() => this.connection.close(), 2_000);
    timer.unref();
    await gone;
    clearTimeout(timer);
  }

  /** Runs one callback-style step, failing as soon as the connection ends (nodemailer may not call back then). */
  private operation<T>(
    start: (done: (error: Error | null, value?: T) => void) => void,
    what: string,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | null, value?: T) => {
        if (settled) return;
        settled = true;
        this.endWaiters.delete(onEnd);
        if (error !== null) reject(error);
        else resolve(value as T);
      };
      // 'error' is emitted before 'end' and the step's own callback after it: wait a turn so
      // the specific error wins over "closed".
      const onEnd = () =>
        setImmediate(() =>
          finish(
            this.failure ??
              Object.assign(new Error(`connection closed during ${what}`), { code: 'ECONNECTION' }),
          ),
        );
      if (this.ended) return onEnd();
      this.endWaiters.add(onEnd);
      start(finish);
    });
  }

  private onEnd(): void {
    if (this.ended) return;
    this.settings.openSessions?.remove(this.settings.connector);
    this.ended = true;
    this.write('-', 'disconnected');
    for (const waiter of [...this.endWaiters]) waiter();
    this.endWaiters.clear();
  }

  /** A '*' line in the protocol log. */
  note(data: string): void {
    this.write('*', data);
  }

  write(event: ProtocolEvent, data: string, endpoints?: { local: string; remote: string }): void {
    const { protocolLog, protocolLogging, connector } = this.settings;
    if (protocolLog === undefined || !protocolLogging) return;
    if (endpoints !== undefined) this.endpoints = endpoints;
    this.sequence += 1;
    protocolLog.write(
      {
        connector,
        sessionId: this.connection.id,
        sequence: this.sequence,
        ...this.endpoints,
        event,
        data,
      },
      true,
    );
  }
}

/**
 * A bunyan-shaped logger for nodemailer that feeds the protocol log: its "connection established"
 * line becomes '+', client commands '>', server replies '<'. Its other chatter is dropped.
 */
function protocolLogger(session: () => SmtpClientSession | undefined) {
  const handle = (entry: Record<string, unknown> | undefined, message: unknown) => {
    const target = session();
    if (target === undefined || typeof message !== 'string') return;
    const tnx = entry?.tnx;
    if (tnx === 'client') target.write('>', message);
    else if (tnx === 'server') target.write('<', message);
    else if (tnx === 'network' && typeof entry?.remoteAddress === 'string') {
      target.write('+', 'connected', {
        local: formatEndpoint(String(entry.localAddress), String(entry.localPort)),
        remote: formatEndpoint(entry.remoteAddress, String(entry.remotePort)),
      });
    }
  };
  return { trace: handle, debug: handle, info: handle, warn: handle, error: handle, fatal: handle };
}
