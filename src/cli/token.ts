import { ExitError } from '../core/errors.js';
import { generateToken, hashToken, roles, type Role } from '../api/auth.js';
import { parse } from './args.js';

/**
 * `keelson token create --name N --role R`: prints a new random token once, and the line for the tokens file
 * (which holds only its sha256). `keelson token hash`: the sha256 of a token read from stdin.
 */
export async function token(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'create') {
    const { values } = parse(rest, { name: { type: 'string' }, role: { type: 'string' } });
    if (!values.name) throw new ExitError(2, 'keelson token create needs --name (who holds the token; shown in the audit log)');
    const role = (values.role ?? 'viewer') as Role;
    if (!roles.includes(role)) throw new ExitError(2, `--role must be one of ${roles.join(', ')}`);
    const t = generateToken();
    console.log(`token (shown once; give it to ${values.name}): ${t}`);
    console.log('add to the tokens file (--tokens-file):');
    console.log(`  - { name: ${JSON.stringify(values.name)}, role: ${role}, sha256: ${hashToken(t)} }`);
    return;
  }
  if (sub === 'hash') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    const t = Buffer.concat(chunks).toString('utf8').trim();
    if (!t) throw new ExitError(2, 'keelson token hash reads the token from stdin');
    console.log(hashToken(t));
    return;
  }
  throw new ExitError(2, 'usage: keelson token create --name N [--role viewer|operator|admin] | keelson token hash < token');
}
