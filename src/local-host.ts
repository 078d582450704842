import { isIP } from 'node:net';

/**
 * Whether a request's Host header names this machine by a loopback name: localhost, a
 * *.localhost name, 127.0.0.0/8 or ::1. The development token is handed out (the /demo page's
 * config, Apollo Sandbox's headers) only to such requests: a page on another site that had its own
 * name resolve to this machine (DNS rebinding) sends its own name, and a device on the network
 * sends this machine's address.
 */
export function isLoopbackHost(host: string | undefined): boolean {
  // A name or an IPv4 address, or an IPv6 address in brackets; then an optional port, and nothing else.
  const match = /^(?:\[([0-9a-f:.]+)\]|([^\s:[\]/@]+))(?::\d*)?$/i.exec(host ?? '');
  if (!match) return false;
  const [, ipv6, other = ''] = match;
  if (ipv6 !== undefined) return ipv6 === '::1';
  const name = other.toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return isIP(name) === 4 && name.startsWith('127.');
}
