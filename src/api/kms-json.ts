/**
 * KMS JSON 1.1 framing: `POST /` with `X-Amz-Target: TrentService.<Op>`,
 * a JSON body of at most BODY_LIMIT bytes, dispatched through the explicit
 * operation registry. Checks in AWS's order: target, authentication, body.
 */
import express, { type Router } from 'express';
import {
  IncompleteSignatureException,
  MissingAuthenticationTokenException,
  SerializationException,
  UnknownOperationException,
} from '../errors.js';
import type { Operation, OperationContext } from '../operations/operation.js';
import { parseRequest } from '../operations/schema.js';

/**
 * KMS's largest legal request is a few tens of KB (a 6144-byte blob is 8 KB
 * of base64, plus context and grant tokens); 64 KiB leaves room and no more.
 */
export const BODY_LIMIT = 64 * 1024;
const TARGET_PREFIX = 'TrentService.';

/**
 * Until SigV4 is verified (a later issue), a request must at least carry a
 * SigV4 Authorization header: unsigned requests are refused as AWS does.
 */
function checkAuthorizationPresent(header: string | undefined): void {
  if (header === undefined || header === '') throw new MissingAuthenticationTokenException();
  if (!header.startsWith('AWS4-HMAC-SHA256 ') || !/Credential=[^,\s]+/.test(header) || !/Signature=[0-9a-f]+/.test(header))
    throw new IncompleteSignatureException('Authorization header requires Credential, SignedHeaders and Signature.');
}

export function kmsJsonRouter(operations: ReadonlyMap<string, Operation>, ctx: OperationContext): Router {
  const router = express.Router();
  router.post('/', express.raw({ type: () => true, limit: BODY_LIMIT }), async (req, res) => {
    const target = req.get('x-amz-target') ?? '';
    const name = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : undefined;
    const op = name === undefined ? undefined : operations.get(name);
    if (op === undefined) throw new UnknownOperationException();
    checkAuthorizationPresent(req.get('authorization'));
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    let body: unknown = {};
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw new SerializationException('The request body is not valid JSON.');
      }
    }
    const request = parseRequest(op.schema, body);
    const response = await op.handler(request, ctx);
    res.status(200).type('application/x-amz-json-1.1').send(JSON.stringify(response));
  });
  return router;
}
