// The WAL checkpointer of a SQLite store, run in a worker thread on its own connection (sqlite.ts
// starts it). Why a thread: a checkpoint copies the WAL into the database file and fsyncs both, which
// can take milliseconds to tens of them on a busy disk; better-sqlite3 would run SQLite's automatic
// checkpoint inside whichever write crossed the threshold, on Herald's event loop. A PASSIVE checkpoint
// never waits for the writer or the readers (SQLite's WAL allows it beside them), so the main
// connection's writes go on while it runs; the main connection's own automatic checkpoint is off.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointerData {
  path: string;
  intervalMs: number;
}

const data = workerData as CheckpointerData;
const db = new Database(data.path, { timeout: 2000 });
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or failing for a moment: the next interval tries again (the WAL only grows meanwhile).
  }
}, data.intervalMs);

parentPort?.on('message', (m: unknown) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
