/**
 * An engine's MPI rank and job size, from the environment `mpiexec` gives each process. Engines
 * are not MPI programs themselves (they never call `MPI_Init`), but user code that is, or that
 * splits work by rank, needs to know where it stands.
 */
import type { MpiPlace } from '../protocol/messages';

/** Rank and size variables of Open MPI, MPICH/Hydra (and Intel MPI), and MVAPICH, in that order. */
const VARIABLES: [rank: string, size: string][] = [
  ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'],
  ['PMI_RANK', 'PMI_SIZE'],
  ['MV2_COMM_WORLD_RANK', 'MV2_COMM_WORLD_SIZE'],
];

/**
 * The process's place in its MPI job, or `undefined` when no MPI launcher started it.
 * @example mpiPlace({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '4' }) // { rank: 1, size: 4 }
 */
export function mpiPlace(env: NodeJS.ProcessEnv = process.env): MpiPlace | undefined {
  for (const [rankName, sizeName] of VARIABLES) {
    const rank = Number(env[rankName]);
    const size = Number(env[sizeName]);
    if (env[rankName] !== undefined && Number.isInteger(rank) && Number.isInteger(size)) {
      if (rank >= 0 && rank < size) return { rank, size };
    }
  }
  return undefined;
}
