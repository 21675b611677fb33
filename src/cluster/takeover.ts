// Takeover: when a node dies, the survivors share its dialogs out (atomic batches in Redis, lease.ts)
// and each hands every dialog it won to the module that serves that kind: the notifier ("sub:"), the
// B2BUA's subscriber ("up:"), the XMPP component ("xmpp:"). After a lost lease (nodes.ts) each kind is
// told which of its dialogs this node still owns, and drops the others without a word.
import type { Logger } from 'pino';
import type { DialogLeases } from './lease.js';

export interface OwnedKind {
  /**
   * A dialog of this kind is now this node's: load it from the shared store and go on with it.
   * `cseq`: the highest CSeq any owner reserved in it (the next request goes above).
   */
  adopt(id: string, cseq: number): Promise<void>;
  /** After a lost lease: keep only the dialogs `stillOwned` says are this node's; drop the rest silently. */
  reconcile(stillOwned: (id: string) => boolean): void;
}

/** How many dialogs one takeover step moves (one Redis script; several survivors share the rest). */
const BATCH = 100;

export class Takeover {
  private readonly kinds = new Map<string, OwnedKind>();
  /** Dialogs adopted here, for the tests and the log. */
  adopted = 0;

  constructor(
    private readonly leases: DialogLeases,
    private readonly log: Logger,
  ) {
    leases.nodes.onDead((id) => this.takeOver(id));
    leases.nodes.onRejoin(() => this.reconcile());
  }

  /** A kind's handler; its dialogs are named "<kind>:<id>" in Redis. */
  register(kind: string, handler: OwnedKind): void {
    this.kinds.set(kind, handler);
  }

  /** The name of a dialog of a kind in Redis. */
  static dialog(kind: string, id: string): string {
    return `${kind}:${id}`;
  }

  private async takeOver(dead: string): Promise<void> {
    let taken = 0;
    for (;;) {
      const batch = await this.leases.takeover(dead, BATCH);
      if (!batch || batch.length === 0) break;
      for (const { dialog, cseq } of batch) {
        const at = dialog.indexOf(':');
        const handler = this.kinds.get(dialog.slice(0, at));
        if (!handler) {
          // A kind this node does not run (e.g. the XMPP gateway off here): give it back unowned.
          await this.leases.release(dialog);
          continue;
        }
        try {
          await handler.adopt(dialog.slice(at + 1), cseq);
          taken++;
        } catch (e) {
          this.log.warn({ err: (e as Error).message, dialog }, 'cluster: a taken-over dialog could not be restored');
        }
      }
    }
    this.adopted += taken;
    if (taken > 0) this.log.info({ dead, dialogs: taken, node: this.leases.nodeId }, 'cluster: took over the dialogs of a dead node');
  }

  private async reconcile(): Promise<void> {
    const owned = await this.leases.ownedHere();
    for (const [kind, handler] of this.kinds) handler.reconcile((id) => owned.has(Takeover.dialog(kind, id)));
  }
}
