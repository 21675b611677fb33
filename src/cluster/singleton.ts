// A connection one node of the cluster holds at a time: the XMPP component (XEP-0114 lets one
// connection serve a component domain; a second would be refused or would replace the first). Its
// lease is a "dialog" like any other (lease.ts): the node that claims it first connects; when that
// node dies, the survivor that takes it over connects; a node that finds it lost the lease (paused
// past it) disconnects at once.
import type { Logger } from 'pino';
import type { Ownership } from './ownership.js';

export interface HeldService {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Holds `service` on whichever node owns the lease "<kind>:<id>"; resolves once this node knows whether it does. */
export async function holdSingleton(ownership: Ownership, kind: string, id: string, service: HeldService, log: Logger): Promise<void> {
  let running = false;
  const run = async (why: string): Promise<void> => {
    if (running) return;
    running = true;
    log.info({ node: ownership.nodes.nodeId, lease: `${kind}:${id}` }, `cluster: this node holds the ${kind} ${id} (${why})`);
    await service.start();
  };
  ownership.takeover.register(kind, {
    adopt: (taken) => (taken === id ? run('its holder died') : Promise.resolve()),
    reconcile: (stillOwned) => {
      if (!running || stillOwned(id)) return;
      running = false;
      log.warn({ node: ownership.nodes.nodeId, lease: `${kind}:${id}` }, `cluster: the ${kind} ${id} is another node's now; disconnecting`);
      void service.stop();
    },
  });
  const claimed = await ownership.leases.claim(`${kind}:${id}`);
  if (claimed.ok) await run('lease won at start');
  else log.info({ node: ownership.nodes.nodeId, holder: claimed.owner }, `cluster: the ${kind} ${id} is held by ${claimed.owner}`);
}
