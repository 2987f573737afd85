// The story the operator's view is tested on: a real engine for treyresearch.net with two
// send-secure partners, adatum.com (a real partner server with adatum's certificate) and
// fabrikam.com (routed to an impostor whose certificate no anchor of fabrikam's vouches for),
// a domain-secure receive connector and an internal one that relays.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { lab } from '../support/lab.js';
import { eventually, startEngine, type RunningEngine } from '../support/engine.js';
import { freePort } from '../support/ports.js';
import {
  internalConnector,
  partnerDomain,
  receiveConnector,
  runtimeConfig,
  sendConnector,
} from '../support/runtime-config.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { submit, type SubmitOutcome } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';

export interface OperatorScenario {
  running: RunningEngine;
  partner: SmtpPeer;
  impostor: SmtpPeer;
  partnerPort: number;
  internalPort: number;
  /** adatum sends to us over mutual TLS (domain-secured), for a local mailbox. */
  receiveSecured(): Promise<SubmitOutcome>;
  /** Someone claiming adatum.com with a certificate no adatum anchor issued: refused. */
  receiveImpostor(): Promise<SubmitOutcome>;
  /** An internal user's message for a partner, through the internal connector. */
  sendTo(recipient: string): Promise<SubmitOutcome>;
  close(): Promise<void>;
}

const MESSAGE = 'Subject: operator view\r\n\r\nhello\r\n';

export async function startScenario(): Promise<OperatorScenario> {
  const state = await tempDir('domsec-operator-');
  const partner = await startSmtpPeer({ certificate: lab().adatumMail });
  const impostor = await startSmtpPeer({ certificate: lab().strangerAdatum });
  const running = await startEngine(state.path);
  const partnerPort = await freePort();
  const internalPort = await freePort();
  await running.client.apply(
    runtimeConfig({
      organization: {
        resolver: {
          servers: [],
          static: {
            'adatum.com': [{ host: partner.host, port: partner.port }],
            'fabrikam.com': [{ host: impostor.host, port: impostor.port }],
          },
        },
      },
      partners: [
        partnerDomain('adatum', { domain: 'adatum.com' }),
        partnerDomain('fabrikam', {
          domain: 'fabrikam.com',
          domainSecure: { send: true, receive: false },
        }),
      ],
      sendConnectors: [
        sendConnector('to-partners', { addressSpaces: ['adatum.com', 'fabrikam.com'] }),
      ],
      receiveConnectors: [
        receiveConnector('from-partners', { bindings: [`127.0.0.1:${partnerPort}`] }),
        internalConnector(`127.0.0.1:${internalPort}`),
      ],
    }),
  );
  const serverCa = lab().treyRoot.certPem;
  return {
    running,
    partner,
    impostor,
    partnerPort,
    internalPort,
    receiveSecured: () =>
      submit(
        partnerPort,
        { from: 'someone@adatum.com', to: ['user@treyresearch.net'] },
        { certificate: lab().adatumMail, serverCa },
        MESSAGE,
      ),
    receiveImpostor: () =>
      submit(
        partnerPort,
        { from: 'someone@adatum.com', to: ['user@treyresearch.net'] },
        { certificate: lab().strangerAdatum, serverCa },
        MESSAGE,
      ),
    sendTo: (recipient) =>
      submit(
        internalPort,
        { from: 'alice@treyresearch.net', to: [recipient] },
        { plaintext: true, name: 'workstation.treyresearch.net', serverCa },
        MESSAGE,
      ),
    close: async () => {
      await running.stop();
      await partner.close();
      await impostor.close();
      await state.remove();
    },
  };
}

/** Two MAIL FROM for the partner in one session with an impostor's certificate: both refused. */
export async function refusedTwiceInOneSession(port: number): Promise<number[]> {
  const connection = new SMTPConnection({
    host: '127.0.0.1',
    port,
    name: 'mail.adatum.com',
    servername: 'mail.treyresearch.net',
    requireTLS: true,
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 5_000,
    tls: {
      ca: [lab().treyRoot.certPem],
      key: lab().strangerAdatum.keyPem,
      cert: lab().strangerAdatum.certPem,
    },
  });
  connection.on('error', () => undefined);
  try {
    await new Promise<void>((resolve, reject) =>
      connection.connect((error) => (error ? reject(error) : resolve())),
    );
    const codes: number[] = [];
    for (let attempt = 0; attempt < 2; attempt++) {
      codes.push(
        await new Promise<number>((resolve) =>
          connection.send(
            { from: 'someone@adatum.com', to: ['user@treyresearch.net'] },
            MESSAGE,
            (error) => resolve((error as { responseCode?: number } | null)?.responseCode ?? 250),
          ),
        ),
      );
    }
    return codes;
  } finally {
    connection.close();
  }
}

/** Waits until the engine has tried fabrikam.com and recorded the refusal as the queue's error. */
export async function fabrikamFailed(running: RunningEngine): Promise<void> {
  await eventually('the refused delivery to fabrikam.com', () =>
    running.engine.state().queues.find((q) => q.nextHopDomain === 'fabrikam.com')?.lastError
      ? true
      : undefined,
  );
}

export { eventually };
