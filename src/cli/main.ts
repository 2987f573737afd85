#!/usr/bin/env node
// The domsec command line: parses arguments, calls a layer, and chooses the exit code here only.
import { Command, Option } from 'commander';
import { register as registerApply } from './apply.js';
import { CliError, describeFailure, EXIT } from './errors.js';
import { abortWhenLauncherExits } from './launcher-exit.js';
import { formatOption, processOutput, quietOnBrokenPipe, type OutputFormat } from './output.js';
import { manifestPaths } from './manifests.js';
import { register as registerPlan } from './plan.js';
import { register as registerQueue } from './queue.js';
import { validateCommand } from './validate.js';
import { register as registerWatch } from './watch.js';
import { register as registerHistory } from './history.js';
import { register as registerRollback } from './rollback.js';
import { register as registerStatus } from './status.js';
import { register as registerExplain } from './explain.js';
import { register as registerExport } from './export.js';
import { register as registerProbe } from './probe.js';
import { register as registerDns } from './dns.js';
import { register as registerTlsRpt } from './tlsrpt.js';

// Everything that can go wrong ends here as one line: a reader gone (`domsec plan | head -1`)
// is no failure at all, and a failure nobody caught still prints one line, not a stack.
quietOnBrokenPipe();
const fail = (error: unknown) => {
  const { text, exitCode } = describeFailure(error);
  process.stderr.write(text);
  process.exit(exitCode);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

const out = processOutput();
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];
const files = () =>
  new Option('-f, --file <path>', 'manifest file or directory (repeatable)').argParser(collect);

let exitCode: number = EXIT.ok;
const run =
  <A extends unknown[]>(action: (...args: A) => Promise<number>) =>
  async (...args: A) => {
    exitCode = await action(...args);
  };

/**
 * SIGINT and SIGTERM abort with the signal's name as the reason (serve logs it and drains); a
 * second one while draining exits at once (the queue is crash-safe, the lock the kernel's). Run
 * by npx, the end of npx's shell counts as a SIGTERM (launcher-exit.ts).
 */
function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.on(name, () => {
      if (!controller.signal.aborted) return controller.abort(name);
      process.stderr.write(`domsec: ${name} again: exiting without waiting for the drain\n`);
      process.exit(name === 'SIGINT' ? 130 : 143);
    });
  }
  abortWhenLauncherExits(controller, {
    onLauncherExit: (pid) =>
      process.stderr.write(
        `domsec: npx ended (its shell, PID ${pid}, is gone): stopping as on SIGTERM\n`,
      ),
  });
  return controller.signal;
}

const program = new Command('domsec')
  .description('SMTP domain security (mutual TLS between partner domains) kept as code')
  .version('0.1.0')
  // An unknown option or argument: commander's one line and a hint, never a usage dump.
  .showHelpAfterError('(add --help for usage)');

program
  .command('validate')
  .description('check manifests against the schemas and the rules')
  .addOption(files())
  .addOption(formatOption())
  .action(
    run(async (o: { file?: string[]; output: 'text' | 'json' }) =>
      validateCommand(
        { file: manifestPaths(o.file, { output: o.output, out }), output: o.output },
        out,
      ),
    ),
  );

registerPlan(program);
registerApply(program);
registerWatch(program);
registerHistory(program);
registerRollback(program);
registerStatus(program);

program
  .command('serve')
  .description('run the transport engine and its admin API')
  .addOption(files())
  .option('--state <dir>', 'queue, mailboxes, logs and applied configuration', 'var/domsec')
  .option(
    '--admin <host:port>',
    'admin API address (default: the Organization admin.listen, else 127.0.0.1:8025)',
  )
  .option('--watch', 'reconcile from the -f directory on every change')
  .option(
    '--resync <duration>',
    'with --watch, also reconcile at this interval, correcting drift (e.g. 5m)',
  )
  .option(
    '--settle <duration>',
    'with --watch, take a change once every file read has been quiet this long (default 1s)',
  )
  .option('--prune', 'with --watch, delete objects the manifests no longer hold')
  .option(
    '--approve-weakening',
    'with -f, also apply manifests (at start and with --watch) that weaken the saved generation',
  )
  .option('--log-format <format>', 'json or pretty (default: pretty on a terminal, else json)')
  .option('--log-level <level>', 'debug, info, warn or error', 'info')
  .option(
    '--workers <n>',
    'receive processes sharing the listeners (default: the usable cores; 1: one process)',
  )
  .addOption(formatOption())
  .action(
    run(
      async (o: {
        file?: string[];
        state: string;
        admin?: string;
        workers?: string;
        watch?: boolean;
        resync?: string;
        settle?: string;
        prune?: boolean;
        approveWeakening?: boolean;
        logFormat?: string;
        logLevel?: string;
        output: OutputFormat;
      }) =>
        // Loaded here: the engine's modules would slow every other command's start.
        (await import('./serve.js')).serveCommand(
          { ...o, watch: o.watch === true, approveWeakening: o.approveWeakening === true },
          out,
          shutdownSignal(),
        ),
    ),
  );

registerProbe(program);
registerDns(program);
registerExplain(program);
registerExport(program);

registerQueue(program);
registerTlsRpt(program);

const certs = program
  .command('certs')
  .description('the lab PKI: certificate authorities and organization certificates');
certs
  .command('lab [dir]')
  .description(
    'a CA and a mail certificate for adatum and treyresearch (the story of examples/), roots exchanged; with -f, the files those manifests name',
  )
  .addOption(files())
  .option('--force', 'replace an existing CA and its keys (partners trusting the old root break)')
  .addOption(formatOption())
  .action(
    run(
      async (
        dir: string | undefined,
        o: { force?: boolean; file?: string[]; output: OutputFormat },
      ) => {
        if (o.file === undefined)
          return (await import('./certs.js')).certsLabCommand(dir ?? 'examples', out, o);
        if (dir !== undefined) throw new CliError('give either DIR or -f manifests, not both');
        return (await import('./certs-manifests.js')).certsLabForManifests(o.file, out, o);
      },
    ),
  );

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const failure = describeFailure(error);
  out.stderr(failure.text);
  exitCode = failure.exitCode;
}
// Registered commands set process.exitCode themselves; the others report through exitCode.
process.exitCode ??= exitCode;
