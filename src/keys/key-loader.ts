/**
 * The KeyStore's initial load (and the seeding of the config file's keys),
 * retried until the token answers, so that a gateway started while its HSM
 * is down still listens: /healthz answers, /readyz says why it is not ready,
 * and every KMS request answers the retryable KeyUnavailableException
 * (KeyStore.assertLoaded) until the load succeeds. Then the KeyStore's
 * periodic refresh starts and `kmsgw_key_state_loaded` becomes 1.
 *
 * A failure is logged when it first happens and again only when its cause
 * changes (not on every retry); the success is logged once.
 */
import type { Config } from '../config/config.js';
import type { KeyStore } from './key-store.js';

export interface KeyLoaderLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface KeyLoader {
  /** Resolves when the key state is loaded (never rejects; stays pending if stopped first). */
  readonly loaded: Promise<void>;
  /** Stops retrying and waits for an attempt in flight; the KeyStore's refresh is not started afterwards. */
  stop(): Promise<void>;
}

export interface KeyLoaderOptions {
  keys: KeyStore;
  config: Pick<Config, 'keys'>;
  log: KeyLoaderLogger;
  /** Pause between attempts (config.hsm.probeIntervalMs). */
  retryMs: number;
  /** Set to 0 now and to 1 once loaded (metrics.keyStateLoaded). */
  gauge?: { set(value: number): void };
}

/**
 * Makes the first attempt now and resolves when it has ended (loaded or
 * not), so a gateway whose token is up serves from its first request on;
 * later attempts run in the background every `retryMs`.
 */
export async function startKeyLoader(opts: KeyLoaderOptions): Promise<KeyLoader> {
  const { keys, config, log, retryMs, gauge } = opts;
  gauge?.set(0);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let lastCause: string | undefined;
  let failures = 0;
  let markLoaded!: () => void;
  const loaded = new Promise<void>((resolve) => (markLoaded = resolve));

  const attempt = async (): Promise<void> => {
    try {
      await keys.init(config);
    } catch (e) {
      failures++;
      const cause = `${(e as Error)?.name}: ${(e as Error)?.message}`;
      if (cause !== lastCause)
        log.warn(
          { err: (e as Error)?.name, message: (e as Error)?.message, retryMs },
          'cannot load the key state from the HSM; KMS requests answer KeyUnavailableException; retrying',
        );
      lastCause = cause;
      if (!stopped) {
        timer = setTimeout(() => {
          timer = undefined;
          inFlight = attempt();
        }, retryMs);
        timer.unref();
      }
      return;
    }
    // A load that ends after stop() leaves the store idle: the gateway is closing.
    if (stopped) return;
    log.info({ keys: keys.size, ...(failures > 0 ? { failedAttempts: failures } : {}) }, 'key state loaded from the HSM');
    keys.start();
    gauge?.set(1);
    markLoaded();
  };

  inFlight = attempt();
  await inFlight;
  return {
    loaded,
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await inFlight;
    },
  };
}
