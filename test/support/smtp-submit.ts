// One SMTP transaction with nodemailer's client against a listener on loopback, STARTTLS with or
// without a client certificate (or plaintext); returns the final reply, whatever stage gave it.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { IssuedCertificate } from '../../src/pki/lab.js';

export interface SubmitClient {
  certificate?: IssuedCertificate;
  plaintext?: boolean;
  /** EHLO name; default mail.adatum.com. */
  name?: string;
  /** CA that signs the server's certificate. */
  serverCa: string;
  /** The client's own address (e.g. 127.0.0.250, to connect from a partner's remoteIPRanges). */
  localAddress?: string;
}

export interface SubmitOutcome {
  code: number;
  response: string;
}

export async function submit(
  port: number,
  /** size: the SIZE the client announces with MAIL FROM. */
  envelope: { from: string; to: string[]; size?: number },
  client: SubmitClient,
  message: string,
): Promise<SubmitOutcome> {
  const connection = new SMTPConnection({
    host: '127.0.0.1',
    port,
    ...(client.localAddress === undefined ? {} : { localAddress: client.localAddress }),
    name: client.name ?? 'mail.adatum.com',
    servername: 'mail.treyresearch.net',
    ignoreTLS: client.plaintext === true,
    requireTLS: client.plaintext !== true,
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 5_000,
    tls: {
      ca: [client.serverCa],
      ...(client.certificate === undefined
        ? {}
        : { key: client.certificate.keyPem, cert: client.certificate.certPem }),
    },
  });
  const failed = new Promise<never>((_, reject) => connection.on('error', reject));
  failed.catch(() => undefined);
  try {
    await Promise.race([
      failed,
      new Promise<void>((resolve, reject) =>
        connection.connect((error) => (error ? reject(error) : resolve())),
      ),
    ]);
    const info = await new Promise<{ response: string }>((resolve, reject) =>
      connection.send({ ...envelope, to: [...envelope.to] }, message, (error, result) =>
        error || result === undefined ? reject(error) : resolve(result),
      ),
    );
    return { code: Number(info.response.slice(0, 3)), response: info.response };
  } catch (error) {
    const failure = error as { responseCode?: number; response?: string; message: string };
    return { code: failure.responseCode ?? 0, response: failure.response ?? failure.message };
  } finally {
    connection.close();
  }
}
