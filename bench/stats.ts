/**
 * Pure pieces of the benchmark: wrk's result line, RSS series statistics.
 * No I/O here, so test/bench/ can check them without a gateway.
 */

/** The marker bench/wrk.ts's Lua `done()` puts in front of its JSON line. */
export const WRK_RESULT_MARKER = 'KMSGW-BENCH ';

/** One wrk run as the benchmark reports it (latencies in ms). */
export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  /** Responses with an HTTP status >= 400 (wrk's `errors.status`; the gateway never answers 1xx/3xx). */
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
}

/** Parses the line the Lua `done()` prints; throws when wrk printed none (a crashed or misconfigured run). */
export function parseWrkOutput(stdout: string): WrkResult {
  const line = stdout.split('\n').find((l) => l.startsWith(WRK_RESULT_MARKER));
  if (line === undefined) throw new Error(`wrk printed no result line:\n${stdout}`);
  const raw = JSON.parse(line.slice(WRK_RESULT_MARKER.length)) as Record<string, number>;
  const num = (k: string): number => {
    const v = raw[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`wrk result line lacks ${k}: ${line}`);
    return v;
  };
  const seconds = num('duration_us') / 1e6;
  const requests = num('requests');
  return {
    requests,
    seconds,
    rps: seconds > 0 ? requests / seconds : 0,
    latencyMs: {
      mean: num('mean_us') / 1000,
      p50: num('p50_us') / 1000,
      p90: num('p90_us') / 1000,
      p99: num('p99_us') / 1000,
      max: num('max_us') / 1000,
    },
    non2xx: num('status'),
    socketErrors: { connect: num('connect'), read: num('read'), write: num('write'), timeout: num('timeout') },
  };
}

export function errorCount(r: WrkResult): number {
  const s = r.socketErrors;
  return r.non2xx + s.connect + s.read + s.write + s.timeout;
}

/** One RSS reading of one process, `t` seconds after the series began. */
export interface RssSample {
  t: number;
  mb: number;
}

export function mean(xs: number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The least-squares line of MB over time: slope in MB per minute, and its standard error (NaN below three samples). */
function fitMbPerMin(samples: RssSample[]): { slope: number; standardError: number } {
  const n = samples.length;
  if (n < 2) return { slope: 0, standardError: NaN };
  const mt = mean(samples.map((s) => s.t));
  const mm = mean(samples.map((s) => s.mb));
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.t - mt) * (s.mb - mm);
    den += (s.t - mt) ** 2;
  }
  if (den === 0) return { slope: 0, standardError: NaN };
  const perSecond = num / den;
  let residuals = 0;
  for (const s of samples) residuals += (s.mb - (mm + perSecond * (s.t - mt))) ** 2;
  return { slope: perSecond * 60, standardError: n < 3 ? NaN : Math.sqrt(residuals / (n - 2) / den) * 60 };
}

/** Least-squares slope of MB over time, in MB per minute (0 for fewer than two distinct times). */
export function slopeMbPerMin(samples: RssSample[]): number {
  return fitMbPerMin(samples).slope;
}

/**
 * The standard error of that slope, from the scatter of the samples about
 * the line (NaN for fewer than three samples). RSS sampled each second is
 * not independent from one second to the next (a worker's RSS moves in
 * steps that last seconds), so this understates the uncertainty: read it as
 * "the slope is noise unless it is several of these away from 0".
 */
export function slopeStandardErrorMbPerMin(samples: RssSample[]): number {
  return fitMbPerMin(samples).standardError;
}

export interface RssSummary {
  peakMb: number;
  first10sMb: number;
  last10sMb: number;
  slopeMbPerMin: number;
  /** The standard error of slopeMbPerMin (slopeStandardErrorMbPerMin). */
  slopeSeMbPerMin: number;
}

/** Peak, mean of the first and of the last 10 s, and the trend of one process's soak series. */
export function summarizeRss(samples: RssSample[]): RssSummary {
  if (samples.length === 0) return { peakMb: NaN, first10sMb: NaN, last10sMb: NaN, slopeMbPerMin: NaN, slopeSeMbPerMin: NaN };
  const t0 = Math.min(...samples.map((s) => s.t));
  const t1 = Math.max(...samples.map((s) => s.t));
  const fit = fitMbPerMin(samples);
  return {
    peakMb: Math.max(...samples.map((s) => s.mb)),
    first10sMb: mean(samples.filter((s) => s.t < t0 + 10).map((s) => s.mb)),
    last10sMb: mean(samples.filter((s) => s.t > t1 - 10).map((s) => s.mb)),
    slopeMbPerMin: fit.slope,
    slopeSeMbPerMin: fit.standardError,
  };
}
