/**
 * Builds the gateway's HSM from the config: `sessionPoolSize` lanes, each a
 * worker thread with its own PKCS#11 instance, behind GuardedHsm's
 * deadlines and circuit breaker. Starting never needs the token.
 */
import { existsSync } from 'node:fs';
import { ConfigError, type Config } from '../../config/config.js';
import type { Metrics } from '../../metrics/metrics.js';
import { GuardedHsm } from '../guarded-hsm.js';
import type { HsmLogger } from './pkcs11-hsm.js';
import { WorkerLane } from './worker-lane.js';

export async function openPkcs11Hsm(config: Config['hsm'], pin: string, log: HsmLogger, metrics?: Metrics): Promise<GuardedHsm> {
  // A module path that does not exist is a configuration mistake, not an HSM outage.
  if (!existsSync(config.module)) throw new ConfigError(`hsm.module: ${config.module} does not exist`);
  const fallbackDescription = {
    module: config.module,
    tokenLabel: config.token.label ?? `slot ${config.token.slot}`,
    oaep: { sha1: 'native', sha256: 'native' } as const,
    sessionPoolSize: config.sessionPoolSize,
  };
  const lanes = Array.from(
    { length: config.sessionPoolSize },
    () => new WorkerLane({ module: config.module, token: config.token, pin, sessionPoolSize: 1 }, log, fallbackDescription),
  );
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
