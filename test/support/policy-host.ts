// An HTTPS MTA-STS policy host on loopback (port 0) with a lab certificate: serves whatever the
// test sets at /.well-known/mta-sts.txt (status, content type, body) and counts requests.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface PolicyResponse {
  status: number;
  contentType?: string;
  body: string;
  headers?: Record<string, string>;
}

export interface PolicyHost {
  port: number;
  /** What the next requests get. */
  response: PolicyResponse;
  /** Paths requested, in order. */
  requests: string[];
  close(): Promise<void>;
}

export async function startPolicyHost(
  certificate: { certPem: string; keyPem: string },
  response: PolicyResponse,
): Promise<PolicyHost> {
  const host: Omit<PolicyHost, 'port' | 'close'> = { response, requests: [] };
  const server: Server = createServer(
    { cert: certificate.certPem, key: certificate.keyPem },
    (request, reply) => {
      host.requests.push(request.url ?? '');
      const { status, contentType, body, headers } = host.response;
      reply.writeHead(status, {
        ...(contentType === undefined ? {} : { 'content-type': contentType }),
        ...headers,
      });
      reply.end(body);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return Object.assign(host, {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
