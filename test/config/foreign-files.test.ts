// Manifests from strangers: keyFile, certFile or pemFile naming some other file of the machine
// (a text file, a certificate, another key, /etc/passwd, a device) is refused with an error that
// names the file and never echoes its content, in validate's text and JSON output alike.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Output } from '../../src/cli/output.js';
import { validateCommand } from '../../src/cli/validate.js';
import { CaseLab, codes } from './cases.js';

const MARKER = 'FOREIGN-CONTENT-MARKER-7f3a9c';

/** The lines of a file worth looking for in an output (long enough to be its own). */
function contentLines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 12 && !/^-----(BEGIN|END) /.test(line));
}

interface Validation {
  codes: string[];
  /** Every diagnostic (message, hint, file) and validate's text and JSON output. */
  everything: string;
}

async function validate(dir: string): Promise<Validation> {
  let text = '';
  const out: Output = {
    stdout: (chunk) => (text += chunk),
    stderr: (chunk) => (text += chunk),
    color: false,
    interactive: false,
  };
  await validateCommand({ file: [dir], output: 'text' }, out).catch((error: Error) => {
    text += error.message;
  });
  await validateCommand({ file: [dir], output: 'json' }, out);
  const json = JSON.parse(text.slice(text.indexOf('{\n'))) as {
    diagnostics: { code: string }[];
  };
  return { codes: codes(json.diagnostics as never), everything: text };
}

describe('files named by a manifest that are not what they should be', () => {
  let cases: CaseLab;
  before(async () => {
    cases = await CaseLab.create();
  });
  after(async () => cases.remove());

  /** A case directory whose field (in organization.yaml or partners.yaml) names `target`. */
  async function pointing(
    field: 'keyFile' | 'certFile' | 'pemFile',
    target: (dir: string) => Promise<string>,
  ): Promise<{ dir: string; path: string }> {
    const dir = await cases.prepare();
    const path = await target(dir);
    const manifest = join(dir, field === 'pemFile' ? 'partners.yaml' : 'organization.yaml');
    const text = await readFile(manifest, 'utf8');
    const replaced = text.replace(new RegExp(`${field}: .*`), `${field}: ${path}`);
    assert.notEqual(replaced, text);
    await writeFile(manifest, replaced);
    return { dir, path };
  }

  const keyPath = (dir: string) => join(dir, 'pki', 'mail.adatum.com.key');
  const certPath = (dir: string) => join(dir, 'pki', 'mail.adatum.com.crt');

  const targets: {
    what: string;
    field: 'keyFile' | 'certFile' | 'pemFile';
    code: string;
    /** Writes or picks the file; returns its path and the content that must not appear. */
    make: (dir: string) => Promise<{ path: string; secret: string[] }>;
  }[] = [
    {
      what: 'a text file with a marker',
      field: 'keyFile',
      code: 'DS016',
      make: async (dir) => {
        const path = join(dir, 'notes.txt');
        const text = `meeting notes\n${MARKER} line one of a private note\n${MARKER} two\n`;
        await writeFile(path, text);
        return { path, secret: [MARKER, ...contentLines(text)] };
      },
    },
    {
      what: 'something shaped like a private key, with a marker inside',
      field: 'keyFile',
      code: 'DS016',
      make: async (dir) => {
        const path = join(dir, 'fake.key');
        const body = `${MARKER}${randomBytes(24).toString('base64')}`;
        await writeFile(path, `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`);
        return { path, secret: [MARKER, body] };
      },
    },
    {
      what: 'binary data with a marker',
      field: 'keyFile',
      code: 'DS016',
      make: async (dir) => {
        const path = join(dir, 'blob.bin');
        await writeFile(
          path,
          Buffer.concat([randomBytes(512), Buffer.from(MARKER), randomBytes(512)]),
        );
        return { path, secret: [MARKER] };
      },
    },
    {
      what: 'the certificate instead of the key',
      field: 'keyFile',
      code: 'DS016',
      make: async (dir) => {
        const path = certPath(dir);
        return { path, secret: contentLines(await readFile(path, 'utf8')) };
      },
    },
    {
      what: 'another organization’s (valid) private key',
      field: 'keyFile',
      code: 'DS006',
      make: async () => {
        const path = join(cases.root, 'lab', 'treyresearch', 'pki', 'mail.treyresearch.net.key');
        return { path, secret: contentLines(await readFile(path, 'utf8')) };
      },
    },
    {
      what: 'the private key instead of the certificate',
      field: 'certFile',
      code: 'DS016',
      make: async (dir) => {
        const path = keyPath(dir);
        return { path, secret: contentLines(await readFile(path, 'utf8')) };
      },
    },
    {
      what: 'a private key instead of a trust anchor',
      field: 'pemFile',
      code: 'DS016',
      make: async (dir) => {
        const path = keyPath(dir);
        return { path, secret: contentLines(await readFile(path, 'utf8')) };
      },
    },
    {
      what: 'a device that never ends (/dev/zero)',
      field: 'keyFile',
      code: 'DS016',
      make: () => Promise.resolve({ path: '/dev/zero', secret: [] }),
    },
    ...(existsSync('/etc/passwd')
      ? [
          {
            what: 'a system file (/etc/passwd)',
            field: 'keyFile' as const,
            code: 'DS016',
            make: async () => ({
              path: '/etc/passwd',
              secret: (await readFile('/etc/passwd', 'utf8'))
                .split('\n')
                .filter((line) => line.includes(':x:')),
            }),
          },
        ]
      : []),
  ];

  for (const target of targets) {
    it(`refuses ${target.field} naming ${target.what} with ${target.code}, naming the file, not its content`, async () => {
      let secret: string[] = [];
      const { dir, path } = await pointing(target.field, async (caseDir) => {
        const made = await target.make(caseDir);
        secret = made.secret;
        return made.path;
      });
      const result = await validate(dir);
      assert.ok(
        result.codes.includes(target.code),
        `${result.codes.join(', ')}\n${result.everything}`,
      );
      if (target.code === 'DS016') assert.ok(result.everything.includes(path), 'the file is named');
      for (const line of secret) {
        assert.ok(
          !result.everything.includes(line),
          `content echoed: ${line}\n${result.everything}`,
        );
      }
    });
  }
});
