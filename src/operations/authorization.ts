/**
 * The permissions each operation needs, from its parsed request: the KMS
 * action (as in key policies) and the key it acts on. Resolving the key here
 * gives the same NotFoundException the handler would give.
 *
 * Placeholder until the policy work lands: no checks.
 */
import type { AuthorizationCheck } from '../auth/types.js';
import type { KeyStore } from '../keys/key-store.js';

export function checksFor(_operation: string, _request: Record<string, unknown>, _keys: KeyStore): AuthorizationCheck[] {
  return [];
}
