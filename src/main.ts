/**
 * Entry point: reads the config named by KMSGW_CONFIG (default
 * config/default.json, the embedded SoftHSM2 set-up), with KMSGW_DATA_DIR
 * substituted and KMSGW_PORT applied, then starts the gateway and listens.
 * A bad config stops start-up with a message that names the field; an
 * unreachable token does not (the gateway serves KeyUnavailableException
 * and /readyz says not ready until the token answers).
 *
 * KMSGW_WORKERS (default: the number of cores) gateway processes serve
 * together (node:cluster, src/cluster/): one PKCS#11 instance per process,
 * because SoftHSM2 serialises the threads of one process on its locks while
 * separate processes scale (measured: ~19,000 AES-GCM encrypts/s in one
 * process, ~35,000/s in two). The primary listens and hands each connection
 * to a worker (src/cluster/connections.ts). KMSGW_WORKERS=1 runs the gateway
 * in this one process, without a primary.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { ConfigError, loadConfig } from './config/config.js';
import { runPrimary } from './cluster/primary.js';
import { workerChannel, type ClusterChannel } from './cluster/worker-channel.js';
import { startGateway } from './gateway.js';
import { createLogger, type Logger } from './log.js';
import type { Clock } from './keys/key-store.js';

/**
 * Deletion windows (7..30 days) and rotation periods are days. Tests shorten
 * a day through KMSGW_TEST_ONLY_SECONDS_PER_DAY; no config file can, and the
 * gateway says so loudly at start, so production cannot reach it by accident.
 */
function testClock(env: NodeJS.ProcessEnv, log: Logger): Clock | undefined {
  const raw = env['KMSGW_TEST_ONLY_SECONDS_PER_DAY'];
  if (raw === undefined || raw === '') return undefined;
  const seconds = Number(raw);
  if (!(seconds > 0)) throw new ConfigError(`KMSGW_TEST_ONLY_SECONDS_PER_DAY: must be a positive number, got '${raw}'`);
  log.warn({ secondsPerDay: seconds }, 'TEST CLOCK: a day lasts only this many seconds; deletion windows and rotation periods are shortened. Never set this in production.');
  return { now: () => Date.now(), dayMs: seconds * 1000 };
}

/** KMSGW_WORKERS: how many gateway processes (1..64); default the number of cores. */
function workerCount(env: NodeJS.ProcessEnv): number {
  const raw = env['KMSGW_WORKERS'];
  if (raw === undefined || raw.trim() === '') return availableParallelism();
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new ConfigError(`KMSGW_WORKERS: must be a whole number from 1 to 64, got '${raw}'`);
  return n;
}

function configError(e: unknown): never {
  process.stderr.write(`kms-hsm-gateway: configuration error: ${(e as Error).message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const log = createLogger();
  const env = process.env;
  const dataDir = resolve(env['KMSGW_DATA_DIR'] ?? '.data');
  const path = resolve(env['KMSGW_CONFIG'] ?? 'config/default.json');
  let channel: ClusterChannel | undefined;
  if (cluster.isPrimary) {
    let workers: number;
    let listen: { host: string; port: number; tls: boolean } | undefined;
    try {
      workers = workerCount(env);
      if (workers > 1) {
        const config = loadConfig({ path, dataDir, port: env['KMSGW_PORT'] });
        listen = { host: config.listen.host, port: config.listen.port, tls: config.listen.tls !== undefined };
      }
    } catch (e) {
      if (e instanceof ConfigError) configError(e);
      throw e;
    }
    if (listen !== undefined) {
      // The config is valid (checked above, so a mistake stops start-up once, with exit 2); the workers load it themselves.
      // The primary listens and hands the connections to the workers.
      runPrimary({ workers, log, listen });
      return;
    }
  } else {
    channel = workerChannel();
  }
  let gateway;
  try {
    const config = loadConfig({ path, dataDir, port: env['KMSGW_PORT'] });
    gateway = await startGateway(config, log, { env, clock: testClock(env, log), ...(channel === undefined ? {} : { cluster: channel }) });
    const facts = { url: gateway.url, port: gateway.port, keys: gateway.keys.size, hsm: gateway.hsm.describe() };
    if (channel === undefined) log.info(facts, 'kms-hsm-gateway listening');
    else {
      log.debug({ keys: facts.keys, hsm: facts.hsm, worker: cluster.worker?.id }, 'gateway worker serving');
      const serving = gateway;
      channel.serve({ keys: facts.keys, hsm: facts.hsm, pinRefused: gateway.hsm.pinRefused }, (socket) => serving.accept(socket));
    }
  } catch (e) {
    if (e instanceof ConfigError) configError(e);
    process.stderr.write(`kms-hsm-gateway: cannot start: ${(e as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const exit = (code: number) => {
      const hsm = gateway.hsm.stats();
      if (hsm.inUse + hsm.quarantined > 0) {
        // Node's normal exit joins every worker thread, and a lane stuck in a
        // hung token never returns: end by the signal's default action instead.
        log.warn({ stuckHsmCalls: hsm.inUse + hsm.quarantined }, 'HSM calls still stuck in the token; ending the process without waiting for them');
        process.removeAllListeners('SIGTERM');
        process.kill(process.pid, 'SIGTERM');
        return;
      }
      process.exit(code);
    };
    gateway.close().then(
      () => exit(0),
      () => exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A worker whose primary is gone (killed) stops too, rather than serve on alone.
  if (channel !== undefined) process.on('disconnect', () => stop('primary gone'));
}

void main();
