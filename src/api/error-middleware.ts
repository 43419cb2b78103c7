/**
 * The one place a thrown error becomes an HTTP answer: the KMS JSON 1.1
 * error envelope, `{"__type": "<Name>", "message": "..."}` in the body and
 * the same name in `X-Amzn-ErrorType` (botocore reads the body, the JS SDK
 * the header first). Anything that is not a KmsError is a bug of ours:
 * KMSInternalException, logged without request data. (Request bodies are
 * read by the KMS listener, which throws KMS errors itself; express parses
 * no body, so no body-parser errors arrive here.)
 */
import type { ErrorRequestHandler } from 'express';
import { KmsError, KMSInternalException } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * The KMS error a thrown value answers as; logs our own bugs (without
 * request data) and every server fault.
 */
export function kmsErrorOf(err: unknown, log: Logger, requestId: unknown, target: unknown): KmsError {
  let kms: KmsError;
  if (err instanceof KmsError) kms = err;
  else {
    log.error({ err: { name: (err as Error)?.name, message: (err as Error)?.message, stack: (err as Error)?.stack }, requestId }, 'unexpected error');
    kms = new KMSInternalException();
  }
  if (kms.status >= 500) log.warn({ errorType: kms.name, requestId, target }, 'server fault');
  return kms;
}

/** The envelope's JSON text. */
export function errorBody(kms: KmsError): string {
  const body: Record<string, string> = { __type: kms.name };
  if (kms.wireMessage !== undefined) body['message'] = kms.wireMessage;
  return JSON.stringify(body);
}

/** The same translation for what express serves (everything but `POST /`, see kms-listener.ts). */
export function errorMiddleware(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const kms = kmsErrorOf(err, log, res.getHeader('x-amzn-RequestId'), req.get('x-amz-target'));
    res
      .status(kms.status)
      .set('X-Amzn-ErrorType', kms.name)
      .type('application/x-amz-json-1.1')
      .send(errorBody(kms));
  };
}
