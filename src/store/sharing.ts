// How a module that keeps a resource's records in memory (publications, the watcher list) shares them
// with the other nodes of a cluster: the records live in the shared store, and the nodes that hold
// watchers of the resource hear of each change and read them again. Implemented by src/cluster/feed.ts;
// absent on a single node, where this process's memory is the whole truth.
export interface ResourceSharing<R> {
  /** Every node's records of the resource, as the shared store has them now. */
  load(resource: string): Promise<R[]>;
  /** This node changed the resource's records, durably: tell the nodes that hold it. */
  changed(resource: string): void;
  /** This node starts holding the resource: `resync` is called on every change elsewhere (and after an outage). */
  hold(resource: string, resync: () => void): () => void;
}
