// Local delivery into Maildirs (<root>/<domain>/<localpart>/{tmp,new,cur}): the message is written
// to tmp/, fsync'ed, renamed into new/ under a unique name and new/ fsync'ed, so a reader never
// sees half a message and a delivered one survives a crash (https://cr.yp.to/proto/maildir.html).
// A body stored on disk is copied a chunk at a time, never read whole.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { DeliverLocal } from '../queue/dispatcher.js';
import {
  contentSize,
  messageContent,
  readStoredBody,
  type MessageContent,
} from '../queue/message-body.js';
import { failAll, type DeliveryOutcome, type RecipientFailure } from '../queue/outcome.js';
import { REPLIES } from '../replies.js';
import { withDetail } from '../../smtp-reply.js';
import { DirectorySyncs } from '../queue/directory-syncs.js';
import { parseAddress } from '../../domain-name.js';

let deliveries = 0;

/** Mailboxes whose tmp/, new/ and cur/ this process made or found (three mkdirs saved per copy). */
const createdMailboxes = new Set<string>();
const MAX_REMEMBERED_MAILBOXES = 10_000;

async function createMailbox(mailbox: string): Promise<void> {
  for (const sub of ['tmp', 'new', 'cur'])
    await mkdir(join(mailbox, sub), { recursive: true, mode: 0o700 });
  if (createdMailboxes.size >= MAX_REMEMBERED_MAILBOXES) createdMailboxes.clear();
  createdMailboxes.add(mailbox);
}

/** The host part of our unique names: "/" and ":" cannot appear there (the spec's \057, \072). */
const HOST = hostname().replace(/\//g, '\\057').replace(/:/g, '\\072');

/** Maildir's unique name: time, microseconds, pid, a counter and randomness, then the host. */
function uniqueName(size: number): string {
  const now = process.hrtime.bigint();
  const seconds = Math.floor(Date.now() / 1000);
  const micro = Number((now / 1000n) % 1_000_000n);
  deliveries += 1;
  return `${seconds}.M${micro}P${process.pid}Q${deliveries}R${randomBytes(4).toString('hex')}.${HOST},S=${size}`;
}

/**
 * A mailbox directory name from a local part: lower case, and every byte but letters, digits and
 * ._+=- percent-encoded, so no address can reach outside its domain's directory ("..", "/").
 */
export function mailboxName(localPart: string): string {
  let name = '';
  // eslint-disable-next-line no-restricted-syntax -- a local part, for its mailbox folder
  for (const byte of Buffer.from(localPart.toLowerCase(), 'utf8')) {
    const ch = String.fromCharCode(byte);
    name +=
      byte < 0x80 && /[a-z0-9._+=-]/.test(ch)
        ? ch
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  // A leading dot would make a hidden directory, or "." / "..".
  return name.startsWith('.') ? `%2E${name.slice(1)}` : name;
}

export class Maildir {
  constructor(
    readonly root: string,
    /** Shared by the deliveries of one local delivery, so that their fsyncs of new/ group. */
    private readonly syncs = new DirectorySyncs(),
  ) {}

  /** The Maildir of one address; created on first delivery (a catch-all store for now). */
  pathFor(address: string): string {
    // The canonical domain is letters, digits, '-' and inner dots: no path can come of it.
    const parsed = parseAddress(address);
    if (!parsed.ok || parsed.address === undefined || parsed.address.localPart === '') {
      throw new RangeError(`not a deliverable address: ${JSON.stringify(address)}`);
    }
    return join(this.root, parsed.address.domain, mailboxName(parsed.address.localPart));
  }

  /** Delivers one copy; resolves with the file's path in new/ once it is durable. */
  async deliver(address: string, body: MessageContent): Promise<string> {
    const mailbox = this.pathFor(address);
    const name = uniqueName(contentSize(body));
    const temporary = join(mailbox, 'tmp', name);
    let handle: FileHandle;
    try {
      if (!createdMailboxes.has(mailbox)) await createMailbox(mailbox);
      handle = await open(temporary, 'wx', 0o600);
    } catch (error) {
      // Removed behind our back since we made it: make it again, once.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await createMailbox(mailbox);
      handle = await open(temporary, 'wx', 0o600);
    }
    try {
      await writeContent(handle, body);
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(temporary, { force: true });
      throw error;
    }
    await handle.close();
    const target = join(mailbox, 'new', name);
    try {
      await rename(temporary, target);
    } catch (error) {
      createdMailboxes.delete(mailbox); // new/ may be gone: the next attempt makes it again
      await rm(temporary, { force: true });
      throw error;
    }
    await this.syncs.sync(join(mailbox, 'new'));
    return target;
  }
}

/** The body into a new file: at once from memory, a chunk at a time from the store. */
async function writeContent(handle: FileHandle, body: MessageContent): Promise<void> {
  if (Buffer.isBuffer(body)) {
    await handle.writeFile(body);
    return;
  }
  let position = 0;
  for await (const chunk of readStoredBody(body) as AsyncIterable<Buffer>) {
    for (let offset = 0; offset < chunk.length;) {
      const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset, position);
      offset += bytesWritten;
      position += bytesWritten;
    }
  }
  if (position !== body.size)
    throw new Error(`the queued body has ${position} bytes, its record says ${body.size}`);
}

/** Our unique names: the writer's pid, and the host it ran on. */
const OUR_NAME = /^\d+\.M\d+P(\d+)Q\d+R[0-9a-f]+\.(.+),S=\d+$/;

/** Whether a process is still there (kill with signal 0 only asks). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Removes the tmp/ files an engine killed in mid-delivery left: only names this host's engines
 * give, and only of a process that is gone (another engine on the same Maildirs keeps its own).
 * Their messages are still queued and delivered again; Maildir readers would remove such files
 * after 36 hours anyway. Resolves with how many it removed.
 */
export async function sweepTemporaryFiles(root: string): Promise<number> {
  const gone = new Map<number, boolean>();
  let removed = 0;
  const list = (path: string) => readdir(path).catch(() => [] as string[]);
  for (const domain of await list(root)) {
    for (const mailbox of await list(join(root, domain))) {
      const temporary = join(root, domain, mailbox, 'tmp');
      for (const name of await list(temporary)) {
        const match = OUR_NAME.exec(name);
        if (match === null || match[2] !== HOST) continue;
        const pid = Number(match[1]);
        if (pid === process.pid) continue;
        if (!gone.has(pid)) gone.set(pid, !alive(pid));
        if (gone.get(pid) !== true) continue;
        await rm(join(temporary, name), { force: true });
        removed += 1;
      }
    }
  }
  return removed;
}

export interface LocalDeliveryOptions {
  /** A relative Maildir root (the Organization's delivery.maildir) is taken from here. */
  stateDir: string;
}

/** The root of the mailboxes: delivery.maildir resolved against the state dir. */
export function maildirRoot(configured: string, stateDir: string): string {
  return isAbsolute(configured) ? configured : resolve(stateDir, configured);
}

/** Local delivery as the dispatcher calls it: each recipient's copy, failures kept per recipient. */
export function createLocalDelivery(options: LocalDeliveryOptions): DeliverLocal {
  const syncs = new DirectorySyncs();
  return async (message, generation): Promise<DeliveryOutcome> => {
    const configured = generation.config.organization.spec.delivery.maildir;
    if (configured === undefined) {
      return failAll(message, withDetail(REPLIES.localError, 'no Maildir configured'), false);
    }
    const maildir = new Maildir(maildirRoot(configured, options.stateDir), syncs);
    const body = await messageContent(message);
    const delivered: string[] = [];
    const failures: RecipientFailure[] = [];
    for (const recipient of message.recipients) {
      try {
        await maildir.deliver(recipient, body);
        delivered.push(recipient);
      } catch (error) {
        const failure = error as NodeJS.ErrnoException;
        const permanent = failure instanceof RangeError;
        failures.push({
          recipient,
          permanent,
          reply: permanent
            ? withDetail(REPLIES.badMailbox, failure.message)
            : withDetail(REPLIES.localError, `mailbox: ${failure.code ?? failure.message}`),
        });
      }
    }
    return { delivered, failures };
  };
}
