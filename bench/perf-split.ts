// Where a server's CPU goes, from a Linux perf recording (CPU time, unlike the V8 profiles of
// BENCH_PROFILE, which count wall time and so also the time a busy machine ran someone else):
// samples by thread (the main thread, or the others: libuv's file system pool, V8's compiler
// and GC helpers) and by category (OpenSSL's handshake, other OpenSSL, JavaScript, the kernel by
// system call), per message when told how many there were.
//
// BENCH_NODE_ARGS=--perf-basic-prof-only-functions node --import tsx bench/smtp.ts ... &
// perf record -F 999 -e cpu-clock -g -p <server pid> -o perf.data -- sleep 7
// node --import tsx bench/perf-split.ts perf.data <server pid> [messages in those 7 s]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The first rule whose pattern is on a sample's stack names its category. */
const RULES: [string, RegExp][] = [
  ['getPeerCertificate', /GetPeerCert|X509ToObject|AddIssuerChainToObject|GetLastIssuedCert/],
  ['X509Certificate', /X509Certificate::/],
  [
    'TLS handshake (OpenSSL)',
    /SSL_do_handshake|ossl_statem|tls_process_|tls_construct_|tls13_|state_machine|SSL_accept/,
  ],
  ['TLS records', /SSL_read|SSL_write|ssl3_read|ssl3_write|tls_write_records/],
  [
    'other OpenSSL',
    /ossl_|EVP_|OPENSSL_|ecp_nistz|BN_|RAND_|sha256|x25519|asn1|ASN1|X509_|CRYPTO_/,
  ],
  ['GC', /Heap::|Scavenger|MarkCompact|ConcurrentMarking|Sweeper/],
  ['V8 compiler', /compiler::|OptimizingCompileDispatcher|Compile/],
];

export function categorize(stack: string[]): string {
  const text = stack.join('\n');
  const leaf = stack[0] ?? '';
  const rule = RULES.find(([, pattern]) => pattern.test(text))?.[0];
  if (leaf.includes('[kernel.kallsyms]')) {
    const call = /__x64_sys_(\w+)/.exec(text)?.[1];
    const kernel =
      call !== undefined
        ? `kernel ${call}`
        : /softirq|net_rx|tcp_/.test(text)
          ? 'kernel network'
          : 'kernel other';
    return rule === undefined || rule === 'GC' || rule === 'V8 compiler'
      ? kernel
      : `${rule} > ${kernel}`;
  }
  if (rule !== undefined) return rule;
  if (/JS:|Builtins_|v8::/.test(leaf)) return 'JavaScript and V8';
  // Unwinding often stops at libc (malloc under OpenSSL, mostly, in a handshake).
  return leaf.includes('libc.so') ? 'libc (malloc, locks)' : 'Node and libuv';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [data, pid, messagesArg] = process.argv.slice(2);
  if (data === undefined || pid === undefined)
    throw new Error('usage: perf-split.ts <perf.data> <pid> [messages]');
  const script = execFileSync('perf', ['script', '-i', data, '-F', 'pid,tid,ip,sym,dso'], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const counts = new Map<string, number>();
  let total = 0;
  for (const sample of script.split('\n\n')) {
    const [head, ...frames] = sample.trim().split('\n');
    const [samplePid, tid] = (head ?? '').trim().split(/[\s/]+/);
    if (samplePid !== pid) continue;
    total += 1;
    const key = `${tid === pid ? 'main' : 'other threads'}: ${categorize(frames.map((frame) => frame.trim()))}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const messages = Number(messagesArg ?? 0);
  console.log(`${total} samples of process ${pid}${messages > 0 ? `, ${messages} messages` : ''}`);
  for (const [key, count] of [...counts].sort((a, b) => b[1] - a[1])) {
    // perf record -F 999: a sample is about 1 ms of CPU.
    const perMessage =
      messages > 0 ? `${((1000 * count) / messages).toFixed(0).padStart(6)} µs/msg` : '';
    console.log(
      `${String(count).padStart(6)} ${((100 * count) / total).toFixed(1).padStart(5)}% ${perMessage}  ${key}`,
    );
  }
}
