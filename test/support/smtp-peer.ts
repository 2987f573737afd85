// A real partner SMTP server (smtp-server on loopback, port 0) for testing our client: its own
// certificate or none, STARTTLS offered or not, client certificate requested, configurable
// refusals; it records what it received, the MAIL commands it saw and the client certificates.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

export interface PeerReply {
  code: number;
  message: string; // e.g. "4.7.5 Certificate validation failure"
}

export interface SmtpPeerOptions {
  host?: string; // default 127.0.0.1
  port?: number; // default 0
  /** The server's certificate (PEM); omitted: smtp-server's built-in self-signed one. */
  certificate?: { certPem: string; keyPem: string };
  /** Offer STARTTLS (default true); false disables the command entirely. */
  starttls?: boolean;
  /** Ask the client for a certificate (default true). */
  requestCert?: boolean;
  /** Refuse the session once TLS is up with this reply, and close (a partner not trusting us). */
  secure?: PeerReply;
  /** Refuse MAIL FROM with this reply. */
  mailFrom?: PeerReply;
  /** Refuse some recipients: the reply for an address, or undefined to accept it. */
  rcptTo?: (address: string) => PeerReply | undefined;
  /** Refuse the message after DATA. */
  data?: PeerReply;
  /** The greeting's host name. */
  name?: string;
}

export interface ReceivedMessage {
  from: string;
  recipients: string[];
  body: Buffer;
  secure: boolean;
  sessionId: string;
}

export interface SmtpPeer {
  host: string;
  port: number;
  messages: ReceivedMessage[];
  /** Every MAIL FROM the server saw, refused or not, and whether the session was under TLS. */
  mailCommands: { from: string; secure: boolean; sessionId: string }[];
  /** The client certificate of each session that completed TLS (null: none was sent). */
  clientCertificates: (X509Certificate | null)[];
  /** The SNI server name of each session that completed TLS (false: the client sent none). */
  serverNames: (string | false)[];
  /** Sessions opened (TCP connections accepted). */
  connections: number;
  close(): Promise<void>;
}

function refusal(reply: PeerReply): Error {
  return Object.assign(new Error(reply.message), { responseCode: reply.code });
}

export async function startSmtpPeer(options: SmtpPeerOptions = {}): Promise<SmtpPeer> {
  const peer: Omit<SmtpPeer, 'host' | 'port' | 'close'> = {
    messages: [],
    mailCommands: [],
    clientCertificates: [],
    serverNames: [],
    connections: 0,
  };
  const starttls = options.starttls ?? true;
  const serverOptions: SMTPServerOptions = {
    name: options.name ?? 'mail.adatum.com',
    secure: false,
    authOptional: true,
    disabledCommands: starttls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    requestCert: options.requestCert ?? true,
    rejectUnauthorized: false,
    logger: false,
    ...(options.certificate === undefined
      ? {}
      : { key: options.certificate.keyPem, cert: options.certificate.certPem }),
    onConnect(_session, callback) {
      peer.connections += 1;
      callback();
    },
    onSecure(socket, _session, callback) {
      const raw = (socket as TLSSocket).getPeerCertificate().raw;
      peer.clientCertificates.push(raw === undefined ? null : new X509Certificate(raw));
      peer.serverNames.push((socket as TLSSocket).servername ?? false);
      callback(options.secure === undefined ? null : refusal(options.secure));
    },
    onMailFrom(address, session: SMTPServerSession, callback) {
      peer.mailCommands.push({
        from: address.address,
        secure: session.secure,
        sessionId: session.id,
      });
      callback(options.mailFrom === undefined ? null : refusal(options.mailFrom));
    },
    onRcptTo(address, _session, callback) {
      const reply = options.rcptTo?.(address.address);
      callback(reply === undefined ? null : refusal(reply));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        if (options.data !== undefined) return callback(refusal(options.data));
        const { mailFrom, rcptTo } = session.envelope;
        peer.messages.push({
          from: mailFrom === false ? '' : mailFrom.address,
          recipients: rcptTo.map((r) => r.address),
          body: Buffer.concat(chunks),
          secure: session.secure,
          sessionId: session.id,
        });
        callback(null, 'queued as peer');
      });
    },
  };
  const server = new SMTPServer(serverOptions);
  server.on('error', () => undefined); // a client that hangs up mid-session is not a test failure
  const host = options.host ?? '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      const address = server.server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
  return Object.assign(peer, {
    host,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
