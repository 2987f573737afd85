// Every command takes the same -o text|json: JSON objects carry formatVersion, and any other
// format is refused in one line with exit 1 (never a usage dump, never text printed instead).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readFile, writeFile } from 'node:fs/promises';
import { domsec, RunningCli } from '../support/cli.js';
import { partnerManifest } from '../support/manifests.js';
import { startCliLab, type CliLab } from '../support/cli-lab.js';

/** The commands `domsec --help` lists, groups (export, queue, certs) by their subcommands. */
function leafCommands(): Promise<string[][]> {
  listed ??= listLeafCommands();
  return listed;
}
let listed: Promise<string[][]> | undefined;

async function listLeafCommands(): Promise<string[][]> {
  const commandsOf = async (path: string[]) => {
    const help = (await domsec([...path, '--help'])).stdout;
    const section = help.slice(help.indexOf('Commands:'));
    return help.includes('Commands:')
      ? [...section.matchAll(/^ {2}([a-z]+)\b/gm)]
          .map((match) => match[1] ?? '')
          .filter((name) => name !== 'help')
      : undefined;
  };
  const leaves: string[][] = [];
  for (const name of (await commandsOf([])) ?? []) {
    const sub = await commandsOf([name]);
    if (sub === undefined) leaves.push([name]);
    else for (const child of sub) leaves.push([name, child]);
  }
  return leaves;
}

/** The arguments each command needs before its options; any value does to reach -o. */
const ARGUMENTS: Record<string, string[]> = {
  rollback: ['1'],
  probe: ['treyresearch.net'],
  explain: ['DS001'],
  'queue show': ['some-id'],
  'queue suspend': ['treyresearch.net'],
  'queue resume': ['treyresearch.net'],
};

describe('output formats', () => {
  let lab: CliLab;
  let manifests: string;
  let env: Record<string, string>;

  before(async () => {
    lab = await startCliLab();
    ({ manifests, env } = lab);
  });

  after(() => lab.stop());

  it('every command domsec --help lists takes -o text|json and refuses -o xml in one line with exit 1', async () => {
    const commands = await leafCommands();
    assert.ok(commands.length >= 17, commands.map((c) => c.join(' ')).join(', '));
    for (const command of commands) {
      const name = command.join(' ');
      const help = (await domsec([...command, '--help'])).stdout;
      assert.match(help, /-o, --output <format> +output format: text or json/, `${name} --help`);
      const args = [...command, ...(ARGUMENTS[name] ?? []), '-o', 'xml'];
      const result = await domsec(args, env, 15_000);
      assert.equal(result.code, 1, `${name}: ${result.stderr}`);
      assert.equal(result.stdout, '', name);
      assert.equal(result.stderr, 'domsec: -o xml: the output format is text or json\n', name);
    }
  });

  it('an unknown option, on a group or a command, is refused in two lines with no usage dump', async () => {
    const groups = [
      ...new Set(
        (await leafCommands()).filter((c) => c.length > 1).map((command) => command[0] ?? ''),
      ),
    ];
    const runs = [[], ...groups.map((group) => [group]), ['queue', 'list']].flatMap((command) =>
      ['-o', '--no-such-option'].map((option) => [...command, option, 'xml']),
    );
    await Promise.all(
      runs.map(async (args) => {
        const result = await domsec(args, env, 30_000);
        const name = args.join(' ');
        assert.notEqual(result.code, 0, name);
        assert.doesNotMatch(result.stderr, /Usage:/, name);
        assert.ok(result.stderr.trimEnd().split('\n').length <= 2, `${name}: ${result.stderr}`);
      }),
    );
  });

  it('apply -o json prints one object with formatVersion, the plan and the generation', async () => {
    const result = await domsec(
      ['apply', '-f', manifests, '--auto-approve', '--approve-weakening', '-o', 'json'],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    const applied = JSON.parse(result.stdout) as {
      formatVersion: number;
      applied: boolean;
      generation: number;
      plan: { changes: { kind: string; name: string }[] };
    };
    assert.equal(applied.formatVersion, 1);
    assert.equal(applied.applied, true);
    assert.equal(applied.generation, 1);
    assert.ok(applied.plan.changes.some((c) => c.kind === 'PartnerDomain'));

    const again = await domsec(['apply', '-f', manifests, '--auto-approve', '-o', 'json'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      (({ formatVersion, applied: done, generation }) => ({ formatVersion, done, generation }))(
        JSON.parse(again.stdout) as { formatVersion: number; applied: boolean; generation: number },
      ),
      { formatVersion: 1, done: false, generation: 1 },
    );
  });

  it('apply and rollback -o json refuse to run without --auto-approve', async () => {
    for (const command of [['apply'], ['rollback', '1']]) {
      const result = await domsec([...command, '-f', manifests, '-o', 'json'], env);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(
        result.stderr,
        /^domsec: -o json prints no plan to confirm: pass --auto-approve/,
      );
    }
  });

  it('rollback -o json prints one object with formatVersion and the new generation', async () => {
    const result = await domsec(
      ['rollback', '1', '-f', manifests, '--auto-approve', '-o', 'json'],
      env,
    );
    assert.equal(result.code, 0, result.stderr);
    const rolled = JSON.parse(result.stdout) as {
      formatVersion: number;
      rolledBackTo: number;
      generation: number;
    };
    assert.equal(rolled.formatVersion, 1);
    assert.equal(rolled.rolledBackTo, 1);
    assert.equal(rolled.generation, 2);
  });

  it('queue list and status -o json carry formatVersion', async () => {
    for (const command of [['queue', 'list'], ['status']]) {
      const result = await domsec([...command, '-f', manifests, '-o', 'json'], env);
      assert.equal(result.code, 0, result.stderr);
      assert.equal((JSON.parse(result.stdout) as { formatVersion: number }).formatVersion, 1);
    }
  });

  it('watch -o json prints one object per event, one per line, each with formatVersion', async () => {
    const watch = new RunningCli(
      ['watch', '-f', manifests, '--settle', '200ms', '-o', 'json'],
      env,
    );
    try {
      await watch.waitForOutput(/"event":"watching"/);
      await writeFile(
        join(manifests, 'partners', 'contoso.yaml'),
        partnerManifest(
          { name: 'contoso', hostname: 'mail.contoso.com', domain: 'contoso.com' },
          'system',
          false,
        ),
      );
      await watch.waitForOutput(/"event":"applied"/);
    } finally {
      await watch.stop();
    }
    const events = watch.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { formatVersion: number; event: string });
    assert.ok(
      events.every((e) => e.formatVersion === 1),
      watch.stdout,
    );
    assert.deepEqual(
      events.map((e) => e.event),
      ['watching', 'plan', 'applied'],
      watch.stdout,
    );
  });

  it('every command domsec --help lists prints -o json as JSON with formatVersion 1', async () => {
    const out = join(lab.root.path, 'formats');
    const m = ['-f', manifests];
    /** Each command with what it needs; output read as one JSON document, or lines of them. */
    const cases: Record<string, { args: string[]; lines?: boolean; exit?: number }> = {
      validate: { args: m },
      plan: { args: m },
      apply: { args: [...m, '--auto-approve', '--approve-weakening'] },
      status: { args: m },
      history: { args: m },
      // Mail to the lab's partner goes to a closed port: the probe fails, and says so in JSON.
      probe: { args: ['treyresearch.net', ...m, '--timeout', '2'], exit: 1 },
      explain: { args: ['PartnerDomain.certificateNameMatch'] },
      'export crds': { args: [] },
      'certs lab': { args: [join(out, 'lab')] },
      'queue suspend': { args: ['treyresearch.net', ...m] },
      'queue list': { args: m },
      'queue retry': { args: ['treyresearch.net', ...m] },
      'queue resume': { args: ['treyresearch.net', ...m] },
      rollback: { args: ['1', ...m, '--auto-approve', '--approve-weakening'] },
      'dns records': { args: m },
      'tlsrpt show': { args: ['--state', join(out, 'tlsrpt-state')] },
    };
    /** Long-running: started, read until their first line, stopped. */
    const running: Record<string, string[]> = {
      watch: [...m],
      serve: ['--state', join(out, 'state'), '--admin', '127.0.0.1:0'],
    };
    /** Asserted against a real queued message in its own test file. */
    const elsewhere: Record<string, string> = { 'queue show': 'queue-show.test.ts' };
    const commands = (await leafCommands()).map((command) => command.join(' '));
    assert.deepEqual(
      commands.filter((name) => !(name in cases || name in running || name in elsewhere)),
      [],
      'a command without a -o json case here',
    );
    for (const [name, { args, exit = 0 }] of Object.entries(cases)) {
      if (!commands.includes(name)) continue; // a case ahead of its command

      const result = await domsec([...name.split(' '), ...args, '-o', 'json'], env, 20_000);
      assert.equal(result.code, exit, `${name}: ${result.stderr}`);
      const parsed = JSON.parse(result.stdout) as { formatVersion?: number };
      assert.equal(parsed.formatVersion, 1, name);
    }
    for (const [name, args] of Object.entries(running)) {
      const child = new RunningCli([name, ...args, '-o', 'json'], env);
      try {
        await child.waitForOutput(/\n/, 20_000);
      } finally {
        await child.stop();
      }
      const first = JSON.parse(child.stdout.split('\n')[0] ?? '') as {
        formatVersion?: number;
        event?: string;
      };
      assert.equal(first.formatVersion, 1, `${name}: ${child.stdout}`);
      assert.equal(first.event, name === 'serve' ? 'ready' : 'watching', name);
    }
    for (const file of Object.values(elsewhere))
      assert.match(
        await readFile(join(import.meta.dirname, file), 'utf8'),
        /'-o', 'json'/,
        `${file} covers -o json`,
      );
  });
});
