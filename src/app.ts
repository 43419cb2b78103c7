/**
 * Builds the gateway's HTTP request listener from its dependencies, without
 * listening, so tests can start it on port 0 and main.ts can wire it to the
 * real token: `POST /` (the KMS API) is served by api/kms-listener.ts on
 * node:http directly, the rest by an express app (operational endpoints,
 * UnknownOperationException for anything else).
 */
import { randomUUID } from 'node:crypto';
import type { RequestListener } from 'node:http';
import express from 'express';
import helmet from 'helmet';
import { auditMiddleware, type AuditSink } from './api/audit.js';
import { errorMiddleware } from './api/error-middleware.js';
import { healthRouter, type ReadinessCheck } from './api/health.js';
import type { AuthDeps } from './api/kms-json.js';
import { kmsListener } from './api/kms-listener.js';
import { UnknownOperationException } from './errors.js';
import type { Hsm } from './hsm/hsm.js';
import type { KeyStore } from './keys/key-store.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics/metrics.js';
import type { Operation } from './operations/operation.js';
import { operations as defaultOperations } from './operations/registry.js';

export interface AppDeps {
  keys: KeyStore;
  hsm: Hsm;
  log: Logger;
  auth: AuthDeps;
  /** Where the audit log's lines go (api/audit.ts). */
  audit: AuditSink;
  /** The gateway's metrics: KMS requests are observed here (api/request-metrics.ts), /metrics exports the registry. */
  metrics: Metrics;
  /** What GET /readyz answers (api/health.ts): key state loaded and HSM ready. */
  ready: ReadinessCheck;
  /** What GET /metrics answers instead of the registry's own text (a cluster worker: every worker's metrics, from the primary). */
  metricsText?: () => Promise<string>;
  operations?: ReadonlyMap<string, Operation>;
}

export function createApp(deps: AppDeps): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(helmet());
  // GET /metrics, /healthz, /readyz: before the audit log (scrapes and
  // probes are neither KMS calls nor signed).
  app.use(healthRouter({ registry: deps.metrics.registry, ready: deps.ready, metricsText: deps.metricsText }));
  // Every other request gets its audit line, whatever answers it.
  app.use(auditMiddleware(deps.audit));
  app.use((_req, res, next) => {
    res.set('x-amzn-RequestId', randomUUID());
    next();
  });
  // Anything that is not `POST /` is not a KMS call.
  app.use(() => {
    throw new UnknownOperationException();
  });
  app.use(errorMiddleware(deps.log));
  const operations = deps.operations ?? defaultOperations;
  return kmsListener({
    kms: { operations, ctx: { keys: deps.keys, hsm: deps.hsm }, auth: deps.auth },
    audit: deps.audit,
    metrics: deps.metrics,
    log: deps.log,
    fallback: app,
  });
}
