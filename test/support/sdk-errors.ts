/** How the AWS SDK reports a KMS error, and the assertions the SDK tests share. */
import { expect } from 'chai';

export interface SdkError {
  name: string;
  message: string;
  $fault: string;
  $metadata: { httpStatusCode?: number };
}

/** The error a call fails with; fails the test when the call succeeds. */
export async function failure(p: Promise<unknown>): Promise<SdkError> {
  try {
    await p;
  } catch (e) {
    return e as SdkError;
  }
  throw new Error('expected the call to fail, it succeeded');
}

/** A client fault as AWS gives it: the name, HTTP 400, `$fault` client, and the message when given. */
export function expectClientError(err: SdkError, name: string, message?: string): void {
  expect(err.name, `error name (message: ${err.message})`).to.equal(name);
  if (message !== undefined) expect(err.message).to.equal(message);
  expect(err.$metadata.httpStatusCode, 'HTTP status of a client fault').to.equal(400);
  expect(err.$fault).to.equal('client');
}
