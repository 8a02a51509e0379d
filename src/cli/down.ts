import { resolve, join } from 'node:path';
import { Store } from '../store/store.js';
import { isSameProcess, processStartTime, signalGroup } from '../targets/local/process.js';
import { ProxyClient } from '../targets/local/proxy/client.js';
import { parse } from './args.js';

/** `keelson down`: stops every supervised app and the proxy, and forgets the live state (the next `up` deploys afresh). */
export async function down(argv: string[]): Promise<void> {
  const { values } = parse(argv, { 'state-dir': { type: 'string' } });
  const stateDir = resolve(values['state-dir'] ?? process.env.KEELSON_STATE_DIR ?? '.keelson');
  const store = new Store(stateDir);
  const rows = store.replicas().filter((r) => isSameProcess(r.pid, r.startTime));
  for (const r of rows) signalGroup(r.pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (rows.some((r) => processStartTime(r.pid) === r.startTime) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const r of rows) if (processStartTime(r.pid) === r.startTime) signalGroup(r.pid, 'SIGKILL');
  const proxy = await new ProxyClient(join(stateDir, 'proxy.sock')).health().catch(() => undefined);
  if (proxy) process.kill(proxy.pid, 'SIGTERM');
  store.db.exec('delete from replicas; delete from inventory; delete from failures;');
  store.close();
  console.log(`stopped ${rows.length} replica(s)${proxy ? ' and the proxy' : ''}`);
}
