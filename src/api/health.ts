/**
 * The operational endpoints, beside the KMS API: `GET /metrics`
 * (Prometheus text format), `GET /healthz` (liveness) and `GET /readyz`
 * (readiness). They carry no SigV4 signature and no audit line (a scraper
 * or a kubelet would flood the audit log), and never see key material.
 *
 * - /healthz answers 200 `{"status":"ok"}` while the process serves HTTP; it
 *   never touches the HSM, so a token outage does not get the process
 *   restarted (a restart would not bring the token back).
 * - /readyz answers 200 `{"status":"ready"}` when the key state is loaded
 *   from the token and the HSM says it is ready, else 503
 *   `{"status":"not ready","reasons":[...]}`, so a load balancer routes
 *   clients to another instance while this one waits for its token.
 */
import express, { type Router } from 'express';
import type { Registry } from 'prom-client';

export interface Readiness {
  ready: boolean;
  /** Why not ready (empty when ready): short, fixed texts, no secrets. */
  reasons: string[];
}

export type ReadinessCheck = () => Promise<Readiness>;

/** What the readiness check needs of the HSM (GuardedHsm: a cached token probe; not ready while the circuit is open). */
export interface HsmReadiness {
  readiness(): Promise<{ ready: boolean; reason?: string }>;
}

export const KEY_STATE_NOT_LOADED = 'key state not loaded from the HSM';

/**
 * Ready = the key state is loaded from the token AND the HSM is ready.
 * Without an HSM readiness probe (`hsm` undefined) the HSM counts as ready
 * once the key state is loaded.
 */
export function readinessCheck(keys: { readonly loaded: boolean }, hsm: HsmReadiness | undefined): ReadinessCheck {
  return async () => {
    const reasons: string[] = [];
    if (!keys.loaded) reasons.push(KEY_STATE_NOT_LOADED);
    if (hsm !== undefined) {
      let r: { ready: boolean; reason?: string };
      try {
        r = await hsm.readiness();
      } catch {
        r = { ready: false, reason: 'HSM readiness probe failed' };
      }
      if (!r.ready) reasons.push(r.reason ?? 'HSM not ready');
    }
    return { ready: reasons.length === 0, reasons };
  };
}

/**
 * `metricsText`, when given, replaces the registry's own text: a cluster
 * worker asks the primary for every worker's metrics, aggregated.
 */
export function healthRouter(deps: { registry: Registry; ready: ReadinessCheck; metricsText?: (() => Promise<string>) | undefined }): Router {
  const router = express.Router();
  // Every answer here describes this moment: no cache may keep it.
  const noStore: express.RequestHandler = (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  };
  router.get('/metrics', noStore, async (_req, res) => {
    const text = await (deps.metricsText ?? (() => deps.registry.metrics()))();
    res.status(200).set('Content-Type', deps.registry.contentType).send(text);
  });
  router.get('/healthz', noStore, (_req, res) => {
    res.status(200).json({ status: 'ok' });
  });
  router.get('/readyz', noStore, async (_req, res) => {
    const r = await deps.ready();
    if (r.ready) res.status(200).json({ status: 'ready' });
    else res.status(503).json({ status: 'not ready', reasons: r.reasons });
  });
  return router;
}
