// Whether an address is on this machine only: what `admin.listen` must stay on for a plan not to
// mark it as weakening, and what serve warns about at start.
import { isIP } from 'node:net';

/** `localhost`, ::1 or 127.0.0.0/8 (a name like 127.x.example is not). */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const address = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(address) === 6) return address === '::1' || /^::ffff:127\./i.test(address);
  return isIP(address) === 4 && address.startsWith('127.');
}
