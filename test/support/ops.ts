/**
 * Test support for the operations side: the Debian tools (promtool,
 * prometheus, docker-compose, pkcs11-tool) run as real processes, a
 * Prometheus server on a free loopback port, PromQL metric-name extraction
 * and the gateway's `/metrics` exposition.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SOFTHSM_MODULE, type TokenDir } from './gateway.js';

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded) and returns its exit code and output. */
export function runTool(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): ToolResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
  });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A scratch directory under the test run's temporary directory. */
export function scratchDir(prefix: string): string {
  const base = process.env['KMSGW_TEST_TMP'] ?? tmpdir();
  return mkdtempSync(join(base, `${prefix}-`));
}

/** A TCP port that was free on 127.0.0.1 a moment ago (for servers that cannot listen on port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Deletes a key object from the token behind the gateway's back, as an
 * operator (or a failing HSM) would: OpenSC's pkcs11-tool in its own
 * process, logged in with the token's PIN (passed through the environment,
 * never on the command line).
 */
export function deleteKeyObject(token: TokenDir, pkcs11Label: string, type: 'secrkey' | 'privkey' | 'pubkey' = 'secrkey'): void {
  const r = runTool(
    'pkcs11-tool',
    ['--module', SOFTHSM_MODULE, '--token-label', token.label, '--login', '--pin', 'env:KMSGW_TEST_PKCS11_PIN', '--delete-object', '--type', type, '--label', pkcs11Label],
    {
      env: {
        PATH: process.env['PATH'] ?? '',
        SOFTHSM2_CONF: token.conf,
        KMSGW_TEST_PKCS11_PIN: readFileSync(token.pinFile, 'utf8').trim(),
      },
    },
  );
  if (r.code !== 0) throw new Error(`pkcs11-tool --delete-object ${type} ${pkcs11Label} failed (${r.code}): ${r.stderr}`);
}

export interface PrometheusServer {
  url: string;
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Starts the Debian `prometheus` binary with `configYaml` on a free loopback
 * port and a throwaway TSDB, and waits until it reports ready.
 */
export async function startPrometheus(configYaml: string): Promise<PrometheusServer> {
  const dir = scratchDir('prometheus');
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, configYaml);
  mkdirSync(join(dir, 'tsdb'));
  const port = await freePort();
  const child = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '' } },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`prometheus exited (${code ?? signal}) before it was ready:\n${output}`))),
  );
  const url = `http://127.0.0.1:${port}`;
  const server: PrometheusServer = {
    url,
    child,
    logs: () => output,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
  try {
    await Promise.race([
      exited,
      waitFor('prometheus to be ready', async () => ((await fetch(`${url}/-/ready`)).status === 200 ? true : undefined), 30_000),
    ]);
  } catch (e) {
    await server.stop();
    throw e;
  }
  exited.catch(() => undefined);
  return server;
}

/** The instant-query API; the result vector as [labels, value] pairs. */
export async function promQuery(prom: PrometheusServer, query: string): Promise<Array<{ metric: Record<string, string>; value: number }>> {
  const res = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  if (body.status !== 'success' || body.data === undefined) throw new Error(`query ${query}: ${body.error ?? res.status}`);
  if (body.data.resultType !== 'vector') throw new Error(`query ${query}: expected a vector, got ${body.data.resultType}`);
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** The single value of an instant query (e.g. a `sum(...)`), or undefined while it has no result. */
export async function promValue(prom: PrometheusServer, query: string): Promise<number | undefined> {
  const r = await promQuery(prom, query);
  if (r.length > 1) throw new Error(`query ${query}: ${r.length} series, expected one`);
  return r[0]?.value;
}

/** Metric name -> type, from the `# TYPE` lines of a Prometheus text exposition. */
export function exposedMetricTypes(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/gm)) types.set(m[1] as string, m[2] as string);
  return types;
}

/**
 * Is `name`, as a query writes it, a series the exposition has: the metric
 * itself, or a histogram/summary's `_bucket`, `_sum` or `_count` series.
 */
export function isExposed(name: string, types: Map<string, string>): boolean {
  if (types.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (m === null) return false;
  const baseType = types.get(m[1] as string);
  return m[2] === 'bucket' ? baseType === 'histogram' : baseType === 'histogram' || baseType === 'summary';
}

/** PromQL words that are not metric names when not followed by `(`. */
const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'atan2',
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile',
  'inf', 'nan',
]);

/**
 * The metric names a PromQL expression selects (Grafana's `$variables` and
 * `label_values(selector, label)` allowed): string literals, label matchers
 * `{...}`, ranges `[...]` and `by/on/...(label list)` are removed first;
 * then every identifier that is not a function call (followed by `(`), a
 * keyword, an aggregation operator or part of a number is a metric name.
 */
export function metricNamesIn(expr: string): string[] {
  let e = expr.replace(/^\s*label_values\(([\s\S]*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/, '$1');
  e = e.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ');
  e = e.replace(/\{[^}]*\}/g, ' ');
  e = e.replace(/\[[^\]]*\]/g, ' ');
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1 ');
  const names = new Set<string>();
  for (const m of e.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const before = e[m.index - 1] ?? ' ';
    if (/[0-9.$]/.test(before)) continue; // 1e5, 0.5, $variable
    if (/^\s*\(/.test(e.slice(m.index + word.length))) continue; // a function or an aggregation's argument list
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names].sort();
}

/**
 * The sum of the samples of `name` whose labels include `labels`, read from
 * a /metrics text (Prometheus text format); 0 when there are none.
 */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/**
 * Resolves once the gateway at `url` has no HSM call in flight
 * (kmsgw_hsm_sessions{state="in_use"} is 0 at a scrape). After a change, a
 * gateway replaces its state mark in the background, destroying the old mark
 * object and creating a new one: a test that reads the token's objects then
 * may see either mark, or neither. tokenLabels() (token.ts) survives the
 * race (an object gone between the find and the read is left out; the crash
 * a test process once had there was pkcs11js's, patched in
 * patches/pkcs11js+2.1.7.patch), but a test that counts the token's objects
 * reads only after this. Reads by the gateway itself (its refresh rounds)
 * may start again at any time; they destroy nothing.
 */
export async function hsmIdle(url: string): Promise<void> {
  await waitFor(
    'no HSM call in flight',
    async () => (metricSum(await (await fetch(`${url}/metrics`)).text(), 'kmsgw_hsm_sessions', { state: 'in_use' }) === 0 ? true : undefined),
    10_000,
    50,
  );
}
