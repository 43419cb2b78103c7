/**
 * KMS JSON 1.1 framing: `POST /` with `X-Amz-Target: TrentService.<Op>`,
 * a JSON body of at most BODY_LIMIT bytes, dispatched through the explicit
 * operation registry. Checks in AWS's order: target, authentication
 * (SigV4), body shape, key resolution, authorization, then the operation.
 *
 * `answerKmsCall` is the whole call, independent of the HTTP server: it
 * takes the request as it arrived and returns the JSON text of the answer,
 * or throws the typed KMS error that the one error translation
 * (error-middleware.ts) turns into the envelope. kms-listener.ts serves it on
 * node:http.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { AuditRecord, Authenticator, Authorizer } from '../auth/types.js';
import { SerializationException, UnknownOperationException } from '../errors.js';
import { checksFor } from '../operations/authorization.js';
import type { Operation, OperationContext } from '../operations/operation.js';
import { parseRequest } from '../operations/schema.js';

/**
 * KMS's largest legal request is a few tens of KB (a 6144-byte blob is 8 KB
 * of base64, plus context and grant tokens); 64 KiB leaves room and no more.
 */
export const BODY_LIMIT = 64 * 1024;
const TARGET_PREFIX = 'TrentService.';

export interface AuthDeps {
  authenticator: Authenticator;
  authorizer: Authorizer;
}

/** A KMS call as it arrived. */
export interface KmsCall {
  method: string;
  /** The request target as sent: path and query string. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface KmsDeps {
  operations: ReadonlyMap<string, Operation>;
  ctx: OperationContext;
  auth: AuthDeps;
}


/**
 * Runs one KMS call and returns the answer's JSON text. `audit` is filled in
 * as the call goes (operation, principal, key ARN, context keys), so the
 * audit line and the request metrics say what happened even when it throws.
 */
export async function answerKmsCall(call: KmsCall, audit: AuditRecord, deps: KmsDeps): Promise<string> {
  const target = call.headers['x-amz-target'];
  const name = typeof target === 'string' && target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : undefined;
  const op = name === undefined ? undefined : deps.operations.get(name);
  if (name === undefined || op === undefined) throw new UnknownOperationException();
  audit.operation = name;
  const queryAt = call.url.indexOf('?');
  const principal = await deps.auth.authenticator.authenticate({
    method: call.method,
    path: queryAt < 0 ? call.url : call.url.slice(0, queryAt),
    query: queryAt < 0 ? '' : call.url.slice(queryAt + 1),
    headers: call.headers,
    body: call.body,
  });
  audit.principal = principal.name;
  audit.accessKeyId = principal.accessKeyId;
  let body: unknown = {};
  if (call.body.length > 0) {
    try {
      body = JSON.parse(call.body.toString('utf8'));
    } catch {
      throw new SerializationException('The request body is not valid JSON.');
    }
  }
  const request = parseRequest(op.schema, body);
  const { ctx } = deps;
  // Key resolution, authorization and the operation all need the key state:
  // until it is loaded from the token, every operation answers the
  // retryable KeyUnavailableException (after the target, signature and
  // body checks, which do not depend on it).
  ctx.keys.assertLoaded();
  const checks = checksFor(name, request as Record<string, unknown>, ctx.keys);
  const keyed = checks.find((c) => c.key !== undefined);
  if (keyed?.key !== undefined) audit.keyArn = keyed.key.arn;
  const context = checks.find((c) => c.encryptionContext !== undefined)?.encryptionContext;
  if (context !== undefined) audit.encryptionContextKeys = Object.keys(context).sort();
  deps.auth.authorizer.authorize(principal, checks);
  const response = await op.handler(request, ctx);
  return JSON.stringify(response);
}
