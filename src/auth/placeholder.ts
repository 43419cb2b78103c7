/**
 * Placeholders while SigV4 verification and key policies are built: the
 * first checks only that a SigV4 Authorization header is there, the second
 * allows everything.
 */
import { IncompleteSignatureException, MissingAuthenticationTokenException } from '../errors.js';
import type { Authenticator, Authorizer, Principal, SignedRequest } from './types.js';

export class HeaderShapeAuthenticator implements Authenticator {
  authenticate(req: SignedRequest): Principal {
    const header = req.headers['authorization'];
    if (header === undefined || header === '') throw new MissingAuthenticationTokenException();
    const credential = /Credential=([^/,\s]+)/.exec(header);
    if (!header.startsWith('AWS4-HMAC-SHA256 ') || credential === null || !/Signature=[0-9a-f]+/.test(header))
      throw new IncompleteSignatureException('Authorization header requires Credential, SignedHeaders and Signature.');
    return { name: 'unverified', admin: true, accessKeyId: credential[1] as string };
  }
}

export class AllowAllAuthorizer implements Authorizer {
  authorize(): void {}
}
