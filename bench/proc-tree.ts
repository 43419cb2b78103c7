/**
 * CPU and RSS of a process tree from /proc (Linux): the gateway's primary
 * (run.sh execs node, so run.sh's pid is the primary) and every descendant
 * (node:cluster workers). The tree is scanned again at every sample, so
 * workers that a primary restarts are followed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { RssSample } from './stats.js';

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** utime + stime, in clock ticks (every thread of the process). */
  cpuTicks: number;
  rssMb: number;
}

export const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
    return { pid, ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]), rssMb: rssKb / 1024 };
  } catch {
    return undefined; // exited between the directory listing and the read
  }
}

/** The root and all its descendants that are alive now. */
export function processTree(root: number): ProcInfo[] {
  const all: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p !== undefined) all.push(p);
  }
  const inTree = new Set([root]);
  // Parents have lower pids almost always, but not after pid wrap-around: iterate to a fixed point.
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all)
      if (!inTree.has(p.pid) && inTree.has(p.ppid)) {
        inTree.add(p.pid);
        grew = true;
      }
  }
  return all.filter((p) => inTree.has(p.pid));
}

export interface ProcessSeries {
  pid: number;
  role: 'primary' | 'worker';
  peakMb: number;
  samples: RssSample[];
}

export interface TreeUsage {
  /** CPU of the whole tree over the window, in % of one core. */
  cpuPercent: number;
  processes: ProcessSeries[];
}

/**
 * Samples the tree every second between start() and stop(): RSS per process
 * and the tree's CPU. A process that appears mid-window counts from 0 ticks;
 * one that exits mid-window counts up to its last sample.
 */
export class TreeSampler {
  private readonly baseTicks = new Map<number, number>();
  private readonly lastTicks = new Map<number, number>();
  private readonly series = new Map<number, ProcessSeries>();
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;

  constructor(private readonly root: number) {}

  start(): void {
    this.t0 = performance.now();
    for (const p of processTree(this.root)) this.baseTicks.set(p.pid, p.cpuTicks);
    this.sample();
    this.timer = setInterval(() => this.sample(), 1000);
  }

  private sample(): void {
    const t = (performance.now() - this.t0) / 1000;
    for (const p of processTree(this.root)) {
      this.lastTicks.set(p.pid, p.cpuTicks);
      let s = this.series.get(p.pid);
      if (s === undefined) {
        s = { pid: p.pid, role: p.pid === this.root ? 'primary' : 'worker', peakMb: 0, samples: [] };
        this.series.set(p.pid, s);
      }
      s.peakMb = Math.max(s.peakMb, p.rssMb);
      s.samples.push({ t, mb: p.rssMb });
    }
  }

  stop(): TreeUsage {
    clearInterval(this.timer);
    this.sample();
    const seconds = (performance.now() - this.t0) / 1000;
    let ticks = 0;
    for (const [pid, last] of this.lastTicks) ticks += last - (this.baseTicks.get(pid) ?? 0);
    return { cpuPercent: (ticks / CLOCK_TICKS / seconds) * 100, processes: [...this.series.values()] };
  }
}
