// The secret that binds digest nonces to this server. Kept in the store, so nonces stay valid across a
// restart and across nodes sharing one Redis.
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/store.js';

export async function nonceSecret(store: Store): Promise<Buffer> {
  const meta = store.collection<string>('meta');
  const have = await meta.get('nonce-secret');
  if (have) return Buffer.from(have, 'base64');
  const fresh = randomBytes(32);
  await meta.put('nonce-secret', fresh.toString('base64'));
  return fresh;
}
