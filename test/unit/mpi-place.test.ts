import assert from 'node:assert/strict';
import { mpiPlace } from '../../engine/mpi-place';
import { validateMessage } from '../../protocol/messages';

describe('an engine’s MPI place', () => {
  it('comes from Open MPI, MPICH/Hydra or MVAPICH variables', () => {
    assert.deepEqual(mpiPlace({ OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '4' }), {
      rank: 2,
      size: 4,
    });
    assert.deepEqual(mpiPlace({ PMI_RANK: '0', PMI_SIZE: '1' }), { rank: 0, size: 1 });
    assert.deepEqual(mpiPlace({ MV2_COMM_WORLD_RANK: '1', MV2_COMM_WORLD_SIZE: '2' }), {
      rank: 1,
      size: 2,
    });
  });

  it('is absent outside MPI and for nonsense values', () => {
    assert.equal(mpiPlace({}), undefined);
    assert.equal(mpiPlace({ PMI_RANK: '3', PMI_SIZE: '2' }), undefined);
    assert.equal(mpiPlace({ PMI_RANK: 'x', PMI_SIZE: '2' }), undefined);
  });

  it('travels in the registration message, which checks its shape', () => {
    const msg = (content: object) => ({
      header: {
        msg_id: 'm',
        msg_type: 'registration_request',
        session: 's',
        username: 'u',
        date: 'd',
        version: '1',
      },
      parent_header: {},
      metadata: {},
      content,
    });
    const base = { uuid: 'u', pid: 1, hostname: 'h' };
    validateMessage(msg(base));
    validateMessage(msg({ ...base, engine_set: 'mpi-1', mpi: { rank: 0, size: 2 } }));
    assert.throws(
      () => validateMessage(msg({ ...base, mpi: { rank: '0', size: 2 } })),
      /content does not match/,
    );
    assert.throws(() => validateMessage(msg({ ...base, engine_set: 7 })), /content does not match/);
  });
});
