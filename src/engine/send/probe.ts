// `domsec probe DOMAIN`, the engine side: every step of domain security towards a partner, each
// pass or fail with its reason, as an administrator's checklist. Routing, DNS and verification
// are the engine's own (route.ts, dns.ts, tls/verify.ts); only the SMTP dialog is spelled out.
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { NextHopError, type NextHop } from '../dns.js';
import type { Generation, LoadedPartner } from '../generation.js';
import { formatReply, REPLIES } from '../replies.js';
import { authorizationCode, peerChain, verifyPeer } from '../tls/verify.js';
import { clientTlsOptions } from './client-tls.js';
import { chooseSendConnector, nextHopsFor, sendSecurePartner } from './route.js';
import { parseDomainName } from '../../domain-name.js';
import { formatEndpoint } from '../../units.js';
import { parseSmtpReply, smtpReplyText, type SmtpReply } from '../../smtp-reply.js';

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
  ok: boolean;
  steps: ProbeStep[];
}

export interface ProbeOptions {
  timeoutMs?: number; // per network wait, default 10 s
}

/** Runs the checklist; never throws for a failure of the partner or the network. */
export async function probeDomain(
  generation: Generation,
  spelled: string,
  options: ProbeOptions = {},
): Promise<ProbeReport> {
  const steps: ProbeStep[] = [];
  const parsed = parseDomainName(spelled);
  const report = (): ProbeReport => ({
    domain: parsed.ok ? parsed.name : spelled,
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
    steps.push({
      step: 'partner',
      ok: false,
      detail: `${domain} is not a PartnerDomain with domainSecure.send: true (TLSSendDomainSecureList)`,
    });
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
  const named = (h: NextHop) => `${h.host} ${formatEndpoint(h.address, h.port)}`;
  const listed = hops.map((h) => `${named(h)} (preference ${h.preference})`);
  steps.push({ step: 'next hops', ok: true, detail: listed.join(', ') });

  for (const hop of hops) {
    const hopSteps = await probeHop(generation, partner, hop, timeoutMs);
    steps.push(...hopSteps.map((s) => ({ ...s, hop: named(hop) })));
  }
  return report();
}

/** One next hop: connect, EHLO, STARTTLS, the partner's certificate, our certificate (MAIL FROM). */
async function probeHop(
  generation: Generation,
  partner: LoadedPartner,
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
    steps.push({
      step: 'STARTTLS offered',
      ok: offersTls,
      detail: offersTls ? 'yes' : formatReply(REPLIES.starttlsRequiredToSend),
    });
    if (!offersTls) return steps;
    const ready = await dialog.command('STARTTLS');
    if (ready.reply.code !== 220) {
      steps.push(refusedStep('TLS handshake', 'STARTTLS', ready.reply));
      return steps;
    }
    const tls = (await dialog.open(
      // The handshake a delivery makes: our certificate, the partner's anchors, SNI as send sets it.
      () =>
        connectTls({ socket, ...clientTlsOptions({ kind: 'domain-secure', partner }, hop.host) }),
      'secureConnect',
    )) as TLSSocket;
    steps.push({
      step: 'TLS handshake',
      ok: true,
      detail: `${tls.getProtocol() ?? '?'} ${tls.getCipher().name}, presenting our certificate ${generation.certificate.fingerprint}`,
    });

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
