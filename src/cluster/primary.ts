/**
 * The cluster primary: forks `workers` gateway processes (node:cluster;
 * each has its own PKCS#11 instance, lanes, key store and express app), and
 * is the one place that
 *
 * - listens, and hands each client connection to a serving worker in turn
 *   (connections.ts: not node:cluster's round-robin, which loses a
 *   connection handed to a worker in the moment it dies); it starts
 *   listening once the first worker serves, so a client is refused rather
 *   than kept waiting while the gateway starts;
 * - announces the gateway once every worker serves;
 * - answers a worker's GET /metrics with every worker's metrics aggregated
 *   (prom-client's AggregatorRegistry: counters and histograms summed,
 *   gauges as each declares in src/metrics/metrics.ts);
 * - relays key state changes: a worker that committed one waits until every
 *   other worker that serves requests has applied it before it answers its
 *   client (a worker still starting gets them too, and applies them once
 *   its state is loaded);
 * - picks one worker (the leader) to run the key store's background work
 *   (scheduled deletions, automatic rotations), so two workers never
 *   rotate the same key at once;
 * - restarts a worker that dies, stops them all on SIGTERM/SIGINT and
 *   passes SIGHUP (re-read the credentials file) on to each.
 *
 * The first worker starts alone and the others once it listens: on a new
 * token it seeds the config's keys (two workers seeding at once would both
 * create them), and if the token refused its PIN no other worker tries the
 * PIN again (each refused login counts toward locking the HSM user): the
 * gateway then stays at one worker, answering KeyUnavailableException, until
 * it is restarted with the right PIN.
 *
 * The primary never opens the token and never reads from a client
 * connection: the workers serve every request, over TLS where configured.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { AggregatorRegistry } from 'prom-client';
import { listenUrl } from '../config/config.js';
import type { Logger } from '../log.js';
import { ConnectionDispatcher, type ConnectionTarget } from './connections.js';
import { isKmsgwMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';

/** A worker's apply of another worker's key state changes that takes longer than this is not waited for (its token may hang). */
const SYNC_TIMEOUT_MS = 3_000;
/** A worker that died is replaced after this pause (no tight restart loop against a broken token). */
const RESTART_DELAY_MS = 1_000;

export interface PrimaryOptions {
  workers: number;
  log: Logger;
  /** The config's listen.host and port (0: any free port), and whether the workers serve TLS on it. */
  listen: { host: string; port: number; tls: boolean };
}

interface Sync {
  origin: Worker;
  originId: number;
  waiting: Set<number>;
  timer: NodeJS.Timeout;
}

export function runPrimary({ workers, log, listen }: PrimaryOptions): void {
  const aggregator = new AggregatorRegistry();
  const dispatcher = new ConnectionDispatcher();
  // pauseOnConnect: the primary never reads; the worker that gets the socket
  // does. noDelay here: a socket handed to a worker's server skips the
  // accept path where that server would set TCP_NODELAY (as node:http does).
  const listener = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => dispatcher.dispatch(socket));
  let bound: AddressInfo | undefined;
  const target = (w: Worker): ConnectionTarget => ({
    id: w.id,
    sendConnection: (id: number, socket: Socket, done: (err: Error | null) => void) => {
      if (!w.isConnected()) return done(new Error('worker disconnected'));
      // keepOpen: the primary's copy stays open until the worker says it has the socket.
      w.send({ type: 'kmsgw:connection', id } satisfies PrimaryMessage, socket, { keepOpen: true }, (err) => done(err ?? null));
    },
  });
  const listening = new Set<number>();
  let announced = false;
  /** The other workers have been forked (after the first listened). */
  let started = false;
  /** How many workers serve once all have started. */
  let expected = workers;
  let stopping = false;
  let leader: number | undefined;
  let nextSync = 1;
  const syncs = new Map<number, Sync>();

  const send = (w: Worker, m: PrimaryMessage) => {
    if (w.isConnected()) w.send(m);
  };
  const live = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);

  const finishSync = (id: number) => {
    const s = syncs.get(id);
    if (s === undefined) return;
    syncs.delete(id);
    clearTimeout(s.timer);
    send(s.origin, { type: 'kmsgw:state-synced', id: s.originId });
  };

  const chooseLeader = () => {
    if (leader !== undefined && cluster.workers?.[leader] !== undefined) return;
    const next = live().find((w) => listening.has(w.id));
    leader = next?.id;
    if (next !== undefined) send(next, { type: 'kmsgw:leader' });
  };

  const onMessage = (w: Worker, raw: unknown) => {
    if (!isKmsgwMessage(raw)) return;
    const m = raw as WorkerMessage;
    switch (m.type) {
      case 'kmsgw:metrics':
        aggregator.clusterMetrics().then(
          (text) => send(w, { type: 'kmsgw:metrics', id: m.id, text }),
          (e: unknown) => send(w, { type: 'kmsgw:metrics', id: m.id, error: (e as Error).message }),
        );
        return;
      case 'kmsgw:state-changed': {
        const id = nextSync++;
        // Every other worker gets the changes, a starting one too (it applies them once its
        // state is loaded); the client waits only for those that serve requests already.
        const others = live().filter((o) => o !== w);
        const serving = others.filter((o) => listening.has(o.id));
        const sync: Sync = { origin: w, originId: m.id, waiting: new Set(serving.map((o) => o.id)), timer: setTimeout(() => finishSync(id), SYNC_TIMEOUT_MS) };
        syncs.set(id, sync);
        for (const o of others) send(o, { type: 'kmsgw:refresh', id, changes: m.changes });
        if (sync.waiting.size === 0) finishSync(id);
        return;
      }
      case 'kmsgw:refreshed': {
        const s = syncs.get(m.id);
        if (s === undefined) return;
        s.waiting.delete(w.id);
        if (s.waiting.size === 0) finishSync(m.id);
        return;
      }
      case 'kmsgw:connection-taken':
        dispatcher.taken(m.id);
        return;
      case 'kmsgw:serving':
        if (stopping) return;
        listening.add(w.id);
        dispatcher.serve(target(w));
        chooseLeader();
        if (bound === undefined) bind(() => served(m));
        else served(m);
        return;
    }
  };

  /** Listens on the config's address; the first worker to serve calls it. A port that cannot be had stops the gateway. */
  const bind = (then: () => void) => {
    listener.once('error', (e: NodeJS.ErrnoException) => {
      log.error({ host: listen.host, port: listen.port, code: e.code }, `cannot listen on ${listen.host}:${listen.port}: ${e.message}`);
      process.exitCode = 1;
      stop();
    });
    listener.listen(listen.port, listen.host, () => {
      bound = listener.address() as AddressInfo;
      then();
    });
  };

  /** A worker serves (and the port is bound): the others start after the first, and the gateway is announced once all serve. */
  const served = (m: { keys: number; hsm: unknown; pinRefused: boolean }) => {
    if (stopping || bound === undefined) return;
    if (!started) {
      started = true;
      if (m.pinRefused) log.error({ workers: 1 }, 'the HSM refused the PIN: no other worker starts (no more login attempts); fix hsm.pin and restart');
      else for (let i = 1; i < workers; i++) fork();
      expected = m.pinRefused ? 1 : workers;
    }
    if (!announced && listening.size === expected) {
      announced = true;
      log.info({ url: listenUrl(listen.host, bound.port, listen.tls), port: bound.port, keys: m.keys, hsm: m.hsm, workers: expected }, 'kms-hsm-gateway listening');
    }
  };

  const fork = () => {
    const w = cluster.fork();
    w.on('message', (m: unknown) => onMessage(w, m));
    w.on('exit', (code, signal) => {
      listening.delete(w.id);
      // What it was sent and did not take goes to another worker.
      dispatcher.withdraw(w.id);
      // Syncs waiting for this worker need not wait for it any more.
      for (const [id, s] of syncs) {
        s.waiting.delete(w.id);
        if (s.waiting.size === 0) finishSync(id);
      }
      if (leader === w.id) leader = undefined;
      if (stopping) {
        if (live().length === 0) process.exit();
        return;
      }
      if (!announced) {
        // A worker that cannot start (bad TLS file, credentials ...) stops the gateway with its exit code.
        log.error({ worker: w.id, code, signal }, 'a gateway worker failed to start; stopping');
        process.exitCode = code ?? 1;
        stop();
        return;
      }
      log.error({ worker: w.id, code, signal }, 'a gateway worker died; starting a new one');
      setTimeout(() => {
        if (!stopping) fork();
      }, RESTART_DELAY_MS).unref();
      chooseLeader();
    });
  };

  const stop = () => {
    if (stopping) return;
    stopping = true;
    // No new connections: the port refuses them from now on.
    listener.close();
    dispatcher.close();
    // Each worker lets its requests in flight finish and closes its token sessions (main.ts).
    for (const w of live()) w.process.kill('SIGTERM');
    if (live().length === 0) process.exit();
  };
  process.on('SIGTERM', () => {
    log.info({ signal: 'SIGTERM' }, 'stopping');
    stop();
  });
  // SIGHUP re-reads the credentials file (auth/credentials.ts): in every worker.
  process.on('SIGHUP', () => {
    for (const w of live()) w.process.kill('SIGHUP');
  });
  process.on('SIGINT', () => {
    log.info({ signal: 'SIGINT' }, 'stopping');
    stop();
  });

  // A smaller young generation per worker: V8's default (16 MB semi-spaces)
  // grows to ~48 MB under the request rate and stays; 4 MB semi-spaces cut a
  // worker's RSS by ~20 MB at the same throughput (bench/hsm-micro.ts).
  cluster.setupPrimary({ execArgv: [...process.execArgv, '--max-semi-space-size=4'] });
  fork();
}
