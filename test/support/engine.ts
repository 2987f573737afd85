// A real engine with its admin API, in the test process, on loopback ports the OS picks.
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlClient } from '../../src/control/client.js';
import { keptConfigReader } from '../../src/control/kept-generations.js';
import { startControlServer, type ControlServer } from '../../src/control/server.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { memoryLog } from '../../src/engine/log.js';

export { eventually } from './eventually.js';

export interface RunningEngine {
  engine: Engine;
  control: ControlServer;
  client: ControlClient;
  token: string;
  log: ReturnType<typeof memoryLog>;
  stop(): Promise<void>;
}

export async function startEngine(
  stateDir: string,
  options: Pick<EngineOptions, 'applyGate' | 'workers'> = {},
): Promise<RunningEngine> {
  const log = memoryLog();
  const engine = await Engine.open({ stateDir: join(stateDir), log, ...options });
  const token = randomBytes(24).toString('base64url');
  recordToken(token);
  const control = await startControlServer({
    engine,
    host: '127.0.0.1',
    port: 0,
    token,
    log,
    keptConfig: keptConfigReader(stateDir),
  });
  return {
    engine,
    control,
    client: new ControlClient(control.url, token),
    token,
    log,
    stop: async () => {
      await control.close();
      await engine.close();
    },
  };
}

/** Records an admin token in the suite's secret ledger: test/run.mjs greps all output for it. */
export function recordToken(token: string): void {
  const ledger = process.env.DOMSEC_SECRET_LEDGER;
  if (ledger === undefined || ledger === '' || token.length < 16) return;
  const origin = (process.argv[1] ?? '-').replace(/\s/g, '_');
  appendFileSync(join(ledger, `${process.pid}.txt`), `token - ${origin} ${token}\n`);
}
