import { afterEach, describe, expect, test } from 'vitest';
import { resolveUpConfig } from './config.js';

describe('keelson up configuration: web ports, proxy address, trusted proxies', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  test('defaults: 80/443 on 127.0.0.1, no trusted proxy', () => {
    const c = resolveUpConfig({ repo: '/tmp/ops', stateDir: '/tmp/keelson-config-test-none' });
    expect(c).toMatchObject({ httpPort: 80, httpsPort: 443, proxyListenHost: '127.0.0.1', trustedProxies: [] });
  });

  test('flags override KEELSON_* variables; a bad port is refused with the flag name', () => {
    process.env.KEELSON_HTTP_PORT = '8080';
    process.env.KEELSON_HTTPS_PORT = '8443';
    process.env.KEELSON_TRUSTED_PROXIES = '10.0.0.1, 10.0.0.2';
    const c = resolveUpConfig({ repo: '/tmp/ops', stateDir: '/tmp/keelson-config-test-none', httpsPort: '9443' });
    expect(c).toMatchObject({ httpPort: 8080, httpsPort: 9443, trustedProxies: ['10.0.0.1', '10.0.0.2'] });
    expect(() => resolveUpConfig({ repo: '/tmp/ops', stateDir: '/tmp/keelson-config-test-none', httpPort: '70000' })).toThrow(/--http-port must be a port number/);
  });
});
