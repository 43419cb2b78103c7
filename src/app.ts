/**
 * Builds the express app from its dependencies, without listening, so tests
 * can start it on port 0 and main.ts can wire it to the real token.
 */
import { randomUUID } from 'node:crypto';
import express, { type Express } from 'express';
import helmet from 'helmet';
import { auditMiddleware, type AuditSink } from './api/audit.js';
import { errorMiddleware } from './api/error-middleware.js';
import { healthRouter, type ReadinessCheck } from './api/health.js';
import { kmsJsonRouter, type AuthDeps } from './api/kms-json.js';
import { requestMetrics } from './api/request-metrics.js';
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
  operations?: ReadonlyMap<string, Operation>;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(helmet());
  // GET /metrics, /healthz, /readyz: before the audit log and SigV4 (scrapes
  // and probes are neither KMS calls nor signed).
  app.use(healthRouter({ registry: deps.metrics.registry, ready: deps.ready }));
  // Before the KMS framing, so every other request gets its audit line, whatever answers it.
  app.use(auditMiddleware(deps.audit));
  app.use((_req, res, next) => {
    res.set('x-amzn-RequestId', randomUUID());
    next();
  });
  const operations = deps.operations ?? defaultOperations;
  app.post('/', requestMetrics(deps.metrics, operations.keys()));
  app.use(kmsJsonRouter(operations, { keys: deps.keys, hsm: deps.hsm }, deps.auth));
  // Anything that is not `POST /` is not a KMS call.
  app.use(() => {
    throw new UnknownOperationException();
  });
  app.use(errorMiddleware(deps.log));
  return app;
}
