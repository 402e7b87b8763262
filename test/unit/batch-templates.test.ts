import assert from 'node:assert/strict';
import { DEFAULT_TEMPLATE, renderBatchScript, type BatchJob } from '../../cluster/launchers/batch';
import { createLauncher } from '../../cluster/launchers';

const job: BatchJob = {
  name: 'tsparallel-c1-slurm-x',
  n: 4,
  logDir: '/home/u/.tsparallel/profile_default/log',
  command: ['/usr/bin/node', '/opt/tsparallel/dist/cli/main.js', 'engine', '--file', '/a b/e.json'],
};
const command = `/usr/bin/node /opt/tsparallel/dist/cli/main.js engine --file '/a b/e.json'`;

describe('batch job scripts', () => {
  it('renders Slurm: a job array of one engine per task, options and extra lines passed through', () => {
    const script = renderBatchScript('slurm', job, {
      partition: 'short',
      time: '1:00:00',
      account: 'proj7',
      directives: ['--mem-per-cpu=2G', '--constraint=avx2'],
    });
    assert.equal(
      script,
      [
        '#!/bin/sh',
        '#SBATCH --job-name=tsparallel-c1-slurm-x',
        '#SBATCH --array=0-3',
        '#SBATCH --output=/home/u/.tsparallel/profile_default/log/tsparallel-c1-slurm-x-%a.log',
        '#SBATCH --partition=short',
        '#SBATCH --time=1:00:00',
        '#SBATCH --account=proj7',
        '#SBATCH --mem-per-cpu=2G',
        '#SBATCH --constraint=avx2',
        '',
        `exec ${command}`,
        '',
      ].join('\n'),
    );
  });

  it('renders PBS with a subjob array, joined output and walltime', () => {
    assert.equal(
      renderBatchScript('pbs', job, { queue: 'workq', time: '02:00:00', account: 'p1' }),
      [
        '#!/bin/sh',
        '#PBS -N tsparallel-c1-slurm-x',
        '#PBS -J 0-3',
        '#PBS -j oe',
        '#PBS -o /home/u/.tsparallel/profile_default/log/',
        '#PBS -q workq',
        '#PBS -l walltime=02:00:00',
        '#PBS -A p1',
        '',
        `exec ${command}`,
        '',
      ].join('\n'),
    );
  });

  it('renders SGE with a task array counted from 1 and h_rt', () => {
    assert.equal(
      renderBatchScript('sge', job, { queue: 'all.q', time: '3600', directives: ['-pe smp 1'] }),
      [
        '#!/bin/sh',
        '#$ -N tsparallel-c1-slurm-x',
        '#$ -t 1-4',
        '#$ -j y',
        '#$ -o /home/u/.tsparallel/profile_default/log/',
        '#$ -q all.q',
        '#$ -l h_rt=3600',
        '#$ -pe smp 1',
        '',
        `exec ${command}`,
        '',
      ].join('\n'),
    );
  });

  it('renders LSF with an indexed job name and per-element output', () => {
    assert.equal(
      renderBatchScript('lsf', job, { queue: 'normal', time: '60', account: 'p2' }),
      [
        '#!/bin/sh',
        '#BSUB -J tsparallel-c1-slurm-x[1-4]',
        '#BSUB -o /home/u/.tsparallel/profile_default/log/tsparallel-c1-slurm-x-%I.log',
        '#BSUB -q normal',
        '#BSUB -W 60',
        '#BSUB -P p2',
        '',
        `exec ${command}`,
        '',
      ].join('\n'),
    );
  });

  it('renders a template of your own with every placeholder', () => {
    const template =
      '#!/bin/bash\n{directives}\n# {n} engines named {name}\nmodule load node\n{command}\n';
    assert.equal(
      renderBatchScript('slurm', { ...job, n: 1 }, { template }),
      [
        '#!/bin/bash',
        '#SBATCH --job-name=tsparallel-c1-slurm-x',
        '#SBATCH --array=0-0',
        '#SBATCH --output=/home/u/.tsparallel/profile_default/log/tsparallel-c1-slurm-x-%a.log',
        '# 1 engines named tsparallel-c1-slurm-x',
        'module load node',
        command,
        '',
      ].join('\n'),
    );
    assert.match(DEFAULT_TEMPLATE, /\{directives\}[\s\S]*exec \{command\}/);
  });

  it('refuses unknown placeholders, options and option types by name', () => {
    assert.throws(
      () => renderBatchScript('slurm', job, { template: '{directives}\n{cmd}' }),
      /the slurm template has an unknown placeholder \{cmd\}; it may use \{directives\}, \{command\}, \{name\}, \{n\}/,
    );
    assert.throws(
      () => renderBatchScript('slurm', job, { queue: 'x' } as never),
      /unknown slurm launcher option queue; its options are partition, time, account, directives, template, node, cli/,
    );
    assert.throws(
      () => renderBatchScript('pbs', job, { partition: 'x' } as never),
      /unknown pbs launcher option partition/,
    );
    assert.throws(
      () => renderBatchScript('lsf', job, { time: 60 } as never),
      /lsf launcher option time must be a string, got number/,
    );
    assert.throws(
      () => renderBatchScript('sge', job, { directives: '-pe smp 1' } as never),
      /sge launcher option directives must be a non-empty array of strings/,
    );
  });
});

describe('launcher options', () => {
  const context = {
    clientFile: '/c',
    profile: 'p',
    clusterId: 'c',
    engineFile: '/f',
    logDir: '/l',
    daemonize: false,
  };

  it('are refused by name when a launcher does not know them', () => {
    assert.throws(
      () => createLauncher('mpi', { np: 4 }, context),
      /unknown mpi launcher option np; its options are mpiexec, args, node, cli/,
    );
    assert.throws(
      () => createLauncher('local', { hosts: [] }, context),
      /unknown local launcher option hosts; its options are none/,
    );
    assert.throws(
      () => createLauncher('condor' as never, {}, context),
      /launcher "condor" is unknown; the launchers are local, mpi, ssh, slurm, pbs, sge, lsf/,
    );
    assert.throws(
      () => createLauncher('ssh', [] as never, context),
      /ssh launcher options must be an object, got an array/,
    );
  });

  it('make a launcher of each kind', () => {
    for (const [name, options] of [
      ['local', {}],
      ['mpi', { args: ['--hostfile', 'h'] }],
      ['ssh', { hosts: ['a', 'b'] }],
      ['slurm', { partition: 'p' }],
      ['pbs', { queue: 'q' }],
      ['sge', {}],
      ['lsf', {}],
    ] as const) {
      assert.equal(createLauncher(name, options, context).name, name);
    }
  });
});
