import { describe, expect, it } from 'vitest';
import { environmentOfRequest } from './peers.js';

describe('which requests are forwarded to the engine running their environment', () => {
  const none = () => undefined;
  it('environment routes and the history of one environment', () => {
    expect(environmentOfRequest('/api/v1/environments/prod/sync', none)).toBe('prod');
    expect(environmentOfRequest('/api/v1/environments/prod', none)).toBe('prod');
    expect(environmentOfRequest('/api/v1/environments/pr%2D1/apps/web/logs', none)).toBe('pr-1');
    expect(environmentOfRequest('/api/v1/history', (n) => (n === 'env' ? 'dev' : undefined))).toBe('dev');
  });
  it('not: status and matrix (merged instead), history of all, events, audit, preview, webhooks, a malformed name', () => {
    for (const path of ['/api/v1/status', '/api/v1/matrix', '/api/v1/events', '/api/v1/audit', '/api/v1/preview', '/api/v1/webhooks/git', '/metrics']) {
      expect(environmentOfRequest(path, () => 'dev'), path).toBeUndefined();
    }
    expect(environmentOfRequest('/api/v1/history', none)).toBeUndefined();
    expect(environmentOfRequest('/api/v1/environments/%E0%A4%A/plan', none)).toBeUndefined();
  });
});
