// A local mail client submitting one message over SMTP with STARTTLS, as Outlook would to Exchange.
import SMTPConnection from 'nodemailer/lib/smtp-connection';

export interface Submission {
  host: string;
  port: number;
  caPem: string;
  from: string;
  to: string;
  subject: string;
}

/** Resolves with the server's 250 reply once the message is accepted. */
export async function submitMessage(submission: Submission): Promise<string> {
  const connection = new SMTPConnection({
    host: submission.host,
    port: submission.port,
    name: 'workstation.adatum.com',
    requireTLS: true,
    tls: { ca: submission.caPem, servername: 'mail.adatum.com' },
    connectionTimeout: 10_000,
    socketTimeout: 10_000,
  });
  const body = [
    `From: ${submission.from}`,
    `To: ${submission.to}`,
    `Subject: ${submission.subject}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${Date.now()}.demo@adatum.com>`,
    '',
    'Bob, the results are attached to our usual share. Alice',
    '',
  ].join('\r\n');
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect(() => resolve());
    });
    const info = await new Promise<{ response: string }>((resolve, reject) => {
      connection.send({ from: submission.from, to: [submission.to] }, body, (error, result) =>
        error ? reject(error) : resolve(result as { response: string }),
      );
    });
    return info.response;
  } finally {
    connection.quit();
  }
}
