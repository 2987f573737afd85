// Local delivery: Maildir files appear in new/ whole (written in tmp/, renamed), one unique file
// per delivery, under <root>/<domain>/<localpart>, with no way out of the root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createLocalDelivery,
  mailboxName,
  Maildir,
  sweepTemporaryFiles,
} from '../../src/engine/delivery/maildir.js';
import { buildGeneration } from '../../src/engine/generation.js';
import { runtimeConfig } from '../support/runtime-config.js';
import { tempDir } from '../support/tmp.js';

describe('Maildir delivery', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('domsec-maildir-');
  });
  after(() => dir.remove());

  it('writes the message into new/ with tmp/ left empty and cur/ created', async () => {
    const maildir = new Maildir(join(dir.path, 'mail'));
    const body = Buffer.from('Subject: hello\r\n\r\nbody\r\n');
    const path = await maildir.deliver('Bob@TreyResearch.net', body);
    const mailbox = join(dir.path, 'mail', 'treyresearch.net', 'bob');
    assert.equal(path.startsWith(join(mailbox, 'new')), true);
    assert.deepEqual(await readFile(path), body);
    assert.deepEqual(await readdir(join(mailbox, 'tmp')), []);
    assert.deepEqual(await readdir(join(mailbox, 'cur')), []);
  });

  it('sweeps from tmp/ what an engine that is gone left, and nothing else', async () => {
    const root = join(dir.path, 'swept');
    const tmp = join(root, 'treyresearch.net', 'bob', 'tmp');
    await mkdir(tmp, { recursive: true });
    const host = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072');
    const gonePid = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(process.pid))',
    ]).stdout.toString();
    const name = (pid: number | string, on = host) =>
      `1764000000.M123456P${pid}Q7R0a1b2c3d.${on},S=42`;
    const left = name(gonePid);
    const kept = [
      name(process.pid), // ours, being written
      name(process.ppid), // another engine, still running
      name(gonePid, 'another.host'), // written by another host sharing the Maildirs
      'written-by-a-mail-reader',
    ];
    for (const file of [left, ...kept]) await writeFile(join(tmp, file), 'part of a message');
    assert.equal(await sweepTemporaryFiles(root), 1);
    assert.deepEqual((await readdir(tmp)).sort(), kept.sort());
    assert.equal(await sweepTemporaryFiles(join(dir.path, 'no-such-root')), 0);
  });

  it('gives every delivery its own file name', async () => {
    const maildir = new Maildir(join(dir.path, 'unique'));
    const paths = await Promise.all(
      Array.from({ length: 20 }, (_, n) =>
        maildir.deliver('carol@treyresearch.net', Buffer.from(`${n}\r\n`)),
      ),
    );
    assert.equal(new Set(paths).size, 20);
    const names = await readdir(join(dir.path, 'unique', 'treyresearch.net', 'carol', 'new'));
    assert.equal(names.length, 20);
    for (const name of names) assert.match(name, /^\d+\.M\d+P\d+Q\d+R[0-9a-f]+\..+,S=\d+$/);
  });

  it('encodes local parts so that none can leave its domain directory', () => {
    assert.equal(mailboxName('bob'), 'bob');
    assert.equal(mailboxName('first.last+tag'), 'first.last+tag');
    assert.equal(mailboxName('../../etc'), '%2E.%2F..%2Fetc'); // one path component
    assert.equal(mailboxName('..'), '%2E.');
    assert.equal(mailboxName('a/b'), 'a%2Fb');
    assert.equal(mailboxName('"x y"'), '%22x%20y%22');
    assert.throws(() => new Maildir('/m').pathFor('bob@../etc'));
  });

  it('takes a relative delivery.maildir from the state directory and reports each recipient', async () => {
    const generation = buildGeneration(
      runtimeConfig({ organization: { delivery: { maildir: 'mail' } } }),
      1,
    );
    const deliver = createLocalDelivery({ stateDir: join(dir.path, 'state') });
    const body = Buffer.from('Subject: local\r\n\r\nhi\r\n');
    const outcome = await deliver(
      {
        id: 'X.1',
        from: 'alice@adatum.com',
        recipients: ['bob@treyresearch.net', 'dave@treyresearch.net'],
        size: body.length,
        receivedAt: new Date(),
        body: () => Promise.resolve(body),
      },
      generation,
    );
    assert.deepEqual(outcome, {
      delivered: ['bob@treyresearch.net', 'dave@treyresearch.net'],
      failures: [],
    });
    for (const user of ['bob', 'dave']) {
      const newDir = join(dir.path, 'state', 'mail', 'treyresearch.net', user, 'new');
      const [name] = await readdir(newDir);
      assert.ok(name !== undefined);
      assert.deepEqual(await readFile(join(newDir, name)), body);
    }
  });
});
