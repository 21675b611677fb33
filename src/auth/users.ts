// The user directory: addresses of record with digest credentials, kept in the store so that the
// `herald user` commands (another process) and a running Herald see the same users at once. Plain
// passwords are never stored: only HA1 = H(username:realm:password) for MD5 and SHA-256 (RFC 8760).
import { createHash } from 'node:crypto';
import type { Collection } from '../store/store.js';
import { aorOf } from '../formats/uri.js';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

export interface UserRecord {
  aor: string;
  /** Digest username: the user part of the address of record. */
  username: string;
  /** Digest realm: the domain of the address of record. */
  realm: string;
  ha1: Record<DigestAlgorithm, string>;
  createdAt: number;
}

export function hashHex(algorithm: DigestAlgorithm, s: string): string {
  return createHash(algorithm === 'MD5' ? 'md5' : 'sha256').update(s, 'utf8').digest('hex');
}

export class UserError extends Error {}

export class UserDirectory {
  constructor(private readonly store: Collection<UserRecord>) {}

  static normalize(aor: string): { aor: string; username: string; realm: string } {
    const a = aorOf(aor);
    if (!a) throw new UserError(`not a SIP address of record: ${aor}`);
    const at = a.lastIndexOf('@');
    return { aor: a, username: a.slice(a.indexOf(':') + 1, at), realm: a.slice(at + 1) };
  }

  async add(aor: string, password: string): Promise<UserRecord> {
    if (password.length === 0) throw new UserError('the password must not be empty');
    const n = UserDirectory.normalize(aor);
    const rec: UserRecord = {
      ...n,
      ha1: {
        MD5: hashHex('MD5', `${n.username}:${n.realm}:${password}`),
        'SHA-256': hashHex('SHA-256', `${n.username}:${n.realm}:${password}`),
      },
      createdAt: Date.now(),
    };
    await this.store.put(n.aor, rec);
    return rec;
  }

  async remove(aor: string): Promise<boolean> {
    const n = UserDirectory.normalize(aor);
    const had = (await this.store.get(n.aor)) !== undefined;
    await this.store.delete(n.aor);
    return had;
  }

  /** Read from the store every time: a user added by the CLI counts at once. */
  get(aor: string): Promise<UserRecord | undefined> {
    return this.store.get(UserDirectory.normalize(aor).aor);
  }

  /** The user a digest username and realm name (the address of record sip:username@realm). */
  byCredentials(username: string, realm: string): Promise<UserRecord | undefined> {
    if (!/^[^\s@:;<>"]+$/.test(username) || !/^[a-z0-9.-]+$/i.test(realm)) return Promise.resolve(undefined);
    return this.store.get(`sip:${username}@${realm.toLowerCase()}`);
  }

  async list(): Promise<UserRecord[]> {
    return (await this.store.all()).map(([, v]) => v).sort((a, b) => a.aor.localeCompare(b.aor));
  }
}
