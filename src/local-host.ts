import { isIP } from 'node:net';

/**
 * Whether a request's Host header names this machine by a loopback name: localhost, a
 * *.localhost name, 127.0.0.0/8 or ::1. The development token is handed out (the /demo page's
 * config, Apollo Sandbox's headers) only to such requests: a page on another site that had its own
 * name resolve to this machine (DNS rebinding) sends its own name, and a device on the network
 * sends this machine's address.
 */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d*$/, '')).toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  return isIP(name) === 6 && name === '::1';
}
