// A ConfigMap or Secret volume laid out as the kubelet's atomic writer lays it out: the files in a
// timestamped directory (`..2026_12_07_16_05_08.123456789`), `..data` a symbolic link to it, and
// each file a link `name -> ..data/name`. An update writes a new timestamped directory, points
// `..data_tmp` at it, renames that over `..data`, then removes the old directory: readers see the
// old set or the new one, never a mix (kubernetes pkg/volume/util/atomic_writer.go).
import { randomInt } from 'node:crypto';
import { chmod, mkdir, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** File name -> content, as a ConfigMap's data or a Secret's (decoded). */
export type VolumeFiles = Readonly<Record<string, string>>;

export class KubeletVolume {
  private version: string | undefined;

  private constructor(
    readonly dir: string,
    /** The volume's defaultMode, for every file. */
    private readonly mode: number,
  ) {}

  /** The mount point with its first version, as a pod's container first sees it. */
  static async create(dir: string, files: VolumeFiles, mode = 0o644): Promise<KubeletVolume> {
    await mkdir(dir, { recursive: true });
    const volume = new KubeletVolume(dir, mode);
    await volume.update(files);
    return volume;
  }

  /** The timestamped directory `..data` leads to now. */
  async current(): Promise<string> {
    return readlink(join(this.dir, '..data'));
  }

  /** A new version of the whole volume, swapped in as the kubelet does. */
  async update(files: VolumeFiles): Promise<void> {
    const previous = this.version;
    const version = await this.writeVersion(files);
    await symlink(version, join(this.dir, '..data_tmp'));
    await rename(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    this.version = version;
    const visible = new Set((await readdir(this.dir)).filter((name) => !name.startsWith('..')));
    for (const name of Object.keys(files)) {
      if (!visible.has(name)) await symlink(join('..data', name), join(this.dir, name));
    }
    for (const name of visible) {
      if (!(name in files)) await rm(join(this.dir, name));
    }
    if (previous !== undefined) await rm(join(this.dir, previous), { recursive: true });
  }

  /** The files in a new `..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN` directory; its name. */
  private async writeVersion(files: VolumeFiles): Promise<string> {
    const now = new Date();
    const two = (n: number) => String(n).padStart(2, '0');
    const stamp = `${now.getUTCFullYear()}_${two(now.getUTCMonth() + 1)}_${two(now.getUTCDate())}_${two(now.getUTCHours())}_${two(now.getUTCMinutes())}_${two(now.getUTCSeconds())}`;
    const name = `..${stamp}.${String(randomInt(1e9)).padStart(9, '0')}`;
    const directory = join(this.dir, name);
    await mkdir(directory, { mode: 0o755 });
    for (const [file, text] of Object.entries(files)) {
      await writeFile(join(directory, file), text, { mode: this.mode });
      await chmod(join(directory, file), this.mode); // the umask does not narrow defaultMode
    }
    return name;
  }
}
