/**
 * Builds the gateway's HSM from the config: `sessionPoolSize` lanes (a
 * PKCS#11 instance with its own session each) spread over `laneThreads`
 * worker threads, behind GuardedHsm's deadlines and circuit breaker.
 * Starting never needs the token.
 */
import { existsSync } from 'node:fs';
import { ConfigError, type Config } from '../../config/config.js';
import type { Metrics } from '../../metrics/metrics.js';
import { GuardedHsm } from '../guarded-hsm.js';
import type { HsmLogger } from './pkcs11-hsm.js';
import { LaneThread } from './worker-lane.js';

/**
 * The hsm config (tests build it without the defaulted fields):
 * - `laneThreads`: worker threads the lanes run on (default
 *   DEFAULT_LANE_THREADS, never more than the lanes);
 * - `sessionKeyCopies` (default false): each lane uses its own in-token
 *   session copy of a key (see Pkcs11HsmOptions).
 */
export type HsmConfig = Omit<Config['hsm'], 'laneThreads' | 'sessionKeyCopies'> & { laneThreads?: number | undefined; sessionKeyCopies?: boolean | undefined };

/** Measured with bench/hsm-micro.ts on 2 cores: see the README's HSM section. */
export const DEFAULT_LANE_THREADS = 2;

export async function openPkcs11Hsm(config: HsmConfig, pin: string, log: HsmLogger, metrics?: Metrics): Promise<GuardedHsm> {
  // A module path that does not exist is a configuration mistake, not an HSM outage.
  if (!existsSync(config.module)) throw new ConfigError(`hsm.module: ${config.module} does not exist`);
  const fallbackDescription = {
    module: config.module,
    tokenLabel: config.token.label ?? `slot ${config.token.slot}`,
    oaep: { sha1: 'native', sha256: 'native' } as const,
    sessionPoolSize: config.sessionPoolSize,
  };
  const threadCount = Math.max(1, Math.min(config.laneThreads ?? DEFAULT_LANE_THREADS, config.sessionPoolSize));
  const threads = Array.from(
    { length: threadCount },
    () => new LaneThread({ module: config.module, token: config.token, pin, sessionPoolSize: 1, sessionKeyCopies: config.sessionKeyCopies ?? false }, log),
  );
  // Lane i on thread i mod n (GuardedHsm hands a call to an idle lane of the least busy thread).
  const lanes = Array.from({ length: config.sessionPoolSize }, (_, i) => threads[i % threadCount]!.lane(Math.floor(i / threadCount), fallbackDescription));
  const hsm = new GuardedHsm({
    lanes,
    deadlineMs: config.deadlineMs,
    failureThreshold: config.circuitFailureThreshold,
    probeIntervalMs: config.probeIntervalMs,
    readyCacheMs: config.readyCacheMs,
    metrics,
    log,
    fallbackDescription,
  });
  await hsm.start();
  return hsm;
}
