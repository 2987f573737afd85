// Which engine a command talks to and with which token: --server, DOMSEC_SERVER, or the
// Organization's admin address; --token-file, DOMSEC_TOKEN, or the Organization's token file
// (the first given wins: what is typed on the command line beats what the shell exported).
import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { loadConfiguration } from '../config/index.js';
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
  const token = await readToken(options.tokenFile, admin?.tokenFile);
  return new ControlClient(server, token.value, undefined, token.source);
}

/**
 * The engine when the command line or the environment names it and its token, without the
 * manifests: its state can then be fetched while they load. Undefined when the manifests must say.
 */
export async function engineNamedUpFront(
  options: TargetOptions,
): Promise<ControlClient | undefined> {
  const named = options.server ?? process.env.DOMSEC_SERVER;
  const token = (process.env.DOMSEC_TOKEN ?? '') !== '' || options.tokenFile !== undefined;
  return named !== undefined && token ? connectEngine(options) : undefined;
}

/** The admin token and where it came from: --token-file, DOMSEC_TOKEN, the manifests' file. */
async function readToken(
  given: string | undefined,
  organizationFile: string | undefined,
): Promise<{ value: string; source: string }> {
  if (given !== undefined) return readTokenFile(given, `--token-file ${given}`);
  const fromEnvironment = process.env.DOMSEC_TOKEN;
  if (fromEnvironment !== undefined && fromEnvironment !== '')
    return { value: fromEnvironment, source: 'DOMSEC_TOKEN' };
  if (organizationFile === undefined) {
    throw new CliError(
      'no admin token: give --token-file (serve writes one in its state directory), or set DOMSEC_TOKEN',
    );
  }
  return readTokenFile(organizationFile, `the Organization's admin.tokenFile ${organizationFile}`);
}

async function readTokenFile(
  file: string,
  source: string,
): Promise<{ value: string; source: string }> {
  try {
    return { value: (await readFile(file, 'utf8')).trim(), source };
  } catch (error) {
    throw new CliError(
      `cannot read the admin token file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}

/** --server and --token-file, for every command that talks to an engine. */
export function addTargetOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--server <url>',
        'admin API of the engine (default: the Organization admin.listen)',
      ),
    )
    .addOption(
      new Option(
        '--token-file <path>',
        'file holding the admin token (wins over DOMSEC_TOKEN, which wins over admin.tokenFile)',
      ),
    );
}

/**
 * The engine for a command that needs no manifests but can find its engine through them
 * (history, rollback, status): -f when given, ./manifests when it exists, else --server.
 */
export async function connectEngineFor(
  options: TargetOptions & { file?: string[] },
): Promise<ControlClient> {
  const paths = options.file ?? ['manifests'];
  const config = paths.every((path) => existsSync(path))
    ? (await loadConfiguration(paths)).config
    : undefined;
  return connectEngine(options, config);
}
