/**
 * Request metrics for the KMS API (`POST /`): one observation per answered
 * request, taken when the answer has been sent, from the same facts the
 * audit line uses (the AuditRecord the KMS framing fills in, api/kms-json.ts,
 * and the answer's status and X-Amzn-ErrorType), so the counters agree with
 * what clients saw and with the audit log.
 *
 * - kmsgw_requests_total{operation, outcome}: `outcome` is `success` or the
 *   KMS error type sent on the wire (`__type`);
 * - kmsgw_request_duration_seconds{operation};
 * - kmsgw_key_unavailable_total{key_id, operation} on KeyUnavailableException:
 *   `key_id` is the id of the key the request's KeyId resolved to (the
 *   framing records it only for keys the KeyStore knows), else `unknown`;
 * - kmsgw_hsm_timeouts_total{operation} on DependencyTimeoutException.
 *
 * Labels stay bounded: `operation` is a registry operation name (the framing
 * records it only for known targets) or `unknown`; `outcome` is one of the
 * error class names of src/errors.ts. A request whose client left before the
 * answer was sent is not counted (no client saw an answer).
 */
import type { RequestHandler, Response } from 'express';
import type { Metrics } from '../metrics/metrics.js';
import { auditOf } from './kms-json.js';

export const UNKNOWN = 'unknown';

/** `success`, or the KMS error type the answer carried. */
function outcomeOf(res: Response): string {
  if (res.statusCode < 400) return 'success';
  const type = res.getHeader('X-Amzn-ErrorType');
  return typeof type === 'string' && type !== '' ? type : UNKNOWN;
}

/** The key id of a key ARN the framing recorded (`arn:...:key/<id>`). */
function keyIdOf(keyArn: string | undefined): string {
  if (keyArn === undefined) return UNKNOWN;
  const at = keyArn.lastIndexOf(':key/');
  return at < 0 ? UNKNOWN : keyArn.slice(at + 5);
}

/**
 * Mount on `POST /` before the KMS framing. The timeout counter of every
 * operation in `operations` starts at 0, so the very first timeouts already
 * show as an increase to rate() (a labelled series otherwise appears only at
 * its first increment).
 */
export function requestMetrics(metrics: Metrics, operations: Iterable<string> = []): RequestHandler {
  for (const operation of operations) metrics.hsmTimeouts.inc({ operation }, 0);
  return (_req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const audit = auditOf(res);
      const operation = audit.operation ?? UNKNOWN;
      const outcome = outcomeOf(res);
      metrics.requests.inc({ operation, outcome });
      metrics.requestDuration.observe({ operation }, Number(process.hrtime.bigint() - started) / 1e9);
      if (outcome === 'KeyUnavailableException') metrics.keyUnavailable.inc({ key_id: keyIdOf(audit.keyArn), operation });
      else if (outcome === 'DependencyTimeoutException') metrics.hsmTimeouts.inc({ operation });
    });
    next();
  };
}
