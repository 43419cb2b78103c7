/**
 * The HTTP side of the KMS API, on node:http directly: every `POST /` (the
 * KMS JSON 1.1 calls) is read, answered, audited and counted here; any
 * other request goes to the express app (operational endpoints, and the
 * UnknownOperationException for every other method and path).
 *
 * Why not an express route: express 5 re-parents every request and response
 * object (setPrototypeOf) and walks its middleware stack for each request;
 * measured on the 2-core bench machine, a bare node:http JSON echo of a
 * 4 KB Encrypt body served 12,000-16,000 requests/s and the same handler as
 * an express route 5,000-7,000 (helmet's 13 middlewares cost another 10-20%).
 * The KMS call is the gateway's hot path, so it gets the same answers with
 * none of that: helmet's headers are computed once (security-headers.ts),
 * the body is read with the same 64 KiB limit, and errors go through the one
 * translation (error-middleware.ts).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { AuditRecord } from '../auth/types.js';
import { RequestEntityTooLargeException, SerializationException, type KmsError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { auditLine, type AuditSink } from './audit.js';
import { errorBody, kmsErrorOf } from './error-middleware.js';
import { answerKmsCall, BODY_LIMIT, type KmsDeps } from './kms-json.js';
import { initRequestMetrics, observeKmsAnswer } from './request-metrics.js';
import { securityHeaders } from './security-headers.js';

/** What express's res.type(...).send(string) sent; kept byte for byte. */
const CONTENT_TYPE = 'application/x-amz-json-1.1; charset=utf-8';

export interface KmsListenerDeps {
  kms: KmsDeps;
  audit: AuditSink;
  metrics: Metrics;
  log: Logger;
  /** Serves every request that is not `POST /`. */
  fallback: RequestListener;
}

function isKmsCall(req: IncomingMessage): boolean {
  if (req.method !== 'POST') return false;
  const url = req.url ?? '';
  return url === '/' || url.startsWith('/?');
}

export function kmsListener(deps: KmsListenerDeps): RequestListener {
  const security = securityHeaders().flat();
  initRequestMetrics(deps.metrics, deps.kms.operations.keys());
  return (req, res) => {
    if (isKmsCall(req)) serveKmsCall(req, res, deps, security);
    else deps.fallback(req, res);
  };
}

function serveKmsCall(req: IncomingMessage, res: ServerResponse, deps: KmsListenerDeps, security: string[]): void {
  const started = process.hrtime.bigint();
  const time = new Date().toISOString();
  const requestId = randomUUID();
  // Read now: after the socket closes, remoteAddress is gone.
  const sourceAddress = req.socket.remoteAddress ?? null;
  const record: AuditRecord = {};
  let answered = false;

  // The audit line and the metrics are written as the answer is handed to
  // the socket: no client sees an answer that is not yet counted.
  const answer = (status: number, body: string, errorType: string | undefined): void => {
    if (answered) return;
    answered = true;
    observeKmsAnswer(deps.metrics, {
      operation: record.operation,
      keyArn: record.keyArn,
      errorType,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    });
    deps.audit.write(auditLine({ time, started, requestId, sourceAddress, record, httpStatus: status, errorType: errorType ?? null, aborted: false }));
    const headers = [...security, 'x-amzn-RequestId', requestId, 'Content-Type', CONTENT_TYPE, 'Content-Length', String(Buffer.byteLength(body))];
    if (errorType !== undefined) headers.push('X-Amzn-ErrorType', errorType);
    res.writeHead(status, headers);
    res.end(body);
  };
  const fail = (err: unknown): void => {
    if (answered) return;
    const kms: KmsError = kmsErrorOf(err, deps.log, requestId, req.headers['x-amz-target']);
    answer(kms.status, errorBody(kms), kms.name);
  };
  // The client left before its answer: the line says so, with no status; no metric counts it.
  res.once('close', () => {
    if (answered) return;
    answered = true;
    deps.audit.write(auditLine({ time, started, requestId, sourceAddress, record, httpStatus: null, errorType: null, aborted: true }));
  });

  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > BODY_LIMIT) {
    refuseBody(req);
    fail(new RequestEntityTooLargeException('Request body is larger than the gateway accepts.'));
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > BODY_LIMIT) {
      refuseBody(req);
      fail(new RequestEntityTooLargeException('Request body is larger than the gateway accepts.'));
      return;
    }
    chunks.push(chunk);
  };
  req.on('data', onData);
  req.once('end', () => {
    if (answered) return;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
    answerKmsCall({ method: 'POST', url: req.url ?? '/', headers: req.headers, body }, record, deps.kms).then(
      (text) => answer(200, text, undefined),
      fail,
    );
  });
  // A socket error while reading: the 'close' above records the request as aborted.
  req.once('error', () => {
    if (!answered && !res.destroyed) fail(new SerializationException('The request body could not be read.'));
  });
}

/** Stops reading a body that is too large; Node discards (or closes on) the rest once the answer is sent. */
function refuseBody(req: IncomingMessage): void {
  req.removeAllListeners('data');
  req.pause();
}
