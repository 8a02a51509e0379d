import { expect, it } from 'vitest';
import { formatTestReport } from './helm-test.js';

it('keelson test prints each test with its log, then the verdict', () => {
  expect(
    formatTestReport({
      ok: false,
      message: 'helm test: Job/shop/web-db failed',
      tests: [
        { key: 'Job/shop/web-http', name: 'web-http', result: 'passed', message: 'succeeded', log: 'GET / 200\n' },
        { key: 'Job/shop/web-db', name: 'web-db', result: 'failed', message: 'failed', log: 'connection refused\n' },
      ],
    }),
  ).toBe(['PASSED  Job/shop/web-http  succeeded', '    GET / 200', 'FAILED  Job/shop/web-db  failed', '    connection refused', 'helm test: Job/shop/web-db failed'].join('\n'));
  expect(formatTestReport({ ok: true, message: 'the chart has no test hooks (helm.sh/hook: test)', tests: [] })).toBe('the chart has no test hooks (helm.sh/hook: test)');
});
