// Which files are manifests: every *.yaml / *.yml under the given paths, recursively, in a stable
// sorted order, skipping hidden files and editors' temporary files. A file named directly is read
// whatever its extension: the user asked for it.
import { readdir, realpath, stat } from 'node:fs/promises';
import { extname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Diagnostic } from '../model.js';
import { error } from './diagnostics.js';

export interface ManifestFile {
  /** Absolute path. */
  path: string;
  /** As shown in diagnostics: relative to the working directory when under it. */
  file: string;
}

export interface FileDiscovery {
  files: ManifestFile[];
  diagnostics: Diagnostic[];
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml']);

/** Hidden files and what editors leave beside a file they edit (.#x, x~, x.swp, #x#). */
export function isIgnoredName(name: string): boolean {
  return (
    name.startsWith('.') ||
    name.endsWith('~') ||
    /\.sw[a-p]$/.test(name) ||
    (name.startsWith('#') && name.endsWith('#'))
  );
}

export function displayPath(path: string, cwd = process.cwd()): string {
  const rel = relative(cwd, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

export async function findManifestFiles(paths: readonly string[]): Promise<FileDiscovery> {
  const found = new Map<string, ManifestFile>();
  const diagnostics: Diagnostic[] = [];
  const visited = new Set<string>();
  const add = (path: string) => {
    if (!found.has(path)) found.set(path, { path, file: displayPath(path) });
  };

  async function walk(directory: string): Promise<void> {
    let names: string[];
    try {
      const real = await realpath(directory);
      if (visited.has(real)) return; // a symbolic link back up the tree
      visited.add(real);
      names = (await readdir(directory)).sort();
    } catch (cause) {
      const shown = displayPath(directory);
      const code = (cause as NodeJS.ErrnoException).code ?? 'error';
      diagnostics.push(
        error('LOAD', { file: shown, line: 1, col: 1 }, `${shown} cannot be read (${code})`),
      );
      return;
    }
    for (const name of names) {
      if (isIgnoredName(name)) continue;
      const path = join(directory, name);
      const info = await stat(path).catch(() => undefined); // a dangling link is no manifest
      if (info?.isDirectory()) await walk(path);
      // eslint-disable-next-line no-restricted-syntax -- a file extension
      else if (info?.isFile() && MANIFEST_EXTENSIONS.has(extname(name).toLowerCase())) add(path);
    }
  }

  for (const given of paths) {
    const path = resolve(given);
    const where = { file: displayPath(path), line: 1, col: 1 };
    try {
      const info = await stat(path);
      if (info.isDirectory()) {
        const before = found.size;
        await walk(path);
        if (found.size === before) {
          diagnostics.push(
            error('LOAD', where, `no manifest files (*.yaml, *.yml) under ${where.file}`),
          );
        }
      } else {
        add(path);
      }
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? 'no such file or directory' : `cannot be read (${code})`;
      diagnostics.push(error('LOAD', where, `${where.file}: ${reason}`));
    }
  }
  return { files: [...found.values()], diagnostics };
}
