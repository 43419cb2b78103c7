/**
 * Who is calling and what they may do: the seams between the HTTP framing
 * and the authentication (SigV4 against the credentials file) and
 * authorization (key policies) modules.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { KmsKey } from '../keys/key-store.js';

export interface Principal {
  /** The principal's name in the credentials file. */
  name: string;
  /** Admins may do everything on keys without a policy that says otherwise. */
  admin: boolean;
  /** The access key id the request was signed with. */
  accessKeyId: string;
}

/** A request as it arrived, for signature verification. */
export interface SignedRequest {
  method: string;
  /** The path without the query string, as sent. */
  path: string;
  /** The raw query string (without '?'), as sent. */
  query: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface Authenticator {
  /**
   * The principal who signed the request. Throws (or rejects with) MissingAuthenticationTokenException,
   * IncompleteSignatureException, InvalidSignatureException or UnrecognizedClientException.
   */
  authenticate(req: SignedRequest): Principal | Promise<Principal>;
}

/** One permission a request needs: an action, on a key (or on the account when there is none). */
export interface AuthorizationCheck {
  /** `kms:Encrypt`, `kms:ReEncryptFrom`, ... as in KMS key policies. */
  action: string;
  key?: KmsKey | undefined;
  /** The request's encryption context, for `kms:EncryptionContext:<key>` conditions. */
  encryptionContext?: Record<string, string> | undefined;
}

export interface Authorizer {
  /** Throws AccessDeniedException unless every check is allowed. */
  authorize(principal: Principal, checks: readonly AuthorizationCheck[]): void;
}

/** What the audit log records of a request, filled in as it goes through the layers. */
export interface AuditRecord {
  principal?: string;
  accessKeyId?: string;
  operation?: string;
  keyArn?: string;
  encryptionContextKeys?: string[];
}
