// RFC 3858 watcher information documents (application/watcherinfo+xml). Pure.
import { NS, serializeXml, type XmlElement } from './xml.js';

/** RFC 3858 §4: watcher status and the event that led to it. */
export type WatcherStatus = 'pending' | 'active' | 'waiting' | 'terminated';
export type WatcherEvent = 'subscribe' | 'approved' | 'deactivated' | 'probation' | 'rejected' | 'timeout' | 'giveup' | 'noresource';

export interface WatcherEntry {
  /** Unique within the winfo subscription (RFC 3858 §4: identifies the subscription being watched). */
  id: string;
  /** The watcher's authenticated address of record. */
  uri: string;
  status: WatcherStatus;
  event: WatcherEvent;
  displayName?: string;
  /** Seconds the subscription has existed (optional attribute). */
  durationSubscribed?: number;
}

export interface WatcherList {
  resource: string;
  package: string;
  watchers: WatcherEntry[];
}

export function renderWatcherinfo(version: number, state: 'full' | 'partial', lists: readonly WatcherList[]): string {
  const root: XmlElement = {
    ns: NS.WATCHERINFO,
    name: 'watcherinfo',
    attrs: { version: String(version), state },
    children: lists.map((l) => ({
      ns: NS.WATCHERINFO,
      name: 'watcher-list',
      attrs: { resource: l.resource, package: l.package },
      children: l.watchers.map((w) => {
        const attrs: Record<string, string> = { id: w.id, status: w.status, event: w.event };
        if (w.displayName) attrs['display-name'] = w.displayName;
        if (w.durationSubscribed !== undefined) attrs['duration-subscribed'] = String(w.durationSubscribed);
        return { ns: NS.WATCHERINFO, name: 'watcher', attrs, children: [w.uri] };
      }),
    })),
  };
  return serializeXml(root);
}
