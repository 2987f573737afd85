// `domsec probe DOMAIN`, the engine side: every step of domain security towards a partner, or of
// the published TLS policies (DANE, MTA-STS) towards any other domain, each pass or fail with its
// reason, as an administrator's checklist. Routing, DNS, policy look-ups and verification are the
// engine's own (route.ts, dns.ts, policy/, tls/verify.ts); only the SMTP dialog is spelled out.
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { NextHopError, type NextHop } from '../dns.js';
import type { Generation, LoadedPartner } from '../generation.js';
import { formatReply, REPLIES } from '../replies.js';
import { authorizationCode, peerChain, verifyPeer } from '../tls/verify.js';
import { clientTlsOptions, tlsMandatory, type SessionTlsPolicy } from './client-tls.js';
import { chooseSendConnector, nextHopsFor, sendSecurePartner, tlsPolicyFor } from './route.js';
import { parseDomainName, type DomainName } from '../../domain-name.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StsPolicyCache } from '../policy/mta-sts-cache.js';
import { destinationTls, type DestinationTls } from '../policy/outbound.js';
import {
  hopSessionPolicy,
  judgePublishedPolicy,
  missingTlsReply,
  publishedPoliciesApply,
  type ConnectorTls,
  type PublishedPolicy,
} from '../policy/session-policy.js';
import { formatEndpoint } from '../../units.js';
import { parseSmtpReply, smtpReplyText, withDetail, type SmtpReply } from '../../smtp-reply.js';

export interface ProbeStep {
  step: string;
  ok: boolean;
  detail: string;
  /** The next hop the step belongs to ("mx1.adatum.com 192.0.2.1:25"); none for routing steps. */
  hop?: string;
  /** The partner's own SMTP reply, on one line as the queue quotes it, when it said one. */
  reply?: string;
  /** What that reply answered: "banner", "EHLO", "STARTTLS", "MAIL FROM". */
  answered?: string;
}

export interface ProbeReport {
  domain: string;
  /** What was probed: mutual TLS to a send-secure partner, or another domain's TLS policies. */
  kind: 'domain-security' | 'tls-policy';
  ok: boolean;
  steps: ProbeStep[];
}

export interface ProbeOptions {
  timeoutMs?: number; // per network wait, default 10 s
  /** Where MTA-STS policies are kept; a probe of its own by default (a temporary directory). */
  stsCache?: StsPolicyCache;
  /** Labs only: extra CAs for MTA-STS and the policy host's port. */
  tlsPolicyLab?: { extraCas?: string[]; mtaStsPort?: number };
}

/** How a hop's server is judged once TLS is up. */
type HopCheck =
  | { kind: 'partner'; partner: LoadedPartner }
  | { kind: 'policy'; policy: PublishedPolicy | ConnectorTls };

/** Runs the checklist; never throws for a failure of the partner or the network. */
export async function probeDomain(
  generation: Generation,
  spelled: string,
  options: ProbeOptions = {},
): Promise<ProbeReport> {
  const steps: ProbeStep[] = [];
  const parsed = parseDomainName(spelled);
  let kind: ProbeReport['kind'] = 'domain-security';
  const report = (): ProbeReport => ({
    domain: parsed.ok ? parsed.name : spelled,
    kind,
    ok: steps.every((s) => s.ok),
    steps,
  });
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (!parsed.ok) {
    steps.push({
      step: 'partner',
      ok: false,
      detail: `${spelled} is not a domain name: ${parsed.reason}`,
    });
    return report();
  }
  const domain = parsed.name;

  const partner = sendSecurePartner(generation, domain);
  if (partner === undefined) {
    kind = 'tls-policy';
    await probeTlsPolicy(generation, domain, steps, timeoutMs, options);
    return report();
  }
  steps.push({ step: 'partner', ok: true, detail: `PartnerDomain/${partner.name}` });

  const connector = chooseSendConnector(generation.sendConnectors, domain);
  if (connector === undefined) {
    steps.push({ step: 'send connector', ok: false, detail: formatReply(REPLIES.noRoute) });
    return report();
  }
  const routing = 'smartHosts' in connector.spec.routing ? 'smart hosts' : 'DNS MX';
  const connectorOk = connector.spec.domainSecure && routing === 'DNS MX';
  steps.push({
    step: 'send connector',
    ok: connectorOk,
    detail: `SendConnector/${connector.name} routes by ${routing}, domainSecure: ${connector.spec.domainSecure}${connectorOk ? '' : ' (needs dnsMx and domainSecure: true, DS001/DS003)'}`,
  });

  let hops: NextHop[];
  try {
    hops = await nextHopsFor(connector, domain, generation, { timeoutMs, tries: 1 });
  } catch (error) {
    const detail =
      error instanceof NextHopError ? smtpReplyText(error.reply) : (error as Error).message;
    steps.push({ step: 'next hops', ok: false, detail });
    return report();
  }
  const listed = hops.map((h) => `${named(h)} (preference ${h.preference})`);
  steps.push({ step: 'next hops', ok: true, detail: listed.join(', ') });

  for (const hop of hops) {
    const hopSteps = await probeHop(generation, { kind: 'partner', partner }, hop, timeoutMs);
    steps.push(...hopSteps.map((s) => ({ ...s, hop: named(hop) })));
  }
  return report();
}

const named = (h: NextHop) => `${h.host} ${formatEndpoint(h.address, h.port)}`;

/**
 * A domain that is not a send-secure partner: its connector, its next hops, what its TlsPolicy
 * asks, what DANE and MTA-STS publish, and per hop the requirement and the server's answer to it.
 */
async function probeTlsPolicy(
  generation: Generation,
  domain: DomainName,
  steps: ProbeStep[],
  timeoutMs: number,
  options: ProbeOptions,
): Promise<void> {
  steps.push({
    step: 'partner',
    ok: true,
    detail: `${domain} is not a send-secure partner: TLS as its connector and published policies say`,
  });
  const connector = chooseSendConnector(generation.sendConnectors, domain);
  if (connector === undefined) {
    steps.push({ step: 'send connector', ok: false, detail: formatReply(REPLIES.noRoute) });
    return;
  }
  const connectorTls = tlsPolicyFor(connector, undefined, domain);
  if (connectorTls.kind !== 'required' && connectorTls.kind !== 'opportunistic') {
    const detail =
      connectorTls.kind === 'refused' ? connectorTls.reason : `unexpected ${connectorTls.kind}`;
    steps.push({ step: 'send connector', ok: false, detail });
    return;
  }
  steps.push({
    step: 'send connector',
    ok: true,
    detail: `SendConnector/${connector.name}, TLS ${connectorTls.kind}`,
  });
  let hops: NextHop[];
  try {
    hops = await nextHopsFor(connector, domain, generation, { timeoutMs, tries: 1 });
  } catch (error) {
    const detail =
      error instanceof NextHopError ? smtpReplyText(error.reply) : (error as Error).message;
    steps.push({ step: 'next hops', ok: false, detail });
    return;
  }
  const listed = hops.map((h) => `${named(h)} (preference ${h.preference})`);
  steps.push({ step: 'next hops', ok: true, detail: listed.join(', ') });

  const lab = options.tlsPolicyLab ?? {};
  let destination: DestinationTls | undefined;
  if (publishedPoliciesApply(generation.config, connector.spec.routing, domain)) {
    // Without a cache of the engine's, the probe keeps fetched policies in a directory of its own.
    const temporary =
      options.stsCache === undefined
        ? await mkdtemp(join(tmpdir(), 'domsec-probe-sts-'))
        : undefined;
    try {
      const cache = options.stsCache ?? new StsPolicyCache(temporary ?? '');
      destination = await destinationTls(domain, generation.config, connector.spec.port, {
        cache,
        ...lab,
        timeoutMs,
      });
    } finally {
      if (temporary !== undefined) await rm(temporary, { recursive: true, force: true });
    }
    for (const line of destination.steps) {
      const source = /^(DANE|MTA-STS): (.*)$/s.exec(line);
      steps.push(
        source === null
          ? { step: 'TLS policy', ok: true, detail: line }
          : { step: source[1] ?? '', ok: true, detail: source[2] ?? '' },
      );
    }
  } else {
    steps.push({
      step: 'TLS policy',
      ok: true,
      detail: 'not looked up: smart hosts or a static route carry this domain',
    });
  }

  for (const hop of hops) {
    const policy =
      destination === undefined
        ? connectorTls
        : hopSessionPolicy(connectorTls, destination, hop.host, lab.extraCas);
    const at = named(hop);
    if (policy.kind === 'refused') {
      steps.push({
        step: 'hop policy',
        ok: false,
        detail: smtpReplyText(withDetail(policy.reply, policy.detail)),
        hop: at,
      });
      continue;
    }
    steps.push({ step: 'hop policy', ok: true, detail: describeHopPolicy(policy), hop: at });
    const hopSteps = await probeHop(generation, { kind: 'policy', policy }, hop, timeoutMs);
    steps.push(...hopSteps.map((s) => ({ ...s, hop: at })));
  }
}

function describeHopPolicy(policy: PublishedPolicy | ConnectorTls): string {
  switch (policy.kind) {
    case 'dane':
      return `DANE: TLS required, the certificate must match ${policy.records.length} TLSA record(s)`;
    case 'mta-sts':
      return `MTA-STS ${policy.mode}: TLS ${policy.required ? 'required' : 'attempted'}, a certificate that chains to a trusted CA and names ${policy.host}`;
    case 'required':
      return 'TLS required, the certificate not judged';
    case 'opportunistic':
      return 'STARTTLS when offered, the certificate not judged';
  }
}

/**
 * One next hop: connect, EHLO, STARTTLS, the server's certificate (the partner's, or judged by the
 * hop's published policy), then MAIL FROM (for a partner: whether it accepts our certificate).
 */
async function probeHop(
  generation: Generation,
  check: HopCheck,
  hop: NextHop,
  timeoutMs: number,
): Promise<ProbeStep[]> {
  const steps: ProbeStep[] = [];
  const dialog = new Dialog(timeoutMs);
  try {
    const socket = await dialog.open(
      () => connectTcp({ host: hop.address, port: hop.port, noDelay: true }),
      'connect',
    );
    const connected = replyStep('connect', (await dialog.reply()).reply, 220, 'banner');
    steps.push(connected);
    if (!connected.ok) return steps;

    const ehlo = await dialog.command(`EHLO ${generation.hostname}`);
    if (ehlo.reply.code !== 250) {
      steps.push(refusedStep('STARTTLS offered', 'EHLO', ehlo.reply));
      return steps;
    }
    // The extensions are the reply's lines: read from the lines as the server sent them.
    const offersTls = /^250[ -]STARTTLS$/im.test(ehlo.raw);
    const session: SessionTlsPolicy =
      check.kind === 'partner' ? { kind: 'domain-secure', partner: check.partner } : check.policy;
    const mandatory = tlsMandatory(session);
    steps.push({
      step: 'STARTTLS offered',
      ok: offersTls || !mandatory,
      detail: offersTls
        ? 'yes'
        : !mandatory
          ? 'no: mail would be sent without TLS (opportunistic)'
          : session.kind === 'dane' || session.kind === 'mta-sts'
            ? smtpReplyText(
                withDetail(missingTlsReply(session).reply, missingTlsReply(session).detail),
              )
            : formatReply(REPLIES.starttlsRequiredToSend),
    });
    if (!offersTls) return steps;
    const ready = await dialog.command('STARTTLS');
    if (ready.reply.code !== 220) {
      steps.push(refusedStep('TLS handshake', 'STARTTLS', ready.reply));
      return steps;
    }
    const tls = (await dialog.open(
      // The handshake a delivery makes: our certificate, the partner's anchors, SNI as send sets it.
      () => connectTls({ socket, ...clientTlsOptions(session, hop.host) }),
      'secureConnect',
    )) as TLSSocket;
    steps.push({
      step: 'TLS handshake',
      ok: true,
      detail: `${tls.getProtocol() ?? '?'} ${tls.getCipher().name}${check.kind === 'partner' ? `, presenting our certificate ${generation.certificate.fingerprint}` : ''}`,
    });
    if (check.kind === 'policy') {
      const chain = peerChain(tls);
      const leaf = chain[0];
      const policy = check.policy;
      if (policy.kind === 'dane' || policy.kind === 'mta-sts') {
        const verdict = judgePublishedPolicy(policy, chain, tls.authorized, authorizationCode(tls));
        const step = policy.kind === 'dane' ? 'DANE' : 'MTA-STS';
        steps.push(
          verdict.ok
            ? { step, ok: true, detail: verdict.note.replace(/^[A-Z-]+( \(testing\))?: /, '') }
            : { step, ok: false, detail: smtpReplyText(withDetail(verdict.reply, verdict.detail)) },
        );
        if (!verdict.ok) return steps;
      } else {
        steps.push({
          step: 'server certificate',
          ok: true,
          detail: `not judged: subject="${leaf?.subject.replace(/\n/g, ', ') ?? 'none'}"`,
        });
      }
      const sender = `postmaster@${[...generation.acceptedDomains][0] ?? generation.hostname}`;
      await dialog.command(`EHLO ${generation.hostname}`);
      steps.push(
        replyStep(
          'MAIL FROM',
          (await dialog.command(`MAIL FROM:<${sender}>`)).reply,
          250,
          'MAIL FROM',
        ),
      );
      await dialog.command('RSET').catch(() => undefined);
      await dialog.command('QUIT').catch(() => undefined);
      return steps;
    }
    const { partner } = check;

    const verdict = verifyPeer({
      chain: peerChain(tls),
      partner,
      role: 'server',
      opensslError: authorizationCode(tls),
    });
    steps.push(
      verdict.ok
        ? {
            step: 'partner certificate',
            ok: true,
            detail: `subject="${verdict.subject}" issuer="${verdict.issuer}" names ${verdict.names.join(', ')}`,
          }
        : {
            step: 'partner certificate',
            ok: false,
            detail: formatReply(REPLIES.certificateValidation, verdict.reason),
          },
    );
    if (!verdict.ok) return steps;

    // A partner that does not trust our certificate says so here (Exchange: 421 4.7.1 after
    // the handshake, or to the EHLO that follows) or to MAIL FROM (smtp-server's onMailFrom).
    const secured = await dialog.command(`EHLO ${generation.hostname}`);
    if (secured.reply.code !== 250) {
      steps.push(refusedStep('our certificate accepted', 'EHLO', secured.reply, 'after TLS'));
      return steps;
    }
    const sender = `postmaster@${[...generation.acceptedDomains][0] ?? generation.hostname}`;
    const mail = (await dialog.command(`MAIL FROM:<${sender}>`)).reply;
    steps.push(
      replyStep('our certificate accepted', mail, 250, 'MAIL FROM', (text) => {
        return `MAIL FROM:<${sender}> answered ${text}`;
      }),
    );
    await dialog.command('RSET').catch(() => undefined);
    await dialog.command('QUIT').catch(() => undefined);
  } catch (error) {
    steps.push({ step: dialog.stage, ok: false, detail: (error as Error).message });
  } finally {
    dialog.close();
  }
  return steps;
}

/** A step one reply decides: passed on the code expected, else the reply quoted as answering. */
function replyStep(
  step: string,
  reply: SmtpReply,
  expected: number,
  answered: string,
  describe: (text: string) => string = (text) => text,
): ProbeStep {
  const text = smtpReplyText(reply);
  const ok = reply.code === expected;
  return { step, ok, detail: describe(text), ...(ok ? {} : { reply: text, answered }) };
}

/** A step the partner refused in its own words, quoted as the queue quotes them. */
function refusedStep(step: string, answered: string, refusal: SmtpReply, when = ''): ProbeStep {
  const reply = smtpReplyText(refusal);
  const command = when === '' ? answered : `${answered} ${when}`;
  return {
    step,
    ok: false,
    detail: `the partner answered ${command} with ${reply}`,
    reply,
    answered,
  };
}

/** A server's reply: parsed, and its lines as sent (EHLO's extensions are read from them). */
interface Answer {
  raw: string;
  reply: SmtpReply;
}

/** A line-oriented SMTP dialog on one socket (plain, then TLS), every wait bounded. */
class Dialog {
  stage = 'connect';
  private socket: Socket | undefined;
  private buffer = '';
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;

  constructor(private readonly timeoutMs: number) {}

  async open(make: () => Socket, event: 'connect' | 'secureConnect'): Promise<Socket> {
    this.stage = event === 'connect' ? 'connect' : 'TLS handshake';
    this.socket?.removeAllListeners('data'); // after STARTTLS the TLS socket reads, not us
    const socket = make();
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.waiter?.();
    });
    socket.on('error', (error) => {
      this.failure = error;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.failure ??= new Error(formatReply(REPLIES.connectionDropped));
      this.waiter?.();
    });
    await this.bounded(
      new Promise<void>((resolve, reject) => {
        socket.once(event, resolve);
        socket.once('error', reject);
      }),
    );
    return socket;
  }

  async command(line: string): Promise<Answer> {
    this.stage = line.split(' ')[0] ?? line;
    this.socket?.write(`${line}\r\n`);
    return this.reply();
  }

  /** The next whole reply, parsed as it arrives; a line that is none fails the step. */
  async reply(): Promise<Answer> {
    return this.bounded(
      new Promise<Answer>((resolve, reject) => {
        const check = () => {
          const match = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(this.buffer);
          if (match !== null) {
            this.buffer = this.buffer.slice(match[0].length);
            this.waiter = undefined;
            const raw = match[0].trimEnd();
            const reply = parseSmtpReply(raw);
            if (reply === undefined) {
              reject(new Error(`not an SMTP reply: ${raw.replace(/\s+/g, ' ').slice(0, 200)}`));
            } else resolve({ raw, reply });
          } else if (this.failure !== undefined) {
            this.waiter = undefined;
            reject(this.failure);
          }
        };
        this.waiter = check;
        check();
      }),
    );
  }

  close(): void {
    this.socket?.destroy();
  }

  private bounded<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.timeoutMs} ms (${this.stage})`)),
        this.timeoutMs,
      );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}
