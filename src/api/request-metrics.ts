/**
 * Request metrics for the KMS API (`POST /`): one observation per answered
 * request, taken by the KMS listener (api/kms-listener.ts) as it hands the
 * answer to the socket, so a client never sees an answer before it is
 * counted, from the same facts the audit line uses (the AuditRecord the KMS
 * framing fills in, api/kms-json.ts, and the answer's X-Amzn-ErrorType), so
 * the counters agree with what clients saw and with the audit log.
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
import type { Metrics } from '../metrics/metrics.js';

export const UNKNOWN = 'unknown';

/** The key id of a key ARN the framing recorded (`arn:...:key/<id>`). */
function keyIdOf(keyArn: string | undefined): string {
  if (keyArn === undefined) return UNKNOWN;
  const at = keyArn.lastIndexOf(':key/');
  return at < 0 ? UNKNOWN : keyArn.slice(at + 5);
}

/**
 * The timeout counter of every operation in `operations` starts at 0, so the
 * very first timeouts already show as an increase to rate() (a labelled
 * series otherwise appears only at its first increment).
 */
export function initRequestMetrics(metrics: Metrics, operations: Iterable<string>): void {
  for (const operation of operations) metrics.hsmTimeouts.inc({ operation }, 0);
}

/**
 * One answered KMS request: `operation` and `keyArn` as the framing recorded
 * them, `errorType` the answer's X-Amzn-ErrorType (undefined on success).
 */
export function observeKmsAnswer(
  metrics: Metrics,
  facts: { operation: string | undefined; keyArn: string | undefined; errorType: string | undefined; seconds: number },
): void {
  const operation = facts.operation ?? UNKNOWN;
  const outcome = facts.errorType ?? 'success';
  metrics.requests.inc({ operation, outcome });
  metrics.requestDuration.observe({ operation }, facts.seconds);
  if (outcome === 'KeyUnavailableException') metrics.keyUnavailable.inc({ key_id: keyIdOf(facts.keyArn), operation });
  else if (outcome === 'DependencyTimeoutException') metrics.hsmTimeouts.inc({ operation });
}
