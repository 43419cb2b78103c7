/**
 * Per-key permissions: the config's `policies`, modelled on KMS key policies.
 *
 * A policy entry names the keys it governs (`resources`) and carries
 * statements {Sid?, Effect, Principal, Action, Condition?}. A statement
 * APPLIES to a check (one action on one key, or on the account) when all of:
 *
 * - Resource: one of its entry's `resources` matches the check's key. A
 *   resource is `*` (every key, and the account-level actions), or a pattern
 *   where `*` matches any run of characters, compared (case-sensitively) with
 *   the key's id, its ARN, each of its alias names (`alias/app-*`) and alias
 *   ARNs. A check without a key (the account-level actions kms:CreateKey,
 *   kms:ListKeys, kms:ListAliases without KeyId, kms:GenerateRandom) matches
 *   only `*`.
 * - Principal: `*`, or a list holding the caller's principal name (the
 *   credentials file's `name`, case-sensitive).
 * - Action: one of its actions matches the check's action, `*` matching any
 *   run of characters (`kms:*`, `kms:GenerateDataKey*`, `kms:ReEncrypt*`),
 *   case-insensitively as AWS compares action names.
 * - Condition: every operator's every condition key holds (AND).
 *   `kms:EncryptionContext:<k>` looks up `<k>` in the request's encryption
 *   context (the key name case-insensitively, as AWS treats condition key
 *   names; the value case-sensitively). StringEquals: the value equals one of
 *   the listed values; StringLike: it matches one of the listed patterns (`*`
 *   any run, `?` one character). A list is any-of. A context key absent from
 *   the request (or a request with no context at all, such as DescribeKey)
 *   fails the condition, so a conditional Allow does not allow it and a
 *   conditional Deny does not deny it (AWS's rule for a missing condition
 *   key without `...IfExists`).
 *
 * Evaluation of each check, as AWS evaluates policies:
 * 1. a Deny that applies refuses (an explicit deny wins over every Allow);
 * 2. otherwise an Allow that applies allows;
 * 3. otherwise the default: principals marked `admin` in the credentials file
 *    are allowed, everyone else is refused. (So a key without any policy is
 *    admin-only, and only a Deny keeps an admin out.)
 * A request needs every one of its checks allowed (ReEncrypt needs
 * kms:ReEncryptFrom on the source key and kms:ReEncryptTo on the destination).
 *
 * Refusals are AccessDeniedException (400) in AWS's message shape, the
 * principal as an IAM user ARN of the gateway's account and the resource the
 * key ARN (`*` for account-level actions):
 *   User: arn:aws:iam::111122223333:user/app is not authorized to perform:
 *   kms:Decrypt on resource: arn:aws:kms:...:key/<id> because no
 *   resource-based policy allows the kms:Decrypt action
 * or `... with an explicit deny in a resource-based policy` for a Deny. The
 * gateway's policies on keys play the part of KMS key policies, which IAM
 * calls resource-based; for the account-level actions, which AWS authorizes
 * by IAM (identity-based) policies only, the text says `identity-based` and
 * the resource is `*`. Sources: the IAM User Guide's "Troubleshooting access
 * denied error messages" (both phrases), and recorded AWS answers such as
 * "... kms:DescribeKey on resource: arn:aws:kms:...:key/... because no
 * resource-based policy allows the kms:DescribeKey action"
 * (jbrt/ec2cryptomatic#26) and "... kms:CreateKey on resource: * because no
 * identity-based policy allows the kms:CreateKey action"
 * (aws-ia/terraform-aws-control_tower_account_factory#569).
 */
import { AccessDeniedException } from '../errors.js';
import type { PolicyConfig, PolicyStatement } from '../config/config.js';
import type { KmsKey } from '../keys/key-store.js';
import type { AuthorizationCheck, Authorizer, Principal } from './types.js';

const CONTEXT_PREFIX = 'kms:EncryptionContext:';

/**
 * A wildcard pattern: `*` matches any run of characters, `?` one character
 * where asked (StringLike). Matched by the greedy two-pointer algorithm, in
 * O(pattern x text) at worst: request values are the caller's to choose, so
 * no backtracking regular expression is built from a pattern. Compared by
 * code point.
 */
class Wildcard {
  private readonly pattern: string[];
  constructor(
    pattern: string,
    private readonly opts: { question: boolean; ignoreCase: boolean },
  ) {
    this.pattern = Array.from(opts.ignoreCase ? pattern.toLowerCase() : pattern);
  }

  test(value: string): boolean {
    const p = this.pattern;
    const s = Array.from(this.opts.ignoreCase ? value.toLowerCase() : value);
    let pi = 0;
    let si = 0;
    let star = -1;
    let resume = 0;
    while (si < s.length) {
      if (pi < p.length && p[pi] !== '*' && (p[pi] === s[si] || (this.opts.question && p[pi] === '?'))) {
        pi++;
        si++;
      } else if (pi < p.length && p[pi] === '*') {
        star = pi++;
        resume = si;
      } else if (star >= 0) {
        pi = star + 1;
        si = ++resume;
      } else return false;
    }
    while (pi < p.length && p[pi] === '*') pi++;
    return pi === p.length;
  }
}

interface CompiledCondition {
  /** The encryption context key, lower-cased (condition key names are case-insensitive). */
  contextKey: string;
  /** Any-of: the condition holds when one of them accepts one of the request's values. */
  accepts: Array<(value: string) => boolean>;
}

interface CompiledStatement {
  sid: string | undefined;
  effect: 'Allow' | 'Deny';
  principals: '*' | ReadonlySet<string>;
  actions: Wildcard[];
  conditions: CompiledCondition[];
}

interface CompiledEntry {
  /** undefined: `*`, every key and the account. */
  resources: Wildcard[] | undefined;
  statements: CompiledStatement[];
}

function compileStatement(s: PolicyStatement): CompiledStatement {
  const conditions: CompiledCondition[] = [];
  for (const [operator, block] of Object.entries(s.Condition ?? {})) {
    for (const [conditionKey, value] of Object.entries(block ?? {})) {
      const values = Array.isArray(value) ? value : [value];
      const accepts =
        operator === 'StringLike'
          ? values.map((v) => {
              const w = new Wildcard(v, { question: true, ignoreCase: false });
              return (x: string) => w.test(x);
            })
          : values.map((v) => (x: string) => x === v);
      conditions.push({ contextKey: conditionKey.slice(CONTEXT_PREFIX.length).toLowerCase(), accepts });
    }
  }
  return {
    sid: s.Sid,
    effect: s.Effect,
    principals: s.Principal === '*' ? '*' : new Set(s.Principal),
    actions: s.Action.map((a) => new Wildcard(a, { question: false, ignoreCase: true })),
    conditions,
  };
}

function compileEntry(p: PolicyConfig): CompiledEntry {
  return {
    resources: p.resources.includes('*') ? undefined : p.resources.map((r) => new Wildcard(r, { question: false, ignoreCase: false })),
    statements: p.statements.map(compileStatement),
  };
}

/** The names a resource pattern is compared with: key id, key ARN, alias names and alias ARNs. */
function keyNames(key: KmsKey): string[] {
  const arnPrefix = key.arn.slice(0, key.arn.length - `key/${key.keyId}`.length);
  return [key.keyId, key.arn, ...key.aliases, ...key.aliases.map((a) => arnPrefix + a)];
}

function conditionsHold(conditions: readonly CompiledCondition[], context: Record<string, string> | undefined): boolean {
  if (conditions.length === 0) return true;
  const entries = Object.entries(context ?? {});
  return conditions.every((c) => {
    const values = entries.filter(([k]) => k.toLowerCase() === c.contextKey).map(([, v]) => v);
    return values.some((v) => c.accepts.some((accept) => accept(v)));
  });
}

/** What the policies say of one check. */
export type Decision =
  | { allowed: true; by: 'allow' | 'admin-default'; sid?: string | undefined }
  | { allowed: false; by: 'explicit-deny' | 'implicit-deny'; sid?: string | undefined };

export class PolicyAuthorizer implements Authorizer {
  private readonly entries: CompiledEntry[];

  constructor(
    policies: readonly PolicyConfig[],
    private readonly accountId: string,
  ) {
    this.entries = policies.map(compileEntry);
  }

  authorize(principal: Principal, checks: readonly AuthorizationCheck[]): void {
    for (const check of checks) {
      const decision = this.decide(principal, check);
      if (!decision.allowed) throw this.denied(principal, check, decision.by);
    }
  }

  /** Deny that applies, else Allow that applies, else admin-only. */
  decide(principal: Principal, check: AuthorizationCheck): Decision {
    let allowedBy: string | undefined | null = null;
    for (const entry of this.entries) {
      if (!this.resourceMatches(entry, check.key)) continue;
      for (const s of entry.statements) {
        if (!this.applies(s, principal, check)) continue;
        if (s.effect === 'Deny') return { allowed: false, by: 'explicit-deny', sid: s.sid };
        if (allowedBy === null) allowedBy = s.sid;
      }
    }
    if (allowedBy !== null) return { allowed: true, by: 'allow', sid: allowedBy };
    return principal.admin ? { allowed: true, by: 'admin-default' } : { allowed: false, by: 'implicit-deny' };
  }

  private resourceMatches(entry: CompiledEntry, key: KmsKey | undefined): boolean {
    if (entry.resources === undefined) return true;
    if (key === undefined) return false;
    const names = keyNames(key);
    return entry.resources.some((r) => names.some((n) => r.test(n)));
  }

  private applies(s: CompiledStatement, principal: Principal, check: AuthorizationCheck): boolean {
    if (s.principals !== '*' && !s.principals.has(principal.name)) return false;
    if (!s.actions.some((a) => a.test(check.action))) return false;
    return conditionsHold(s.conditions, check.encryptionContext);
  }

  private denied(principal: Principal, check: AuthorizationCheck, by: 'explicit-deny' | 'implicit-deny'): AccessDeniedException {
    const user = `arn:aws:iam::${this.accountId}:user/${principal.name}`;
    const resource = check.key === undefined ? '*' : check.key.arn;
    const policyType = check.key === undefined ? 'identity-based' : 'resource-based';
    const why =
      by === 'explicit-deny'
        ? `with an explicit deny in ${policyType === 'identity-based' ? 'an' : 'a'} ${policyType} policy`
        : `because no ${policyType} policy allows the ${check.action} action`;
    return new AccessDeniedException(`User: ${user} is not authorized to perform: ${check.action} on resource: ${resource} ${why}`);
  }
}
