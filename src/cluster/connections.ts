/**
 * The cluster primary's hand-out of client connections to the workers.
 *
 * Why not node:cluster's own round-robin: its primary hands an accepted
 * connection to a worker and keeps its copy until the worker says it took
 * it; when the worker dies in between, that reply never comes and the
 * connection stays open in the primary with nobody reading it. The client
 * waits for its answer forever (the AWS SDK for JavaScript v3 sets no
 * request timeout by default). Measured on Node 20.20: 40 connections
 * opened around a SIGKILL of one of two workers, one hung every time (6 of
 * 6 tries). A related leak of the round-robin primary's handles is
 * nodejs/node#21746 (its fix, #21940, was closed unmerged).
 *
 * Here the primary accepts with pauseOnConnect (it never reads a byte),
 * sends the socket to a serving worker over the IPC channel keeping its own
 * copy, and closes that copy once the worker says it has the socket. A
 * worker that dies before it says so never read the request (it says so
 * before it reads), so its connections go to another worker, or wait for
 * one to serve again if none does. Closing the primary's copy sends
 * nothing to the client: the worker holds the same socket.
 */
import type { Socket } from 'node:net';

/** A worker as the dispatcher sees it: an id and a way to send it a socket. */
export interface ConnectionTarget {
  readonly id: number;
  /** Sends the socket (the sender keeps its copy); `done` gets an error when it could not be sent. */
  sendConnection(id: number, socket: Socket, done: (err: Error | null) => void): void;
}

interface Handed {
  socket: Socket;
  worker: ConnectionTarget;
}

export class ConnectionDispatcher {
  private nextId = 1;
  private turn = 0;
  /** Workers that take connections, in the order they started serving. */
  private serving: ConnectionTarget[] = [];
  /** Sent, not yet taken: the primary's copy stays open until the worker says it has the socket. */
  private readonly handed = new Map<number, Handed>();
  /** Accepted while no worker serves: handed out as soon as one does. */
  private waiting: Socket[] = [];
  private closed = false;

  /** A worker that takes connections from now on. */
  serve(worker: ConnectionTarget): void {
    if (this.closed || this.serving.some((w) => w.id === worker.id)) return;
    this.serving.push(worker);
    const queued = this.waiting;
    this.waiting = [];
    for (const s of queued) this.dispatch(s);
  }

  /** A worker that died or stops: it gets no more, and what it did not take goes to another worker. */
  withdraw(workerId: number): void {
    this.serving = this.serving.filter((w) => w.id !== workerId);
    for (const [id, h] of this.handed) {
      if (h.worker.id !== workerId) continue;
      this.handed.delete(id);
      this.dispatch(h.socket);
    }
  }

  /** A new client connection, not read from. */
  dispatch(socket: Socket): void {
    if (this.closed || socket.destroyed) {
      socket.destroy();
      return;
    }
    if (this.serving.length === 0) {
      this.waiting.push(socket);
      return;
    }
    const worker = this.serving[this.turn++ % this.serving.length] as ConnectionTarget;
    const id = this.nextId++;
    this.handed.set(id, { socket, worker });
    worker.sendConnection(id, socket, (err) => {
      if (err === null || !this.handed.has(id)) return;
      // The channel to that worker is gone: it takes nothing more.
      this.handed.delete(id);
      this.withdraw(worker.id);
      this.dispatch(socket);
    });
  }

  /** The worker has the socket: the primary's copy is closed (the connection stays the worker's). */
  taken(id: number): void {
    const h = this.handed.get(id);
    if (h === undefined) return;
    this.handed.delete(id);
    h.socket.destroy();
  }

  /** How many connections are sent and not yet taken, and how many wait for a worker. */
  stats(): { handed: number; waiting: number } {
    return { handed: this.handed.size, waiting: this.waiting.length };
  }

  /** Stopping: nothing more is handed out, and connections no worker took are closed. */
  close(): void {
    this.closed = true;
    for (const h of this.handed.values()) h.socket.destroy();
    this.handed.clear();
    for (const s of this.waiting) s.destroy();
    this.waiting = [];
  }
}
