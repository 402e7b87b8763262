/** Placeholder until the scale scenario lands. */
export interface ScaleResults {
  engines: number;
  processes: number;
  registrationSeconds: number;
  idleCpuPercent: number;
  heartbeatPeriodMs: number;
  throughputMany: number;
  throughputTwo: number;
  soak: { tasks: number; seconds: number; peakRssMB: number } | null;
}
export async function runScale(_soak: boolean): Promise<ScaleResults | null> {
  return null;
}
