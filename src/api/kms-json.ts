/**
 * KMS JSON 1.1 framing: `POST /` with `X-Amz-Target: TrentService.<Op>`,
 * a JSON body of at most BODY_LIMIT bytes, dispatched through the explicit
 * operation registry. Checks in AWS's order: target, authentication
 * (SigV4), body shape, key resolution, authorization, then the operation.
 */
import express, { type Response, type Router } from 'express';
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

/** The audit record of this request (see api/audit.ts), filled in as the request goes. */
export function auditOf(res: Response): AuditRecord {
  const locals = res.locals as { audit?: AuditRecord };
  locals.audit ??= {};
  return locals.audit;
}

export function kmsJsonRouter(operations: ReadonlyMap<string, Operation>, ctx: OperationContext, auth: AuthDeps): Router {
  const router = express.Router();
  router.post('/', express.raw({ type: () => true, limit: BODY_LIMIT }), async (req, res) => {
    const audit = auditOf(res);
    const target = req.get('x-amz-target') ?? '';
    const name = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : undefined;
    const op = name === undefined ? undefined : operations.get(name);
    if (op === undefined) throw new UnknownOperationException();
    audit.operation = name;
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const queryAt = req.originalUrl.indexOf('?');
    const principal = await auth.authenticator.authenticate({
      method: req.method,
      path: queryAt < 0 ? req.originalUrl : req.originalUrl.slice(0, queryAt),
      query: queryAt < 0 ? '' : req.originalUrl.slice(queryAt + 1),
      headers: req.headers,
      body: raw,
    });
    audit.principal = principal.name;
    audit.accessKeyId = principal.accessKeyId;
    let body: unknown = {};
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new SerializationException('The request body is not valid JSON.');
      }
    }
    const request = parseRequest(op.schema, body);
    // Key resolution, authorization and the operation all need the key state:
    // until it is loaded from the token, every operation answers the
    // retryable KeyUnavailableException (after the target, signature and
    // body checks, which do not depend on it).
    ctx.keys.assertLoaded();
    const checks = checksFor(name as string, request as Record<string, unknown>, ctx.keys);
    const keyed = checks.find((c) => c.key !== undefined);
    if (keyed?.key !== undefined) audit.keyArn = keyed.key.arn;
    const context = checks.find((c) => c.encryptionContext !== undefined)?.encryptionContext;
    if (context !== undefined) audit.encryptionContextKeys = Object.keys(context).sort();
    auth.authorizer.authorize(principal, checks);
    const response = await op.handler(request, ctx);
    res.status(200).type('application/x-amz-json-1.1').send(JSON.stringify(response));
  });
  return router;
}
