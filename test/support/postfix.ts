// A private, throwaway Postfix (the Debian package) for interop tests and the bench: its own
// config, queue and data directories under a temp dir, listeners on 127.0.0.1 only, a foreground
// master(8) that this process starts and stops; the machine's own Postfix is never touched.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  access,
  chmod,
  chown,
  constants,
  mkdir,
  readdir,
  readFile,
  rm,
  writeFile,
} from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { eventually, WaitTimedOut } from './eventually.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';

/** A certificate with its key (PEM), as the lab PKI issues them. */
export interface PostfixIdentity {
  certPem: string;
  keyPem: string;
}

/** An smtpd listener on 127.0.0.1:<free port>. */
export interface PostfixListener {
  /**
   * `mutual`: STARTTLS mandatory and a client certificate required and verified against
   * `clientCa` (smtpd_tls_security_level = encrypt, smtpd_tls_req_ccert = yes);
   * `server`: STARTTLS mandatory with the server's certificate, no client certificate asked
   * (an ordinary MX host, as DANE and MTA-STS senders meet them);
   * `none`: no STARTTLS at all (plaintext; also where a test injects mail).
   */
  tls: 'mutual' | 'server' | 'none';
  /** The server certificate of a TLS listener; default: the instance's `certificate`. */
  certificate?: PostfixIdentity;
}

/** Mail for `recipients` (a domain, or one address) goes to host:port with mandatory, verified TLS. */
export interface PostfixRoute {
  recipients: string;
  host: string;
  port: number;
  /** The CA that must sign the server's certificate (smtp_tls_CAfile). */
  serverCa: string;
  /** A name the server's certificate must carry (smtp_tls_secure_cert_match). */
  serverName: string;
  /** The client certificate presented; default: the instance's `certificate`; null: none. */
  certificate?: PostfixIdentity | null;
}

export interface PostfixOptions {
  /** myhostname: the greeting and EHLO name. */
  hostname: string;
  /** Mail for these domains is delivered by virtual(8) into one Maildir the caller reads. */
  mailboxDomains: string[];
  /** The instance's certificate: its server certificate and its client certificate. */
  certificate: PostfixIdentity;
  /** The CA that must sign client certificates on `mutual` listeners (smtpd_tls_CAfile). */
  clientCa: string;
  listeners: Record<string, PostfixListener>;
  routes?: PostfixRoute[];
  /** More main.cf settings, written last. */
  settings?: Record<string, string>;
  /** The master exits by itself after this long (master -e), should this process die first. */
  lifetimeSeconds?: number;
}

/** One message of `postqueue -j`. */
export interface PostfixQueued {
  queue_name: string;
  queue_id: string;
  sender: string;
  recipients: { address: string; delay_reason?: string }[];
}

export interface Postfix {
  /** The port of each listener, by name. */
  ports: Record<string, number>;
  /** config_directory (main.cf, master.cf). */
  configDir: string;
  /** The Maildir mail for `mailboxDomains` lands in. */
  maildir: string;
  /** The messages delivered so far (whole files, as virtual(8) wrote them). */
  delivered(): Promise<string[]>;
  /** `postqueue -j`: what is queued (incoming, active, deferred, hold). */
  queue(): Promise<PostfixQueued[]>;
  /** `postqueue -f`: attempt every deferred message now. */
  flush(): Promise<void>;
  /** The instance's mail log (maillog_file). */
  log(): Promise<string>;
  /** CPU time (µs) of the master and every process it started, running or reaped (Linux /proc). */
  cpu(): Promise<{ user: number; system: number }>;
  /** Stops the master (and its children) and removes every file of the instance. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

interface Programs {
  postconf: string;
  postfix: string;
  postqueue: string;
  master: string;
}

function run(file: string, args: string[], timeout = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout }, (error, stdout, stderr) => {
      if (error !== null) {
        const failure = error as NodeJS.ErrnoException;
        reject(
          failure.code === 'ENOENT'
            ? notInstalled()
            : new Error(`${file} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`),
        );
        return;
      }
      resolve(stdout);
    });
  });
}

function notInstalled(): Error {
  return new Error(
    'postfix is not installed: DEBIAN_FRONTEND=noninteractive apt-get install -y postfix ' +
      '(with debconf "postfix/main_mailer_type select No configuration"); the interop tests and ' +
      'bench/smtp.ts need it',
  );
}

/** Where the Postfix programs are: postconf knows the rest. */
async function programs(configDir: string): Promise<Programs> {
  const postconf = await findPostconf();
  if (postconf === undefined) throw notInstalled();
  const lines = await run(postconf, [
    '-c',
    configDir,
    '-h',
    'command_directory',
    'daemon_directory',
  ]);
  const [commands, daemons] = lines.trim().split('\n');
  if (commands === undefined || daemons === undefined) throw notInstalled();
  return {
    postconf,
    postfix: join(commands, 'postfix'),
    postqueue: join(commands, 'postqueue'),
    master: join(daemons, 'master'),
  };
}

/** The postconf program: on the PATH, or in /usr/sbin where Debian puts it. */
async function findPostconf(): Promise<string | undefined> {
  const path = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of path.filter((entry) => entry !== '')) {
    try {
      await access(join(dir, 'postconf'), constants.X_OK);
      return join(dir, 'postconf');
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** Whether Postfix is on this machine (bench/smtp.ts runs it only then). */
export async function postfixInstalled(): Promise<boolean> {
  return (await findPostconf()) !== undefined;
}

/** uid and gid of an account from /etc/passwd (Node has no getpwnam). */
async function account(name: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error(`no account ${name} in /etc/passwd (Postfix delivers mail as it)`);
}

/** A main.cf/master.cf value on one line: Postfix reads it verbatim. */
function setting(name: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new Error(`${name}: a Postfix setting fits on one line`);
  return `${name} = ${value}`;
}

/** Resolves once host:port greets with 220, failing after the bound. */
async function greeted(port: number, deadline: number): Promise<void> {
  await eventually(`postfix to greet on 127.0.0.1:${port}`, () => greets(port), {
    timeoutMs: Math.max(0, deadline - Date.now()),
    intervalMs: 100,
  });
}

/** Whether Postfix answers 220 on the port now. */
function greets(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buffer = '';
    const done = (value: boolean) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      if (buffer.includes('\n')) {
        socket.end('QUIT\r\n');
        done(buffer.startsWith('220'));
      }
    });
  });
}

export async function startPostfix(options: PostfixOptions): Promise<Postfix> {
  if ((await findPostconf()) === undefined) throw notInstalled();
  if (process.getuid?.() !== 0) {
    throw new Error(
      'a private Postfix instance needs root (its master runs as root, like any Postfix)',
    );
  }
  const temp = await tempDir('domsec-postfix-');
  // Postfix daemons run as the mail_owner: they must be able to walk down to the queue.
  await chmod(temp.path, 0o755);
  if (/\s/.test(temp.path)) {
    await rm(temp.path, { recursive: true, force: true });
    throw new Error(`master.cf options cannot hold a path with white space: ${temp.path}`);
  }
  const configDir = join(temp.path, 'etc');
  const tlsDir = join(configDir, 'tls');
  const queueDir = join(temp.path, 'spool');
  const dataDir = join(temp.path, 'data');
  const mailBase = join(temp.path, 'mail');
  const maildir = join(mailBase, 'mailbox');
  const logFile = join(temp.path, 'maillog');
  const ports: Record<string, number> = {};
  let master: ChildProcess | undefined;
  let postqueue = '';

  try {
    await mkdir(tlsDir, { recursive: true, mode: 0o700 });
    await mkdir(queueDir, { mode: 0o755 });
    await mkdir(dataDir, { mode: 0o700 });
    await mkdir(mailBase, { mode: 0o700 });
    // Mail is delivered as nobody; root (the test) reads it.
    const nobody = await account('nobody');
    await chown(mailBase, nobody.uid, nobody.gid);
    const owner = await account('postfix').catch(() => {
      throw notInstalled();
    });
    await chown(dataDir, owner.uid, owner.gid);

    let files = 0;
    const pem = async (name: string, content: string, mode = 0o644): Promise<string> => {
      files += 1;
      const path = join(tlsDir, `${files}-${name}.pem`);
      await writeFile(path, content, { mode });
      return path;
    };
    const identity = async (name: string, id: PostfixIdentity) => ({
      cert: await pem(`${name}-cert`, id.certPem),
      key: await pem(`${name}-key`, id.keyPem, 0o600),
    });
    const own = await identity('server', options.certificate);
    const clientCa = await pem('client-ca', options.clientCa);

    const services: string[] = [];
    for (const [name, listener] of Object.entries(options.listeners)) {
      const port = await freePort();
      ports[name] = port;
      const flags = [`-o syslog_name=postfix/${name}`];
      if (listener.tls === 'mutual') {
        const id =
          listener.certificate === undefined ? own : await identity(name, listener.certificate);
        flags.push(
          '-o smtpd_tls_security_level=encrypt',
          '-o smtpd_tls_ask_ccert=yes',
          '-o smtpd_tls_req_ccert=yes',
          `-o smtpd_tls_cert_file=${id.cert}`,
          `-o smtpd_tls_key_file=${id.key}`,
          `-o smtpd_tls_CAfile=${clientCa}`,
        );
      } else if (listener.tls === 'server') {
        const id =
          listener.certificate === undefined ? own : await identity(name, listener.certificate);
        flags.push(
          '-o smtpd_tls_security_level=encrypt',
          '-o smtpd_tls_ask_ccert=no',
          `-o smtpd_tls_cert_file=${id.cert}`,
          `-o smtpd_tls_key_file=${id.key}`,
        );
      } else {
        flags.push('-o smtpd_tls_security_level=none');
      }
      services.push(`127.0.0.1:${port} inet n - n - - smtpd\n  ${flags.join('\n  ')}`);
    }

    const transports: string[] = [];
    const routes: string[] = [];
    for (const [index, route] of (options.routes ?? []).entries()) {
      const name = `route${index}`;
      const serverCa = await pem(`${name}-server-ca`, route.serverCa);
      const flags = [
        `-o syslog_name=postfix/${name}`,
        '-o smtp_tls_security_level=secure',
        `-o smtp_tls_CAfile=${serverCa}`,
        `-o smtp_tls_secure_cert_match=${route.serverName}`,
      ];
      const id =
        route.certificate === undefined
          ? own
          : route.certificate === null
            ? null
            : await identity(`${name}-client`, route.certificate);
      if (id !== null) {
        flags.push(`-o smtp_tls_cert_file=${id.cert}`, `-o smtp_tls_key_file=${id.key}`);
      }
      services.push(`${name} unix - - n - - smtp\n  ${flags.join('\n  ')}`);
      transports.push(`${route.recipients}=${name}:[${route.host}]:${route.port}`);
      routes.push(route.recipients);
    }

    const main: Record<string, string> = {
      compatibility_level: '3.6',
      config_directory: configDir,
      queue_directory: queueDir,
      data_directory: dataDir,
      myhostname: options.hostname,
      mydomain: options.hostname.split('.').slice(1).join('.'),
      myorigin: '$myhostname',
      mydestination: '',
      inet_interfaces: '127.0.0.1',
      inet_protocols: 'ipv4',
      mynetworks: '127.0.0.0/8',
      maillog_file: logFile,
      maillog_file_prefixes: temp.path,
      // Never the network: no DNS, routes are literal IP addresses.
      smtp_dns_support_level: 'disabled',
      smtp_host_lookup: 'native',
      lmtp_host_lookup: 'native',
      smtpd_peername_lookup: 'no',
      biff: 'no',
      alias_maps: '',
      alias_database: '',
      local_recipient_maps: '',
      local_transport: 'error:5.1.1 no local delivery here',
      smtputf8_enable: 'no',
      // A deferred message stays deferred until the test flushes it.
      queue_run_delay: '1h',
      minimal_backoff_time: '1h',
      maximal_backoff_time: '2h',
      relay_domains: routes.filter((r) => !r.includes('@')).join(' '),
      transport_maps: transports.length === 0 ? '' : `inline:{${transports.join(', ')}}`,
      virtual_mailbox_domains: options.mailboxDomains.join(' '),
      virtual_mailbox_base: mailBase,
      virtual_mailbox_maps: 'static:mailbox/',
      virtual_minimum_uid: '1',
      virtual_uid_maps: `static:${nobody.uid}`,
      virtual_gid_maps: `static:${nobody.gid}`,
      smtpd_tls_cert_file: own.cert,
      smtpd_tls_key_file: own.key,
      smtpd_tls_CAfile: clientCa,
      smtpd_tls_received_header: 'yes',
      smtpd_tls_loglevel: '1',
      smtp_tls_loglevel: '1',
      ...options.settings,
    };
    const writeMain = (settings: Record<string, string>) =>
      writeFile(
        join(configDir, 'main.cf'),
        `${Object.entries(settings)
          .map(([name, value]) => setting(name, value))
          .join('\n')}\n`,
      );
    // Without the mail log first: postfix(1) would wait seconds for a postlogd not yet running.
    const { maillog_file: _log, ...setup } = main;
    await writeMain(setup);
    await writeFile(
      join(configDir, 'master.cf'),
      `${[
        ...services,
        // pickup: postqueue -f takes its socket as the sign that the mail system is up.
        'pickup unix n - n 60 1 pickup',
        'cleanup unix n - n - 0 cleanup',
        'qmgr unix n - n 300 1 qmgr',
        'tlsmgr unix - - n 1000? 1 tlsmgr',
        'rewrite unix - - n - - trivial-rewrite',
        'bounce unix - - n - 0 bounce',
        'defer unix - - n - 0 bounce',
        'trace unix - - n - 0 bounce',
        'verify unix - - n - 1 verify',
        'flush unix n - n 1000? 0 flush',
        'proxymap unix - - n - - proxymap',
        'showq unix n - n - - showq',
        'error unix - - n - - error',
        'retry unix - - n - - error',
        'discard unix - - n - - discard',
        'virtual unix - n n - - virtual',
        'anvil unix - - n - 1 anvil',
        'scache unix - - n - 1 scache',
        'postlog unix-dgram n - n - 1 postlogd',
      ].join('\n')}\n`,
    );

    const bin = await programs(configDir);
    postqueue = bin.postqueue;
    // Creates the queue's directories with Postfix's own owners and modes (post-install).
    await run(bin.postfix, ['-c', configDir, 'check']);
    await writeMain(main);
    // -s: the master stays in the foreground as a child of this process, in its own session.
    const lifetime = String(options.lifetimeSeconds ?? 600);
    master = spawn(bin.master, ['-c', configDir, '-s', '-e', lifetime], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MAIL_CONFIG: configDir },
    });
    let stderr = '';
    master.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<never>((_, reject) => {
      master?.once('exit', (code) =>
        reject(new Error(`postfix master exited with ${code}: ${stderr}`)),
      );
      master?.once('error', reject);
    });
    exited.catch(() => undefined);
    const deadline = Date.now() + START_TIMEOUT_MS;
    await Promise.race([
      exited,
      Promise.all(Object.values(ports).map((port) => greeted(port, deadline))),
    ]);
  } catch (error) {
    await stopMaster(master);
    const log = await readFile(logFile, 'utf8').catch(() => '');
    await rm(temp.path, { recursive: true, force: true, maxRetries: 5 });
    if (log !== '' && error instanceof Error) error.message += `\nmaillog:\n${log}`;
    throw error;
  }

  let stopped = false;
  return {
    ports,
    configDir,
    maildir,
    delivered: async () => {
      const dir = join(maildir, 'new');
      const names = await readdir(dir).catch(() => []);
      return Promise.all(names.sort().map((name) => readFile(join(dir, name), 'utf8')));
    },
    queue: async () =>
      (await run(postqueue, ['-c', configDir, '-j']))
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as PostfixQueued),
    flush: async () => {
      await run(postqueue, ['-c', configDir, '-f']);
    },
    log: () => readFile(logFile, 'utf8').catch(() => ''),
    cpu: () => sessionCpu(master?.pid ?? -1),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await stopMaster(master);
      await rm(temp.path, { recursive: true, force: true, maxRetries: 5 });
    },
  };
}

/** The processes of a session (the master calls setsid(): its daemons share its session id). */
async function sessionMembers(leader: number): Promise<{ pid: number; fields: string[] }[]> {
  const members: { pid: number; fields: string[] }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    // Fields after "(comm)": state ppid pgrp session ... utime(14) stime(15) cutime(16) cstime(17).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[3]) === leader && fields[0] !== 'Z')
      members.push({ pid: Number(name), fields });
  }
  return members;
}

async function sessionGone(leader: number, ms: number): Promise<boolean> {
  try {
    await eventually(
      `session ${leader} to end`,
      async () => (await sessionMembers(leader)).length,
      {
        timeoutMs: ms,
        until: (members) => members === 0,
      },
    );
    return true;
  } catch (error) {
    if (error instanceof WaitTimedOut) return false;
    throw error;
  }
}

/**
 * SIGTERM to the master, which passes it to its daemons; waits until every one of them is gone
 * (a daemon still writing would race the removal of the directory), SIGKILL after a bound.
 */
async function stopMaster(master: ChildProcess | undefined): Promise<void> {
  const pid = master?.pid;
  if (master === undefined || pid === undefined) return;
  if (master.exitCode === null && master.signalCode === null) master.kill('SIGTERM');
  if (await sessionGone(pid, STOP_TIMEOUT_MS)) return;
  for (const member of await sessionMembers(pid)) {
    try {
      process.kill(member.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await sessionGone(pid, 2_000);
}

let clockTicks: number | undefined;

/** CPU of a Postfix instance: its live daemons, and those the master reaped (cutime, cstime). */
async function sessionCpu(leader: number): Promise<{ user: number; system: number }> {
  clockTicks ??= Number((await run('getconf', ['CLK_TCK']).catch(() => '100')).trim()) || 100;
  let user = 0;
  let system = 0;
  for (const { pid, fields } of await sessionMembers(leader)) {
    user += Number(fields[11]);
    system += Number(fields[12]);
    if (pid === leader) {
      user += Number(fields[13]);
      system += Number(fields[14]);
    }
  }
  const micros = 1_000_000 / clockTicks;
  return { user: user * micros, system: system * micros };
}
