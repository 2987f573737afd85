// The files a watch reads (its roots, the manifests under them and the certificate, key, chain,
// trust anchor and CRL files they name) and what each looks like on disk: a cheap look (where it
// leads, which inode, size and times) for settle windows, a content digest for resyncs.
import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, resolve, sep } from 'node:path';
import { findManifestFiles } from '../config/manifest-files.js';
import { parseManifestFile } from '../config/yaml-documents.js';

/** The spec fields whose value is a file the loader reads (config/material.ts). */
const MATERIAL_FIELDS = ['certFile', 'keyFile', 'chainFile', 'pemFile', 'crlFile'] as const;

/** What the loader reads under a directory (manifest-files.ts), in any case of the extension. */
const MANIFEST_NAME = /\.ya?ml$/i;

/** The loader refuses larger manifests; reading more to find references would be wasted. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Larger than any PEM the loader accepts (1 MB) or any manifest: digest no more than that. */
const MAX_DIGESTED_BYTES = 4 * 1024 * 1024;

/** Path -> what it looks like (a look or a digest); "missing: CODE" when it cannot be read. */
export type FileLooks = Map<string, string>;

export class WatchedFiles {
  private manifests: string[] = [];
  private referencedFiles: string[] = [];
  /** References found in each manifest, by the look of the manifest they were read from. */
  private readonly references = new Map<string, { look: string; files: string[] }>();

  /** Absolute paths of the roots given with -f. */
  constructor(readonly roots: readonly string[]) {}

  /** Roots, the directories holding manifests, manifests and referenced files, each once. */
  get all(): string[] {
    const directories = this.manifests.map((file) => dirname(file));
    return [...new Set([...this.roots, ...directories, ...this.manifests, ...this.referenced])];
  }

  /** The files the manifests name, which may lie outside the roots. */
  get referenced(): string[] {
    return this.referencedFiles;
  }

  /**
   * Takes the manifest files a load read (as it reports them) and finds the files they name.
   * A manifest unchanged since it was last read keeps the references found then.
   */
  async update(loaded: readonly string[]): Promise<void> {
    this.manifests = loaded.map((file) => resolve(file));
    const looks = await lookAt(this.manifests);
    const found = new Set<string>();
    for (const file of this.manifests) {
      const look = looks.get(file) ?? '';
      let known = this.references.get(file);
      if (known?.look !== look) {
        known = { look, files: await referencesOf(file) };
        this.references.set(file, known);
      }
      for (const path of known.files) found.add(path);
    }
    for (const file of this.references.keys()) {
      if (!this.manifests.includes(file)) this.references.delete(file);
    }
    this.referencedFiles = [...found].sort();
  }

  /**
   * Whether an event on this path can change what watch reads: a manifest (or a file that may
   * become one), a referenced file, a root, or a Kubernetes volume's `..data` link or version.
   * Other files under a root (a queue or a build kept there) would only hold the window open.
   */
  concerns(path: string): boolean {
    const name = basename(path);
    return (
      MANIFEST_NAME.test(name) ||
      name.startsWith('..') ||
      this.roots.includes(path) ||
      this.referencedFiles.includes(path)
    );
  }

  /** The paths that no root holds (a root's watch covers the others). */
  outsideRoots(paths: readonly string[]): string[] {
    return paths.filter(
      (path) => !this.roots.some((root) => path === root || path.startsWith(`${root}${sep}`)),
    );
  }

  /**
   * The manifests as discovered now (not as last loaded) with the referenced files: what a
   * resync digests, so that a file added or removed without an event is noticed too.
   */
  async discovered(): Promise<string[]> {
    const discovery = await findManifestFiles(this.roots);
    const manifests = discovery.files.map((file) => file.path);
    return [...new Set([...this.roots, ...manifests, ...this.referenced])];
  }
}

/** The files a manifest names in the material fields, resolved as the loader resolves them. */
async function referencesOf(file: string): Promise<string[]> {
  let text: string;
  try {
    const info = await stat(file);
    if (!info.isFile() || info.size > MAX_MANIFEST_BYTES) return [];
    text = await readFile(file, 'utf8');
  } catch {
    return []; // gone or unreadable: the load says so, and the next look sees it
  }
  const found: string[] = [];
  for (const document of parseManifestFile(text, file, file).documents) {
    const spec = (document.data as { spec?: unknown } | null)?.spec;
    if (typeof spec !== 'object' || spec === null) continue;
    for (const field of MATERIAL_FIELDS) {
      const written = (spec as Record<string, unknown>)[field];
      if (typeof written === 'string' && written !== '')
        found.push(resolve(document.directory, written));
    }
  }
  return found;
}

/**
 * What each path looks like without reading it: where it leads (a swapped symbolic link leads
 * elsewhere), its device and inode (a file renamed over is another), size, and times in ns.
 */
export function lookAt(paths: readonly string[]): Promise<FileLooks> {
  return inspect(paths, (real, info) =>
    [real, `${info.dev}:${info.ino}`, info.size, info.mtimeNs, info.ctimeNs].join('\0'),
  );
}

/** Where each path leads and which inode it is there: what changes when it is replaced. */
export function identify(paths: readonly string[]): Promise<FileLooks> {
  return inspect(paths, (real, info) => [real, `${info.dev}:${info.ino}`].join('\0'));
}

async function inspect(
  paths: readonly string[],
  describe: (real: string, info: BigIntStats) => string,
): Promise<FileLooks> {
  const looks: FileLooks = new Map();
  await Promise.all(
    paths.map(async (path) => {
      try {
        const real = await realpath(path);
        looks.set(path, describe(real, await stat(real, { bigint: true })));
      } catch (error) {
        looks.set(path, missing(error));
      }
    }),
  );
  return looks;
}

/** Whether a look says the path could not be looked at. */
export function isMissing(look: string | undefined): boolean {
  return look === undefined || look.startsWith(MISSING);
}

/** A SHA-256 of each file's content (of a directory's: its path), whatever its times say. */
export async function digest(paths: readonly string[]): Promise<FileLooks> {
  const digests: FileLooks = new Map();
  await Promise.all(
    paths.map(async (path) => {
      try {
        const real = await realpath(path);
        const info = await stat(real);
        if (!info.isFile()) return digests.set(path, `${real} (not a file)`);
        if (info.size > MAX_DIGESTED_BYTES) return digests.set(path, `${real} ${info.size} bytes`);
        const hash = createHash('sha256')
          .update(await readFile(real))
          .digest('hex');
        digests.set(path, `sha256:${hash}`);
      } catch (error) {
        digests.set(path, missing(error));
      }
    }),
  );
  return digests;
}

/** Paths whose look differs between the two, or that only one of them has. */
export function differences(before: FileLooks, after: FileLooks): string[] {
  const changed: string[] = [];
  for (const [path, look] of after) if (before.get(path) !== look) changed.push(path);
  for (const path of before.keys()) if (!after.has(path)) changed.push(path);
  return changed.sort();
}

/** Paths of `after` that `before` did not look at. */
export function newlySeen(before: FileLooks, after: FileLooks): string[] {
  return [...after.keys()].filter((path) => !before.has(path)).sort();
}

/**
 * Whether none of the paths was modified or changed (rename, chmod) within the last `windowMs`
 * by its own times: for files watch starts to read, whose quiet no window has seen. A time in
 * the future (a skewed clock) is no evidence of a save under way.
 */
export async function quietFor(
  paths: readonly string[],
  windowMs: number,
  now = Date.now(),
): Promise<boolean> {
  const ages = await Promise.all(
    paths.map(async (path) => {
      try {
        const info = await stat(path);
        return [now - info.mtimeMs, now - info.ctimeMs];
      } catch {
        return [];
      }
    }),
  );
  return ages.flat().every((age) => age < 0 || age >= windowMs);
}

const MISSING = 'missing: ';

function missing(error: unknown): string {
  return `${MISSING}${(error as NodeJS.ErrnoException).code ?? 'error'}`;
}
