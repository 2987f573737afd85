// A plain SMTP client over a raw socket for tests that need to misbehave on purpose (over-long
// lines, silence, command floods): it writes lines and reads replies, each wait bounded.
import { connect, type Socket } from 'node:net';
import { eventually } from './eventually.js';

export class LineClient {
  private buffer = '';
  private closed = false;
  private waiters: (() => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** `localAddress`: the client's own address, e.g. 127.0.0.2 to be placed by remote range. */
  static async open(port: number, host = '127.0.0.1', localAddress?: string): Promise<LineClient> {
    const socket = connect({
      port,
      host,
      noDelay: true,
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new LineClient(socket);
  }

  write(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  /** The next complete reply (all lines of a multi-line one), or rejects after `timeout` ms. */
  async reply(timeout = 5_000): Promise<string> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buffer);
      if (match !== null) {
        this.buffer = this.buffer.slice(match[0].length);
        return match[0].trimEnd();
      }
      if (this.closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.buffer)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeout} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves when the server has closed the connection; rejects after `timeout` ms. */
  async closedByServer(timeout = 5_000): Promise<void> {
    await eventually('the server to close the connection', () => this.closed, timeout);
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
