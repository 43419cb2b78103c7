/**
 * What the rotation operations share. Rotation is for SYMMETRIC_DEFAULT keys
 * only; an RSA key answers UnsupportedOperationException with no message, as
 * AWS answered EnableKeyRotation on an RSA_4096 key
 * (terraform-aws-modules/terraform-aws-kms#20: "UnsupportedOperationException:"
 * and nothing after it). State checks come first (a disabled RSA key is
 * DisabledException), with AWS's texts. Responses name the key by its bare
 * key id here, as AWS's examples for these operations do.
 */
import { DisabledException, KMSInvalidStateException, UnsupportedOperationException } from '../errors.js';
import type { KeyRecord } from '../keys/records.js';

export function assertEnabledKey(r: Pick<KeyRecord, 'keyState'>, arn: string): void {
  if (r.keyState === 'Disabled') throw new DisabledException(`${arn} is disabled.`);
  if (r.keyState === 'PendingDeletion') throw new KMSInvalidStateException(`${arn} is pending deletion.`);
}

export function assertRotatableSpec(r: Pick<KeyRecord, 'keySpec'>): void {
  if (r.keySpec !== 'SYMMETRIC_DEFAULT') throw new UnsupportedOperationException();
}

/** Enabled, symmetric: what Enable/DisableKeyRotation and RotateKeyOnDemand need. */
export function assertRotatable(r: Pick<KeyRecord, 'keyState' | 'keySpec'>, arn: string): void {
  assertEnabledKey(r, arn);
  assertRotatableSpec(r);
}

export const epochSeconds = (iso: string | Date): number => new Date(iso).getTime() / 1000;
