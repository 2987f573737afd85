// Which engine a command talks to and with which token: --server, DOMSEC_SERVER, or the
// Organization's admin address; DOMSEC_TOKEN, --token-file, or the Organization's token file.
import { readFile } from 'node:fs/promises';
import { ControlClient } from '../control/client.js';
import type { RuntimeConfig } from '../model.js';
import { CliError } from './errors.js';

export interface TargetOptions {
  server?: string;
  tokenFile?: string;
}

export async function connectEngine(
  options: TargetOptions,
  config?: RuntimeConfig,
): Promise<ControlClient> {
  const admin = config?.organization.spec.admin;
  const server =
    options.server ??
    process.env.DOMSEC_SERVER ??
    (admin === undefined ? undefined : `http://${admin.listen}`);
  if (server === undefined) {
    throw new CliError(
      'no engine to talk to: give --server URL, set DOMSEC_SERVER, or point -f at the manifests',
    );
  }
  return new ControlClient(server, await readToken(options.tokenFile ?? admin?.tokenFile));
}

async function readToken(tokenFile: string | undefined): Promise<string> {
  const fromEnvironment = process.env.DOMSEC_TOKEN;
  if (fromEnvironment !== undefined && fromEnvironment !== '') return fromEnvironment;
  if (tokenFile === undefined) {
    throw new CliError(
      'no admin token: set DOMSEC_TOKEN, or give --token-file (serve writes one in its state directory)',
    );
  }
  try {
    return (await readFile(tokenFile, 'utf8')).trim();
  } catch (error) {
    throw new CliError(
      `cannot read the admin token file ${tokenFile}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}
