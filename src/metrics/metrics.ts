/**
 * Every metric the gateway exports, declared in this one place, on a
 * registry of its own (no prom-client global state, so tests can build many
 * gateways in one process). Names follow the Prometheus conventions: a
 * `kmsgw_` prefix, base units (seconds), `_total` on counters.
 *
 * Label values are bounded: `operation` is a KMS operation name from the
 * registry (or `unknown`), `outcome` is `success` or a KMS error type,
 * `key_id` is the id of a key the gateway knows (never a raw client string),
 * `mechanism` is one of HSM_MECHANISMS.
 *
 * In a cluster (KMSGW_WORKERS > 1) each worker has this registry and the
 * primary aggregates them for /metrics (src/cluster/primary.ts): counters,
 * histograms and the session gauge are summed over the workers; a gauge that
 * states a condition says how it combines (`aggregator`): the circuit is
 * open if it is open in any worker (max), the token is up and the key state
 * loaded only if so in every worker (min).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What an HSM call does on the token, for the `mechanism` label. */
export const HSM_MECHANISMS = [
  'CKM_AES_GCM',
  'CKM_RSA_PKCS_OAEP',
  'CKM_RSA_X_509',
  'CKM_AES_KEY_GEN',
  'CKM_RSA_PKCS_KEY_PAIR_GEN',
  'C_GenerateRandom',
  'C_FindObjects',
  'C_GetAttributeValue',
  'C_CreateObject',
  'C_DestroyObject',
  'probe',
] as const;
export type HsmMechanism = (typeof HSM_MECHANISMS)[number];

/** How one HSM call ended, for the `outcome` label of HSM call metrics. */
export type HsmCallOutcome = 'ok' | 'client_error' | 'key_unavailable' | 'token_fault' | 'timeout' | 'circuit_open' | 'internal';

export type SessionState = 'in_use' | 'idle' | 'quarantined';

/** What the HSM gauges show, read when Prometheus scrapes (GuardedHsm.stats()). */
export interface HsmGaugeSource {
  (): { inUse: number; idle: number; quarantined: number; circuitOpen: boolean; tokenUp: boolean };
}

export interface Metrics {
  registry: Registry;
  /** Every KMS request, by operation and outcome (`success` or the KMS error type). */
  requests: Counter<'operation' | 'outcome'>;
  requestDuration: Histogram<'operation'>;
  /** Wall time of one HSM call, including the wait for a free session, by mechanism and outcome. */
  hsmCallDuration: Histogram<'mechanism' | 'outcome'>;
  /** KeyUnavailableException answered to a client, by key id (known keys only, else `unknown`) and operation. */
  keyUnavailable: Counter<'key_id' | 'operation'>;
  /** DependencyTimeoutException answered to a client (the HSM passed its deadline), by operation. */
  hsmTimeouts: Counter<'operation'>;
  /** HSM sessions (each on its own thread) by state; quarantined = a call passed its deadline and has not returned. */
  hsmSessions: Gauge<'state'>;
  /** 1 while the circuit breaker is open (calls fail fast and a background probe tests the token). */
  hsmCircuitOpen: Gauge;
  /** 1 while the token answered its last call or probe, 0 after a token fault or timeout. */
  hsmTokenUp: Gauge;
  /** Times a session was re-opened, the token logged in again or the module re-initialised. */
  hsmRecoveries: Counter<'result'>;
  /** 1 once the key state has been read from the token (the gateway can serve KMS requests). */
  keyStateLoaded: Gauge;
  /**
   * Where kmsgw_hsm_sessions, kmsgw_hsm_circuit_open and kmsgw_hsm_token_up
   * come from: read at scrape time, so the request path sets no gauge.
   */
  watchHsm(source: HsmGaugeSource): void;
}

/** Request latency buckets: the token answers in tens of microseconds to a few ms; deadlines are seconds. */
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HSM_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  let hsm: HsmGaugeSource | undefined;
  return {
    watchHsm(source) {
      hsm = source;
    },
    registry,
    requests: new Counter({
      name: 'kmsgw_requests_total',
      help: 'KMS requests answered, by operation and outcome (success or the KMS error type).',
      labelNames: ['operation', 'outcome'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'kmsgw_request_duration_seconds',
      help: 'Time from receiving a KMS request to answering it, by operation.',
      labelNames: ['operation'],
      buckets: REQUEST_BUCKETS,
      registers,
    }),
    hsmCallDuration: new Histogram({
      name: 'kmsgw_hsm_call_duration_seconds',
      help: 'Time of one HSM call including the wait for a free session, by mechanism and outcome.',
      labelNames: ['mechanism', 'outcome'],
      buckets: HSM_BUCKETS,
      registers,
    }),
    keyUnavailable: new Counter({
      name: 'kmsgw_key_unavailable_total',
      help: 'KeyUnavailableException answers, by key id (known keys only) and operation.',
      labelNames: ['key_id', 'operation'],
      registers,
    }),
    hsmTimeouts: new Counter({
      name: 'kmsgw_hsm_timeouts_total',
      help: 'DependencyTimeoutException answers (an HSM call passed its deadline), by operation.',
      labelNames: ['operation'],
      registers,
    }),
    hsmSessions: new Gauge({
      name: 'kmsgw_hsm_sessions',
      help: 'HSM sessions by state (in_use, idle, quarantined: past its deadline and not yet returned).',
      labelNames: ['state'],
      registers,
      collect() {
        const s = hsm?.();
        if (s === undefined) return;
        this.set({ state: 'in_use' }, s.inUse);
        this.set({ state: 'idle' }, s.idle);
        this.set({ state: 'quarantined' }, s.quarantined);
      },
    }),
    hsmCircuitOpen: new Gauge({
      name: 'kmsgw_hsm_circuit_open',
      help: '1 while the HSM circuit breaker is open (calls fail fast, a background probe tests the token).',
      registers,
      aggregator: 'max',
      collect() {
        const s = hsm?.();
        if (s !== undefined) this.set(s.circuitOpen ? 1 : 0);
      },
    }),
    hsmTokenUp: new Gauge({
      name: 'kmsgw_hsm_token_up',
      help: '1 while the token answers (last call or probe succeeded), 0 after a token fault or timeout.',
      registers,
      aggregator: 'min',
      collect() {
        const s = hsm?.();
        if (s !== undefined) this.set(s.tokenUp ? 1 : 0);
      },
    }),
    hsmRecoveries: new Counter({
      name: 'kmsgw_hsm_recoveries_total',
      help: 'Attempts to re-open sessions, log in again or re-initialise the PKCS#11 module, by result.',
      labelNames: ['result'],
      registers,
    }),
    keyStateLoaded: new Gauge({
      name: 'kmsgw_key_state_loaded',
      help: '1 once the key state has been read from the token and KMS requests can be served.',
      registers,
      aggregator: 'min',
    }),
  };
}
