// A torn write in the queue (a control record or a body cut short, as a failing disk or a careless
// copy leaves them): the engine still starts, quarantines what it cannot trust with a log line, and
// delivers the rest.
import assert from 'node:assert/strict';
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ControlClient } from '../../src/control/client.js';
import { eventually } from '../support/eventually.js';
import { ADATUM, TREY } from '../support/manifests.js';
import { startSmtpPeer, type SmtpPeer } from '../support/smtp-peer.js';
import { submit } from '../support/smtp-submit.js';
import { tempDir } from '../support/tmp.js';
import { queueFiles, writePartnerLab, type PartnerLab } from './partner-lab.js';
import { ServeProcess } from './serve-process.js';

describe('torn queue files', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let lab: PartnerLab;
  let engine: ServeProcess | undefined;
  let partner: SmtpPeer | undefined;

  before(async () => {
    work = await tempDir('domsec-torn-');
    lab = await writePartnerLab(work.path); // adatum.com routed to a closed port: mail waits
  });
  after(async () => {
    await engine?.kill();
    await partner?.close();
    await work.remove();
  });

  it('quarantines a truncated control record and a truncated body with a log line, and delivers the rest', async () => {
    const state = join(work.path, 'state');
    const env = { DOMSEC_TOKEN: 'torn-write-token-0123456789abcdef0123' };
    engine = new ServeProcess(['-f', lab.manifests, '--state', state], env);
    await engine.ready();
    const ids = ['torn-record', 'torn-body', 'intact'];
    for (const id of ids) {
      const outcome = await submit(
        lab.internalPort,
        { from: `alice@${TREY.domain}`, to: [`bob@${ADATUM.domain}`] },
        { plaintext: true, serverCa: lab.client.serverCa, name: TREY.hostname },
        `Subject: ${id}\r\nX-Test-Id: ${id}\r\n\r\n${'A line of the body.\r\n'.repeat(20)}`,
      );
      assert.equal(outcome.code, 250, outcome.response);
    }
    const deferred = () => engine?.events().filter((e) => e.event === 'queue.deferred') ?? [];
    await eventually('three deferred entries', () => deferred().length, {
      timeoutMs: 15_000,
      until: (n) => n >= 3,
    });
    assert.equal(await engine.stop(), 0);

    // Which files belong to which message, from the bodies themselves.
    const queue = join(state, 'queue');
    const byId = new Map<string, { record: string; body: string }>();
    for (const name of await readdir(join(queue, 'data'))) {
      const body = await readFile(join(queue, 'data', name), 'latin1');
      const id = /^X-Test-Id: (\S+)/m.exec(body)?.[1] ?? '';
      byId.set(id, { body: name, record: `${name.slice(0, -4)}.1.json` });
    }
    const tornRecord = byId.get('torn-record');
    const tornBody = byId.get('torn-body');
    assert.ok(tornRecord !== undefined && tornBody !== undefined && byId.has('intact'));
    const recordPath = join(queue, 'control', tornRecord.record);
    await truncate(recordPath, Math.floor((await readFile(recordPath)).length / 2));
    const bodyPath = join(queue, 'data', tornBody.body);
    await truncate(bodyPath, Math.floor((await readFile(bodyPath)).length / 2));

    // The partner comes up; the engine restarts on the same state, routing adatum.com to it.
    const peer = await startSmtpPeer({
      certificate: lab.client.certificate,
      name: ADATUM.hostname,
    });
    partner = peer;
    const organization = join(lab.manifests, 'organization.yaml');
    const yaml = await readFile(organization, 'utf8');
    await writeFile(organization, yaml.replace(/port: 9\}/, `port: ${peer.port}}`));
    engine = new ServeProcess(['-f', lab.manifests, '--state', state], env);
    await engine.ready();
    // The entries wait for their next attempt (a minute away): the operator's `domsec queue retry`.
    await new ControlClient(`http://${lab.admin}`, env.DOMSEC_TOKEN).retry(ADATUM.domain);

    await eventually('the intact message at the partner', () => peer.messages.length >= 1, 15_000);
    await eventually('an empty queue', async () => (await queueFiles(queue)).control ?? [], {
      timeoutMs: 15_000,
      until: (files) => files.length === 0,
    });
    await new Promise((resolve) => setTimeout(resolve, 300)); // nothing else arrives
    const delivered = peer.messages.map((m) => /^X-Test-Id: (\S+)/m.exec(m.body.toString())?.[1]);
    assert.deepEqual(delivered, ['intact']);

    const events = engine.events();
    const corrupt = events.filter((e) => e.event === 'queue.corrupt-control');
    assert.deepEqual(
      corrupt.map((e) => e.file).sort(),
      [tornRecord.record, tornBody.record].sort(),
    );
    assert.match(String(corrupt.find((e) => e.file === tornRecord.record)?.reason), /^not JSON/);
    assert.match(
      String(corrupt.find((e) => e.file === tornBody.record)?.reason),
      /has \d+ bytes, the record says \d+/,
    );
    assert.ok(
      events.some(
        (e) => e.event === 'queue.corrupt-body' && e.message === tornBody.body.slice(0, -4),
      ),
    );
    const files = await queueFiles(queue);
    assert.deepEqual(files.data, []);
    const quarantined = (files.corrupt ?? []).map((name) => name.replace(/\.\d+$/, '')).sort();
    // The torn record's message file is kept beside it (it is no orphan: a record named it).
    assert.deepEqual(
      quarantined,
      [tornBody.body, tornBody.record, tornRecord.body, tornRecord.record].sort(),
    );
    assert.equal(await engine.stop(), 0);
  });
});
