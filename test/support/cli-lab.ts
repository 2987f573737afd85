// The CLI tests' world: adatum.com's manifests and lab PKI on disk (partner treyresearch.net,
// listeners on ephemeral ports, mail to the partner routed to a closed port) and an engine in this
// process to plan and apply against, reached through DOMSEC_TOKEN and DOMSEC_SERVER.
import { join } from 'node:path';
import { startEngine, type RunningEngine } from './engine.js';
import { ADATUM, TREY, writeLab, writeManifests } from './manifests.js';
import { tempDir, type TempDir } from './tmp.js';

export interface CliLab {
  root: TempDir;
  running: RunningEngine;
  manifests: string;
  /** The environment a `domsec` command needs to reach the engine. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startCliLab(): Promise<CliLab> {
  const root = await tempDir();
  await writeLab(root.path);
  const manifests = await writeManifests({
    root: root.path,
    org: ADATUM,
    partner: TREY,
    partnerBinding: '127.0.0.1:0',
    internalBinding: '127.0.0.1:0',
    adminListen: '127.0.0.1:1',
    partnerRoute: { host: '127.0.0.1', port: 9 },
    trust: 'root',
  });
  const running = await startEngine(join(root.path, 'state'));
  return {
    root,
    running,
    manifests,
    env: { DOMSEC_TOKEN: running.token, DOMSEC_SERVER: running.control.url },
    stop: async () => {
      await running.stop();
      await root.remove();
    },
  };
}
