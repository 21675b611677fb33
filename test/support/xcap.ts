// An XCAP client for tests: real HTTP with digest authentication, computed independently of Herald.
import { request } from 'undici';
import { digestAuthorization } from './ua.js';

export interface XcapAnswer {
  status: number;
  body: string;
  etag: string | undefined;
}

export async function xcap(method: 'GET' | 'PUT' | 'DELETE', rootUrl: string, path: string, auth: { username: string; password: string } | undefined, body?: string, contentType?: string): Promise<XcapAnswer> {
  const url = `${rootUrl}/${path}`;
  const headers: Record<string, string> = contentType ? { 'content-type': contentType } : {};
  const send = async (h: Record<string, string>) => {
    const r = await request(url, { method, headers: h, ...(body !== undefined ? { body } : {}) });
    return { status: r.statusCode, text: await r.body.text(), headers: r.headers };
  };
  let r = await send(headers);
  if (r.status === 401 && auth) {
    const challenges = ([] as string[]).concat(r.headers['www-authenticate'] ?? []);
    const md5 = challenges.find((c) => /algorithm="?MD5/i.test(c)) ?? challenges[0]!;
    const target = new URL(url);
    r = await send({ ...headers, authorization: digestAuthorization(md5, method, target.pathname + target.search, auth.username, auth.password) });
  }
  const etag = r.headers['etag'];
  return { status: r.status, body: r.text, etag: typeof etag === 'string' ? etag : undefined };
}

export const presRules = (rules: string): string => `<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules" xmlns:cr="urn:ietf:params:xml:ns:common-policy">${rules}</cr:ruleset>`;

export const rule = (id: string, ids: string[], subHandling: string, transformations = ''): string => `
  <cr:rule id="${id}">
    <cr:conditions><cr:identity>${ids.map((i) => `<cr:one id="${i}"/>`).join('')}</cr:identity></cr:conditions>
    <cr:actions><sub-handling>${subHandling}</sub-handling></cr:actions>
    <cr:transformations>${transformations}</cr:transformations>
  </cr:rule>`;

/** Transformations that show the presentity whole (RFC 5025 §3.3: without provide-* nothing is shown). */
export const SHOW_ALL =
  '<provide-services><all-services/></provide-services><provide-persons><all-persons/></provide-persons><provide-devices><all-devices/></provide-devices><provide-all-attributes/>';
