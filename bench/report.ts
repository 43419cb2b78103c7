/**
 * The benchmark's result document and what is rendered from it: the issue's
 * target verdicts, the Markdown report and a small SVG bar chart. Pure.
 */
import type { RssSummary, WrkResult } from './stats.js';
import { errorCount } from './stats.js';

export interface TokenRate {
  ops: number;
  seconds: number;
  rate: number;
}

export interface TokenLimits {
  aesOneProcess: TokenRate;
  aesProcesses: { processes: number; rate: number; perProcess: TokenRate[] };
  /** The one-process rate on an in-token session copy of the key (hsm.sessionKeyCopies): not the limit the targets use. */
  aesCopyOneProcess?: TokenRate;
  aesGuarded: TokenRate & { inFlight: number };
  rsaDecryptOneProcess: TokenRate;
  /**
   * The limits the ratios use, read twice: before the gateway's runs and
   * again after the gateway stopped; the fields above hold the higher of
   * the two readings. Absent in results written before the second reading.
   */
  readings?: { start: TokenReading; end: TokenReading };
}

/** One reading of the limits the ratios divide by (ops/s). */
export interface TokenReading {
  aesOneProcess: number;
  aesProcesses: number;
  rsaDecryptOneProcess: number;
}

/** One pair of the key-count comparison: the few-key and the many-key side, and which was measured first. */
export interface KeyPair<T> {
  first: 'few' | 'many';
  few: T;
  many: T;
}

export interface ProcessPeak {
  pid: number;
  role: 'primary' | 'worker';
  peakMb: number;
}

export interface LoadRun extends WrkResult {
  workload: string;
  connections: number;
  /** KMS keys on the token during the run. */
  keys: number;
  gatewayCpuPercent: number;
  wrkCpuPercent: number;
  processes: ProcessPeak[];
  /** req/s over the token's one-process and P-process limit of the workload's kind; absent where no token limit is comparable. */
  ratioOneProcess?: number;
  ratioProcesses?: number;
}

/** The reference servers of bench/reference-server.ts, in the order the bench runs and reports them. */
export const REFERENCE_MODES = ['software', 'hsm-inline', 'hsm-layer'] as const;
export type ReferenceMode = (typeof REFERENCE_MODES)[number];

/** Microseconds of CPU (all cores, all of the server's processes) per answered request. */
export function cpuMicrosPerRequest(cpuPercent: number, rps: number): number {
  return rps > 0 ? (cpuPercent / 100) * 1e6 / rps : NaN;
}

/** A bare node:http server (bench/reference-server.ts) under the gateway's Encrypt 4 KB load. */
export interface ReferenceRun extends WrkResult {
  mode: ReferenceMode;
  connections: number;
  cpuPercent: number;
  wrkCpuPercent: number;
}

export interface SoakProcess extends RssSummary {
  pid: number;
  role: 'primary' | 'worker';
  samples: { t: number; mb: number }[];
}

export interface Verdict {
  target: string;
  measured: string;
  wanted: string;
  pass: boolean;
}

export interface BenchResult {
  startedAt: string;
  finishedAt: string;
  settings: { seconds: number; warmUpSeconds: number; workloadWarmUpSeconds?: number; soakSeconds: number; keys: number; connections: number[]; quick: boolean; mix: string };
  machine: Record<string, string | number>;
  token: TokenLimits;
  /** Absent in results written before the reference servers were measured. */
  references?: ReferenceRun[];
  runs: LoadRun[];
  keyScaling: {
    keysBefore: number;
    keysAfter: number;
    createSeconds: number;
    settleSeconds?: number;
    createFailures: number;
    before: LoadRun;
    /** The first run after the fill, before the warm-up `after` gets (not what the ratio uses). */
    rightAfterFill?: LoadRun;
    after: LoadRun;
    /**
     * Encrypt 4 KB runs alternating between this gateway (`many`, keysAfter
     * keys) and a second gateway started on a fresh token with keysBefore
     * keys (`few`), one pair after the other, the order flipped each pair.
     * Absent in results written before the paired runs.
     */
    pairs?: KeyPair<LoadRun>[];
    /** With pairs: the median of the pairs' many/few ratios; without: after / before. */
    ratio: number;
    /**
     * The token alone on the same two tokens, taking turns the same way
     * (token-limit aes-copy-state children, after both gateways stopped),
     * and the median of its many/few ratios. Absent in older results.
     */
    tokenPairs?: KeyPair<TokenRate>[];
    tokenRatio?: number;
  };
  memory: { underLoad: ProcessPeak[]; soak: { run: LoadRun; processes: SoakProcess[] } };
  targets: Verdict[];
  files: { json: string; markdown: string; svg?: string };
}

/** Issue 5's thresholds. */
export const TARGETS = {
  encryptVsOneProcess: 0.6,
  encryptP99Ms: 10,
  rsaDecryptVsOneProcess: 1.6,
  keyScaling: 0.9,
  rssMb: 200,
  /** "Flat over the soak": least-squares RSS slope of every process at most this. */
  soakSlopeMbPerMin: 2,
} as const;

export function findRun(runs: LoadRun[], workload: string, connections: number): LoadRun | undefined {
  return runs.find((r) => r.workload === workload && r.connections === connections);
}

const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
/**
 * A ratio judged against `threshold`, to 2 decimals unless those would round
 * a miss up to the threshold (0.896 against 0.9 printed "0.90" beside FAIL):
 * then to 3.
 */
const fRatio = (n: number, threshold: number) => (Number.isFinite(n) && n < threshold && Number(n.toFixed(2)) >= threshold ? n.toFixed(3) : f2(n));

type Inputs = Pick<BenchResult, 'token' | 'runs' | 'keyScaling' | 'memory'>;

export function verdicts({ token, runs, keyScaling, memory }: Inputs): Verdict[] {
  const enc = findRun(runs, 'Encrypt 4 KB', 32);
  const rsa = findRun(runs, 'Decrypt RSA-2048', 32);
  const encRatio = (enc?.rps ?? NaN) / token.aesOneProcess.rate;
  const rsaRatio = (rsa?.rps ?? NaN) / token.rsaDecryptOneProcess.rate;
  const peaks = memory.underLoad.concat(memory.soak.processes.map((p) => ({ pid: p.pid, role: p.role, peakMb: p.peakMb })));
  const peak = Math.max(...peaks.map((p) => p.peakMb));
  const steepest = memory.soak.processes.reduce<SoakProcess | undefined>((a, p) => (a === undefined || p.slopeMbPerMin > a.slopeMbPerMin ? p : a), undefined);
  const slope = steepest?.slopeMbPerMin ?? NaN;
  const p99 = enc?.latencyMs.p99 ?? NaN;
  return [
    {
      target: 'Encrypt 4 KB SYMMETRIC_DEFAULT, 32 connections, SigV4 checked',
      measured: `${f0(enc?.rps ?? NaN)} req/s = ${fRatio(encRatio, TARGETS.encryptVsOneProcess)} x token one-process limit (${f0(token.aesOneProcess.rate)}/s); p99 ${f1(p99)} ms`,
      wanted: `>= ${TARGETS.encryptVsOneProcess} x, p99 < ${TARGETS.encryptP99Ms} ms`,
      pass: encRatio >= TARGETS.encryptVsOneProcess && p99 < TARGETS.encryptP99Ms,
    },
    {
      target: 'Decrypt RSA-2048 OAEP-SHA-256, 32 connections',
      measured: `${f0(rsa?.rps ?? NaN)} req/s = ${fRatio(rsaRatio, TARGETS.rsaDecryptVsOneProcess)} x token one-process rate (${f0(token.rsaDecryptOneProcess.rate)}/s)`,
      wanted: `>= ${TARGETS.rsaDecryptVsOneProcess} x`,
      pass: rsaRatio >= TARGETS.rsaDecryptVsOneProcess,
    },
    {
      target: `Encrypt 4 KB at 32 connections, ${keyScaling.keysAfter} keys vs ${keyScaling.keysBefore}`,
      measured:
        keyScaling.pairs === undefined || keyScaling.pairs.length === 0
          ? `${f0(keyScaling.after.rps)} / ${f0(keyScaling.before.rps)} req/s = ${fRatio(keyScaling.ratio, TARGETS.keyScaling)}`
          : `median of ${keyScaling.pairs.length} alternating pairs ${fRatio(keyScaling.ratio, TARGETS.keyScaling)} (${keyScaling.pairs.map((p) => f2(p.many.rps / p.few.rps)).join(', ')})` +
            (keyScaling.tokenRatio === undefined ? '' : `; the token alone ${f2(keyScaling.tokenRatio)}`),
      wanted: `>= ${TARGETS.keyScaling}`,
      pass: keyScaling.ratio >= TARGETS.keyScaling,
    },
    {
      target: `RSS per process under load, and over a ${memory.soak.run.seconds.toFixed(0)} s soak`,
      measured: `peak ${f1(peak)} MB; steepest soak slope ${f1(slope)} ± ${f1(steepest?.slopeSeMbPerMin ?? NaN)} MB/min`,
      wanted: `< ${TARGETS.rssMb} MB, slope <= ${TARGETS.soakSlopeMbPerMin} MB/min`,
      pass: peak < TARGETS.rssMb && slope <= TARGETS.soakSlopeMbPerMin,
    },
  ];
}

/**
 * What a throughput target leaves the server per request, from this run's
 * own figures: at the target's rate, every cycle of the machine's cores
 * (the most generous reading: the gateway and wrk together used a little
 * less) divided among the requests, less wrk's measured CPU per request,
 * less the token's own CPU per operation (the one-process rate back to
 * back; two processes scale almost 2x, so it is also the cost per
 * operation when both work). What is left pays for everything else: the
 * HTTP stack, SigV4, JSON and schema, key resolution, the hand-off to the
 * lanes, the audit line and the metrics. Set beside what the gateway and
 * the bare node:http server spent, it says whether a target is in reach of
 * any server of this design on this machine, not only of this code.
 */
export interface TargetBudget {
  workload: string;
  /** The rate the target asks for (its ratio times the token rate it is judged against). */
  targetRps: number;
  /** CPU us per request at that rate with all the cores busy. */
  machineMicros: number;
  /** wrk's CPU us per request in the gateway's run of the workload. */
  wrkMicros: number;
  /** The token's own CPU us per operation, and what it was read from. */
  tokenMicros: number;
  tokenSource: string;
  /** machineMicros - wrkMicros - tokenMicros: what everything else may cost. */
  besideTokenMicros: number;
  /** What the gateway spent beside the token (its CPU us per request less tokenMicros). */
  gatewayBesideTokenMicros: number;
  /** What the bare node:http software reference spent per request (HTTP stack and AES in node:crypto, no token). */
  bareHttpMicros?: number;
  /** Encrypt 4 KB only: what the bare server sealing through the lanes (hsm-layer reference) spent beside the token. */
  bareLanesBesideTokenMicros?: number;
}

export function targetBudgets(r: Pick<BenchResult, 'machine' | 'token' | 'runs' | 'references'>): TargetBudget[] {
  const cores = Number(r.machine['cores']);
  const bare = r.references?.find((x) => x.mode === 'software');
  const bareHttpMicros = bare === undefined ? undefined : cpuMicrosPerRequest(bare.cpuPercent, bare.rps);
  const lanes = r.references?.find((x) => x.mode === 'hsm-layer');
  // The gateway's default config seals on session copies; where the run read their rate, the cheaper of the two is the generous choice.
  const aesToken = r.token.aesCopyOneProcess ?? r.token.aesOneProcess;
  const specs = [
    {
      workload: 'Encrypt 4 KB',
      targetRps: TARGETS.encryptVsOneProcess * r.token.aesOneProcess.rate,
      tokenRate: aesToken.rate,
      tokenSource: r.token.aesCopyOneProcess === undefined ? 'AES-GCM 4 KB on the key object, one process' : 'AES-GCM 4 KB on a session copy, one process',
    },
    {
      workload: 'Decrypt RSA-2048',
      targetRps: TARGETS.rsaDecryptVsOneProcess * r.token.rsaDecryptOneProcess.rate,
      tokenRate: r.token.rsaDecryptOneProcess.rate,
      tokenSource: 'RSA-2048 decrypt, one process',
    },
  ];
  const out: TargetBudget[] = [];
  for (const spec of specs) {
    const run = findRun(r.runs, spec.workload, 32);
    if (run === undefined || !(cores > 0) || !(spec.tokenRate > 0) || !(run.rps > 0)) continue;
    const machineMicros = (cores * 1e6) / spec.targetRps;
    const wrkMicros = cpuMicrosPerRequest(run.wrkCpuPercent, run.rps);
    const tokenMicros = 1e6 / spec.tokenRate;
    out.push({
      workload: spec.workload,
      targetRps: spec.targetRps,
      machineMicros,
      wrkMicros,
      tokenMicros,
      tokenSource: spec.tokenSource,
      besideTokenMicros: machineMicros - wrkMicros - tokenMicros,
      gatewayBesideTokenMicros: cpuMicrosPerRequest(run.gatewayCpuPercent, run.rps) - tokenMicros,
      ...(bareHttpMicros === undefined ? {} : { bareHttpMicros }),
      // The reference servers serve the Encrypt 4 KB load only.
      ...(lanes === undefined || spec.workload !== 'Encrypt 4 KB' ? {} : { bareLanesBesideTokenMicros: cpuMicrosPerRequest(lanes.cpuPercent, lanes.rps) - tokenMicros }),
    });
  }
  return out;
}

function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

const processName = (p: { pid: number; role: string }) => `${p.role} ${p.pid}`;

export function renderMarkdown(r: BenchResult): string {
  const { token, machine, settings } = r;
  const P = token.aesProcesses.processes;
  const out: string[] = [];
  out.push(`# kms-hsm-gateway benchmark, ${r.startedAt}`);
  out.push(
    `Machine: ${machine['cores']} cores (${machine['cpuModel']}), Node ${machine['node']}, SoftHSM2 ${machine['softhsm']}, ` +
      `${machine['wrk']}, commit ${machine['commit']}, KMSGW_WORKERS ${machine['kmsgwWorkers']}. ` +
      `Runs of ${settings.seconds} s${settings.quick ? ' (BENCH_QUICK: a smoke run, not a measurement)' : ''}; ` +
      `wrk -t2, keep-alive, pre-signed SigV4 requests replayed, after a ${settings.warmUpSeconds} s warm-up with the mix` +
      `${settings.workloadWarmUpSeconds ? ` and ${settings.workloadWarmUpSeconds} s of each workload before its run` : ''}; load generator on the same machine.`,
  );
  out.push('## Token limits (gateway stopped, no HTTP)');
  out.push(
    table(
      ['measurement', 'ops/s'],
      [
        ['token one-process limit: AES-256-GCM encrypt 4 KB, Pkcs11Hsm, sync, back to back', f0(token.aesOneProcess.rate)],
        [`token ${P}-process limit: the same in ${P} processes at once (sum)`, f0(token.aesProcesses.rate)],
        ...(token.aesCopyOneProcess === undefined
          ? []
          : [['token one-process rate on an in-token session copy of the key (hsm.sessionKeyCopies, on in config/default.json; not the limit the ratios use)', f0(token.aesCopyOneProcess.rate)]]),
        [`GuardedHsm (worker-thread lanes, the gateway's path, the config's sessionKeyCopies), ${token.aesGuarded.inFlight} in flight, one process`, f0(token.aesGuarded.rate)],
        ['token RSA-2048 decrypt one-process rate (OAEP-SHA-256)', f0(token.rsaDecryptOneProcess.rate)],
      ],
    ),
  );
  if (token.readings !== undefined) {
    const { start, end } = token.readings;
    out.push(
      `The limits the ratios divide by were read twice, before the gateway's runs and again after the gateway stopped ` +
        `(AES one-process ${f0(start.aesOneProcess)} then ${f0(end.aesOneProcess)}/s, ${P}-process ${f0(start.aesProcesses)} then ${f0(end.aesProcesses)}/s, ` +
        `RSA-2048 decrypt ${f0(start.rsaDecryptOneProcess)} then ${f0(end.rsaDecryptOneProcess)}/s); the table and every ratio use the higher reading. ` +
        `The machine's speed drifts over a run, and a reading taken in a slow spell would flatter every ratio.`,
    );
  }
  if (r.references !== undefined && r.references.length > 0) {
    const enc = findRun(r.runs, 'Encrypt 4 KB', 32);
    out.push(`## Reference servers (bare node:http, ${P} processes, the same Encrypt 4 KB load at 32 connections)`);
    const what: Record<ReferenceMode, string> = {
      software: "AES-256-GCM in node:crypto (no HSM: a software KMS emulator's work)",
      'hsm-inline': 'the token called synchronously on the event loop (no deadline possible)',
      'hsm-layer': "the gateway's HSM layer (GuardedHsm lanes) on the token",
    };
    // One row per server, the gateway's own last: the same columns, so the CPU per request reads as a ladder.
    const row = (server: string, x: WrkResult, cpuPercent: number, wrkCpuPercent: number, gatewayOverThis: string) => [
      server,
      f0(x.rps),
      f1(x.latencyMs.p50),
      f1(x.latencyMs.p99),
      String(errorCount(x)),
      f0(cpuPercent),
      f0(cpuMicrosPerRequest(cpuPercent, x.rps)),
      f0(wrkCpuPercent),
      f2(x.rps / token.aesOneProcess.rate),
      gatewayOverThis,
    ];
    out.push(
      table(
        ['server', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU %', 'server CPU us/req', 'wrk CPU %', 'x token 1-proc limit', 'gateway Encrypt 4 KB / this'],
        [
          ...r.references.map((x) => row(what[x.mode], x, x.cpuPercent, x.wrkCpuPercent, enc === undefined ? '' : f2(enc.rps / x.rps))),
          ...(enc === undefined ? [] : [row('the gateway (Encrypt 4 KB above)', enc, enc.gatewayCpuPercent, enc.wrkCpuPercent, '')]),
        ],
      ),
    );
    out.push(
      'No reference checks SigV4, validates the request, resolves a key, writes an audit line or counts a metric: ' +
        'they bound what the gateway can reach on this machine with its HTTP stack alone, with the token called where the event loop waits for it, ' +
        'and with the token behind the lane threads that give every call its deadline. ' +
        'Read down the CPU per request column: each step adds what the next layer costs.',
    );
  }
  out.push(`## Gateway (${r.runs[0]?.keys ?? '?'} KMS keys on the token)`);
  const ratio = (n: number | undefined) => (n === undefined ? '' : f2(n));
  const loadRows = (runs: LoadRun[]) =>
    runs.map((x) => [
      x.workload,
      String(x.connections),
      f0(x.rps),
      f1(x.latencyMs.p50),
      f1(x.latencyMs.p90),
      f1(x.latencyMs.p99),
      f1(x.latencyMs.max),
      String(errorCount(x)),
      f0(x.gatewayCpuPercent),
      f0(x.wrkCpuPercent),
      f0(Math.max(...x.processes.map((p) => p.peakMb))),
      ratio(x.ratioOneProcess),
      ratio(x.ratioProcesses),
    ]);
  const loadHead = ['workload', 'conns', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'gateway CPU %', 'wrk CPU %', 'peak RSS MB (largest process)', 'x 1-proc limit', `x ${P}-proc limit`];
  out.push(table(loadHead, loadRows(r.runs)));
  out.push(
    `Errors: HTTP >= 400 answers plus socket errors. CPU: % of one core, summed over the gateway's processes. ` +
      `Ratios: symmetric workloads over the AES one-process and ${P}-process limits, RSA-2048 Decrypt over the token's RSA one-process rate. ` +
      `Mix: ${settings.mix}.`,
  );
  const k = r.keyScaling;
  out.push('## Keys on the token');
  out.push(
    `${k.keysAfter - k.keysBefore} keys created with CreateKey in ${f1(k.createSeconds)} s` +
      `${k.createFailures > 0 ? ` (${k.createFailures} CreateKey calls failed and were tried again)` : ''}` +
      `${k.settleSeconds === undefined ? '' : `; the gateway was idle again ${f1(k.settleSeconds)} s later (its workers' refresh rounds list the records once more)`}` +
      `; then Encrypt 4 KB at 32 connections again${k.rightAfterFill === undefined ? '' : `, at once and after a warm-up of ${r.settings.warmUpSeconds} s like the one the ${k.keysBefore}-key run had`}:`,
  );
  const keyRuns = k.rightAfterFill === undefined ? [k.before, k.after] : [k.before, k.rightAfterFill, k.after];
  const keyLabels = k.rightAfterFill === undefined ? [String(k.keysBefore), String(k.keysAfter)] : [String(k.keysBefore), `${k.keysAfter}, right after the fill`, `${k.keysAfter}, warmed`];
  out.push(table(['keys', ...loadHead], loadRows(keyRuns).map((row, i) => [keyLabels[i] ?? '', ...row])));
  const sequential = `${f2(k.after.rps / k.before.rps)}${k.rightAfterFill === undefined ? '' : ` (right after the fill: ${f2(k.rightAfterFill.rps / k.before.rps)})`}`;
  if (k.pairs === undefined || k.pairs.length === 0) out.push(`Ratio ${k.keysAfter} keys / ${k.keysBefore} keys: ${sequential}.`);
  else {
    out.push(
      `The two runs above are minutes apart, and on this machine one run moves 20-30% against the next. So the ratio comes from pairs: ` +
        `a second gateway, started on a fresh token with ${k.keysBefore} keys and warmed up with Encrypt 4 KB, and this one take turns, ` +
        `one Encrypt 4 KB run each per pair (32 connections), the order flipped from pair to pair:`,
    );
    out.push(
      table(
        ['pair', 'first', `${k.keysBefore} keys req/s`, `${k.keysBefore} keys p99 ms`, `${k.keysAfter} keys req/s`, `${k.keysAfter} keys p99 ms`, 'ratio'],
        k.pairs.map((p, i) => [String(i + 1), `${p.first === 'few' ? k.keysBefore : k.keysAfter} keys`, f0(p.few.rps), f1(p.few.latencyMs.p99), f0(p.many.rps), f1(p.many.latencyMs.p99), f2(p.many.rps / p.few.rps)]),
      ),
    );
    out.push(`Ratio ${k.keysAfter} keys / ${k.keysBefore} keys: ${fRatio(k.ratio, TARGETS.keyScaling)}, the median of the pairs (the two runs above alone: ${sequential}).`);
  }
  if (k.tokenPairs !== undefined && k.tokenPairs.length > 0 && k.tokenRatio !== undefined) {
    out.push(
      `The token alone, on the same two tokens: AES-GCM 4 KB encrypts on a session copy of one key, back to back in one process that first loaded the gateway's key state ` +
        `(every record read, every key's objects found), the two tokens taking turns the same way after both gateways stopped: ` +
        `${k.tokenPairs.map((p) => `${f0(p.many.rate)} / ${f0(p.few.rate)} = ${f2(p.many.rate / p.few.rate)}`).join('; ')}; ` +
        `median ${f2(k.tokenRatio)}: how much the token itself slows down with the larger state, with no HTTP, SigV4 or lanes in the loop.`,
    );
  }
  out.push(`## Memory (RSS per process)`);
  const peaks = new Map(r.memory.underLoad.map((p) => [p.pid, p]));
  out.push(
    table(
      ['process', 'peak under load MB', 'soak peak MB', 'soak first 10 s MB', 'soak last 10 s MB', 'slope MB/min (± standard error)'],
      r.memory.soak.processes.map((p) => [
        processName(p),
        f1(peaks.get(p.pid)?.peakMb ?? NaN),
        f1(p.peakMb),
        f1(p.first10sMb),
        f1(p.last10sMb),
        `${f2(p.slopeMbPerMin)} ± ${f2(p.slopeSeMbPerMin)}`,
      ]),
    ),
  );
  const s = r.memory.soak.run;
  out.push(
    `Soak: the mix at ${s.connections} connections for ${s.seconds.toFixed(0)} s with ${s.keys} keys on the token: ` +
      `${f0(s.rps)} req/s, p99 ${f1(s.latencyMs.p99)} ms, ${errorCount(s)} errors. ` +
      `RSS sampled every second; the slope is the least-squares line's, and ± its standard error from the samples' scatter about the line ` +
      `(the samples are not independent, so the true uncertainty is larger; the target reads the slope alone).`,
  );
  const budgets = targetBudgets(r);
  if (budgets.length > 0) {
    out.push('## What the throughput targets leave per request');
    out.push(
      table(
        ['workload', 'target rate req/s', `CPU us/req at that rate (${machine['cores']} cores, all busy)`, 'wrk us/req', 'token us/op', 'left beside the token us/req', 'the gateway beside the token us/req', 'bare node:http, no token (software reference) us/req', 'bare node:http through the lanes, beside the token us/req'],
        budgets.map((b) => [
          b.workload,
          f0(b.targetRps),
          f0(b.machineMicros),
          f0(b.wrkMicros),
          `${f0(b.tokenMicros)} (${b.tokenSource})`,
          f0(b.besideTokenMicros),
          f0(b.gatewayBesideTokenMicros),
          b.bareHttpMicros === undefined ? 'n/a' : f0(b.bareHttpMicros),
          b.bareLanesBesideTokenMicros === undefined ? 'n/a' : f0(b.bareLanesBesideTokenMicros),
        ]),
      ),
    );
    out.push(
      'At the rate a target asks for, the machine has so many microseconds of CPU per request; wrk takes its share (as measured in the gateway\'s run) ' +
        'and the token its own (its one-process rate back to back). What is left must pay for the HTTP stack, SigV4, JSON and schema, key resolution, ' +
        'the hand-off that gives each call its deadline, the audit line and the metrics. The last two columns are what the bare node:http reference servers ' +
        'spent per Encrypt 4 KB with no check and no log: the HTTP stack with AES in node:crypto, and the HTTP stack with the token behind the lanes ' +
        '(less the token\'s own share; the references serve the Encrypt 4 KB load only). Where they take most of what is left, ' +
        'the target is out of reach for this design on this machine, not only for this code.',
    );
  }
  out.push('## Targets (issue 5)');
  out.push(r.targets.map((t) => `- **${t.pass ? 'PASS' : 'FAIL'}** ${t.target}: ${t.measured} (target ${t.wanted})`).join('\n'));
  if (r.files.svg !== undefined) out.push(`![req/s per workload](${r.files.svg.split('/').pop()})`);
  return out.join('\n\n') + '\n';
}

/** Bars of req/s per workload at the first connection count, with the token limits as lines. */
export function renderSvg(r: BenchResult): string {
  const c = r.settings.connections[0];
  const runs = r.runs.filter((x) => x.connections === c);
  const lines = [
    { label: 'token 1-process AES limit', v: r.token.aesOneProcess.rate },
    { label: `token ${r.token.aesProcesses.processes}-process AES limit`, v: r.token.aesProcesses.rate },
  ];
  const max = Math.max(...runs.map((x) => x.rps), ...lines.map((l) => l.v)) * 1.1;
  const W = 720;
  const left = 170;
  const barH = 22;
  const top = 40;
  const H = top + runs.length * (barH + 8) + 40;
  const x = (v: number) => left + (v / max) * (W - left - 20);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="10" y="20" font-size="14">req/s at ${c} connections, ${esc(r.startedAt)}</text>`,
    ...runs.map((run, i) => {
      const y = top + i * (barH + 8);
      return (
        `<text x="${left - 6}" y="${y + 15}" text-anchor="end">${esc(run.workload)}</text>` +
        `<rect x="${left}" y="${y}" width="${(x(run.rps) - left).toFixed(1)}" height="${barH}" fill="#4a7bb7"/>` +
        `<text x="${(x(run.rps) + 4).toFixed(1)}" y="${y + 15}">${f0(run.rps)}</text>`
      );
    }),
    ...lines.map((l, i) => {
      const lx = x(l.v).toFixed(1);
      return (
        `<line x1="${lx}" y1="${top - 6}" x2="${lx}" y2="${H - 30}" stroke="${i === 0 ? '#c0392b' : '#e67e22'}" stroke-dasharray="4 3"/>` +
        `<text x="${lx}" y="${H - 16 + i * 12}" text-anchor="end" fill="${i === 0 ? '#c0392b' : '#e67e22'}">${esc(l.label)} ${f0(l.v)}/s</text>`
      );
    }),
    '</svg>',
  ];
  return parts.join('\n') + '\n';
}
