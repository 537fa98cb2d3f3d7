import { readFile } from 'node:fs/promises'
import { pidOf, type DevnetOrg } from '../src/devnet/index.js'

/** Linux's USER_HZ: /proc reports CPU time in these ticks. */
const CLOCK_TICKS = 100

/** CPU milliseconds (user and system, every thread) process `pid` has used so far, from /proc; undefined where there is no /proc or no such process. */
export async function processCpuMs(pid: number): Promise<number | undefined> {
  return statCpuMs(`/proc/${pid}/stat`)
}

/** The same for a process's main thread alone (the one that runs JavaScript). */
export async function mainThreadCpuMs(pid: number): Promise<number | undefined> {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`)
}

async function statCpuMs(path: string): Promise<number | undefined> {
  try {
    const stat = await readFile(path, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/** The same for a running devnet daemon. */
export async function daemonCpuMs(o: DevnetOrg): Promise<number | undefined> {
  const pid = await pidOf(o)
  return pid === undefined ? undefined : processCpuMs(pid)
}

/** The whole machine's CPU ticks so far (every core, every process, interrupts included), busy and in all, from /proc/stat. */
export interface MachineTicks {
  readonly busy: number
  readonly total: number
}

export async function machineTicks(): Promise<MachineTicks> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? ''
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal }
}

/** The share of the machine's cores that were busy between two readings (1 = every core busy all the time). */
export function busyShare(from: MachineTicks, to: MachineTicks): number {
  const total = to.total - from.total
  return total > 0 ? (to.busy - from.busy) / total : 0
}
