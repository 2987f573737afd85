// The entry point of a receive worker process, forked by the primary's WorkerGroup (node:cluster).
import { runReceiveWorker, endWithPrimary } from './worker.js';
import type { PrimaryMessage, WorkerMessage } from './protocol.js';
import { WORKER_ENV } from './protocol.js';

const stateDir = process.env[WORKER_ENV.stateDir];
const writer = process.env[WORKER_ENV.writer];
if (stateDir === undefined || writer === undefined || process.send === undefined) {
  process.stderr.write('a receive worker is started by domsec serve --workers, not by hand\n');
  process.exit(2);
}
const channel = process.send.bind(process);
// A terminal's Ctrl-C or a service manager's SIGTERM to the whole group reaches the workers too:
// they stop when the primary tells them, after their sessions, or when it is gone.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
let leaving = false;
// Gone with the primary at once (the channel closed without a stop): nothing waits for this one.
endWithPrimary(process.ppid, () => {
  if (!leaving) process.exit(1);
});
runReceiveWorker({
  stateDir,
  writer,
  // False only when the channel is gone: process.send's own false means a backlog, and the
  // message still goes.
  send: (message: WorkerMessage) => {
    if (!process.connected) return false;
    channel(message);
    return true;
  },
  onMessage: (listener) => process.on('message', (message) => listener(message as PrimaryMessage)),
  exit: (code) => {
    leaving = true;
    process.exitCode = code;
    process.disconnect();
  },
});
