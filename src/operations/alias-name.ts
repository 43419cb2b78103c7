/**
 * What CreateAlias, UpdateAlias and DeleteAlias share: the AliasName member
 * (the model's 1..256 and `^[a-zA-Z0-9:/_-]+$`, checked by the schema) and
 * the service's own checks after it, in AWS's order:
 * - no `alias/` prefix: ValidationException with AWS's text (recorded
 *   against AWS in localstack's test_kms.snapshot.json, test_create_alias);
 * - the reserved `alias/aws/` namespace: NotAuthorizedException without a
 *   message (moto's and local-kms's answer; CreateAlias and UpdateAlias);
 * - a `:`, which the model's pattern lets through: ValidationException
 *   "<name> contains invalid characters for an alias" (moto).
 * And TargetKeyId must name a key, not an alias: ValidationException
 * "Aliases must refer to keys. Not aliases" (moto, from AWS).
 */
import { NotAuthorizedException, ValidationException } from '../errors.js';
import { awsPatternString } from './schema.js';

export const ALIAS_NAME_PATTERN = /^[a-zA-Z0-9:/_-]+$/;

export const aliasName = () => awsPatternString(1, 256, ALIAS_NAME_PATTERN);

const PREFIX = 'alias/';
const RESERVED = 'alias/aws/';

export function assertAliasName(name: string, opts: { reserved: 'refuse' | 'allow' }): void {
  if (!name.startsWith(PREFIX))
    throw new ValidationException(
      'Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html',
    );
  if (opts.reserved === 'refuse' && name.startsWith(RESERVED)) throw new NotAuthorizedException();
  if (name.includes(':')) throw new ValidationException(`${name} contains invalid characters for an alias`);
  // The gateway's own rule (AWS's answer is not recorded): an alias needs a name after the prefix.
  if (name === PREFIX) throw new ValidationException('Alias must have a name after the prefix "alias/".');
}

/** An alias name or alias ARN given where a key is required. */
export function assertNamesAKey(targetKeyId: string): void {
  if (targetKeyId.startsWith(PREFIX) || /^arn:[^:]*:kms:[^:]*:[^:]*:alias\//.test(targetKeyId))
    throw new ValidationException('Aliases must refer to keys. Not aliases');
}
