/**
 * The KMS errors, one class per wire name. Every layer throws these; the one
 * error middleware in src/api/ turns them into the JSON 1.1 envelope.
 * Class names are the exact `__type` strings AWS sends, so `err.name` is the
 * wire name. HTTP statuses follow AWS: client faults 400, the retryable
 * server faults 5xx (the SDKs retry those, so they must mean "try again").
 */
export abstract class KmsError extends Error {
  abstract readonly status: number;
  /** true for faults the client may retry (DependencyTimeout, KeyUnavailable, internal). */
  readonly retryable: boolean = false;
  constructor(message?: string) {
    super(message ?? '');
    this.name = new.target.name;
  }
  /** AWS leaves `message` out when it has none (InvalidCiphertextException). */
  get wireMessage(): string | undefined {
    return this.message === '' ? undefined : this.message;
  }
}

abstract class ClientFault extends KmsError {
  readonly status: number = 400;
}

abstract class ServerFault extends KmsError {
  override readonly retryable = true;
}

export class ValidationException extends ClientFault {}
export class SerializationException extends ClientFault {}
export class UnknownOperationException extends ClientFault {}
export class MissingAuthenticationTokenException extends ClientFault {
  constructor(message = 'Missing Authentication Token') {
    super(message);
  }
}
export class IncompleteSignatureException extends ClientFault {}
/** A signature that does not verify, a credential scope for another region or service, or a date outside the 5-minute window. */
export class InvalidSignatureException extends ClientFault {}
/** An access key id the gateway does not know (or a session token: there is no STS here). */
export class UnrecognizedClientException extends ClientFault {
  constructor(message = 'The security token included in the request is invalid.') {
    super(message);
  }
}
/** A policy refuses the caller (src/auth/policy.ts); KMS answers it with 400. */
export class AccessDeniedException extends ClientFault {}
export class NotFoundException extends ClientFault {}
export class CustomKeyStoreNotFoundException extends ClientFault {}
export class DisabledException extends ClientFault {}
export class KMSInvalidStateException extends ClientFault {}
export class InvalidKeyUsageException extends ClientFault {}
export class IncorrectKeyException extends ClientFault {
  constructor(
    message = 'The key ID in the request does not identify a CMK that can perform this operation.',
  ) {
    super(message);
  }
}
/** AWS sends no message for this one: it must not tell which check failed. */
export class InvalidCiphertextException extends ClientFault {
  constructor() {
    super('');
  }
}
export class InvalidGrantTokenException extends ClientFault {}
export class DryRunOperationException extends ClientFault {
  constructor() {
    super('The request would have succeeded, but the DryRun option is set.');
  }
}
export class UnsupportedOperationException extends ClientFault {}
export class AlreadyExistsException extends ClientFault {}
export class InvalidAliasNameException extends ClientFault {}
/** AWS's answer (no message) to creating or moving an alias in the reserved `alias/aws/` namespace. */
export class NotAuthorizedException extends ClientFault {}
export class InvalidArnException extends ClientFault {}
export class InvalidMarkerException extends ClientFault {}
export class LimitExceededException extends ClientFault {}
export class TagException extends ClientFault {}
export class RequestEntityTooLargeException extends ClientFault {
  override readonly status = 413;
}

export class KMSInternalException extends ServerFault {
  readonly status = 500;
  constructor(message = 'An internal error occurred.') {
    super(message);
  }
}
export class KeyUnavailableException extends ServerFault {
  readonly status = 500;
  /**
   * true when the token itself is unreachable (session, login, device or
   * module lost), false when only one key's object is missing. Token faults
   * count toward the circuit breaker; a missing key object does not. Never
   * on the wire.
   */
  readonly tokenFault: boolean;
  /**
   * true when retrying cannot help and could harm: the token refused the
   * PIN (a retry with the same PIN counts toward locking the user). The
   * gateway then stops logging in until it is restarted. Never on the wire.
   */
  readonly permanent: boolean;
  constructor(message?: string, opts: { tokenFault?: boolean; permanent?: boolean } = {}) {
    super(message);
    this.tokenFault = opts.tokenFault ?? opts.permanent ?? false;
    this.permanent = opts.permanent ?? false;
  }
}
export class DependencyTimeoutException extends ServerFault {
  readonly status = 503;
}
