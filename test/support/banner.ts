// The first line an SMTP server sends on a new connection: proof that a listener answers.
import { connect } from 'node:net';

export function banner(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    socket.setTimeout(5_000, () => socket.destroy(new Error('no banner')));
    socket.once('data', (chunk: Buffer) => {
      socket.destroy();
      resolve(chunk.toString());
    });
    socket.once('error', reject);
  });
}
