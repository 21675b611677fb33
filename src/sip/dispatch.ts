// Routes each new SIP request to the part of Herald that owns its method. Methods Herald knows but
// does not serve get 405 with Allow; unknown ones 501 (RFC 3261 §8.2.1).
import type { HeaderList } from './message.js';
import type { ServerTx } from './stack.js';

export type MethodHandler = (tx: ServerTx) => void | Promise<void>;

const KNOWN_UNSERVED = new Set(['INVITE', 'REGISTER', 'BYE', 'MESSAGE', 'REFER', 'INFO', 'UPDATE', 'PRACK']);

export class Dispatcher {
  private readonly handlers = new Map<string, MethodHandler>();

  constructor(private readonly common: () => HeaderList, private readonly onError: (e: unknown, tx: ServerTx) => void) {}

  on(method: string, h: MethodHandler): void {
    this.handlers.set(method, h);
  }

  get methods(): string[] {
    return [...this.handlers.keys()];
  }

  dispatch(tx: ServerTx): void {
    const h = this.handlers.get(tx.request.method);
    if (!h) {
      const known = KNOWN_UNSERVED.has(tx.request.method);
      tx.respond({ status: known ? 405 : 501, reason: known ? 'Method Not Allowed' : 'Not Implemented', headers: this.common() });
      return;
    }
    try {
      const r = h(tx);
      if (r) r.catch((e: unknown) => this.onError(e, tx));
    } catch (e) {
      this.onError(e, tx);
    }
  }
}
