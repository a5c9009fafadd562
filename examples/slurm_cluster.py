"""Simulate a network store on a SLURM cluster with brainsim's Dask backend.

Each SLURM job runs one Dask worker process (with a nanny, so a worker that
dies is restarted and the run resumes from its last checkpoint) that holds a
contiguous range of the network's partitions and steps them with all of the
job's cores (Numba threads). Requirements: ``pip install dask-jobqueue``; the
network store and the results store on a file system that the login node
and all compute nodes share; brainsim installed in the same environment on
both (the job script runs this Python).

    python examples/slurm_cluster.py net.zarr --jobs 4 --cores 16 --memory 64GiB \
        --walltime 02:00:00 --queue normal --account myproject --t-ms 1000 --out run.zarr

Print the job script without submitting anything::

    python examples/slurm_cluster.py net.zarr --jobs 4 --dry-run

After a crash of the whole run (the driver too), continue where the last
checkpoint left off with ``brainsim.Simulation.resume("run.zarr", client=client)``.
"""
import argparse


def make_cluster(cores=16, memory="64GiB", walltime="02:00:00", queue=None, account=None,
                 local_directory="$TMPDIR", interface=None, **kwargs):
    """A dask-jobqueue SLURMCluster whose jobs each run one brainsim worker.

    cores : int
        CPU cores per job (``--cpus-per-task``); the worker steps its
        partitions with this many Numba threads.
    memory : str
        Memory per job (``--mem``); also the worker's memory_limit, against
        which brainsim checks its estimate for the worker's partitions.
    walltime, queue, account : str
        ``-t``, ``-p`` and ``-A`` of the jobs.
    local_directory : str
        Node-local scratch for Dask (not for brainsim's stores).
    interface : str, optional
        Network interface of the workers (e.g. ``"ib0"``); spikes travel
        between workers over TCP on the worker's address.
    kwargs
        Passed on to ``SLURMCluster`` (e.g. ``job_extra_directives``).
    """
    from dask_jobqueue import SLURMCluster
    return SLURMCluster(
        cores=cores, processes=1, memory=memory, walltime=walltime, queue=queue,
        account=account, local_directory=local_directory, interface=interface,
        job_script_prologue=[f"export NUMBA_NUM_THREADS={int(cores)}"], **kwargs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("network", help="network store (on a shared file system)")
    p.add_argument("--jobs", type=int, default=2, help="SLURM jobs = Dask workers")
    p.add_argument("--cores", type=int, default=16)
    p.add_argument("--memory", default="64GiB")
    p.add_argument("--walltime", default="02:00:00")
    p.add_argument("--queue", default=None)
    p.add_argument("--account", default=None)
    p.add_argument("--t-ms", type=float, default=1000.0, help="biological time (ms)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="results.zarr", help="results store (shared file system)")
    p.add_argument("--dry-run", action="store_true", help="print the job script and stop")
    args = p.parse_args(argv)

    cluster = make_cluster(args.cores, args.memory, args.walltime, args.queue, args.account)
    if args.dry_run:
        print(cluster.job_script())
        cluster.close()
        return 0
    from distributed import Client

    import brainsim

    cluster.scale(jobs=args.jobs)
    with Client(cluster) as client:
        client.wait_for_workers(args.jobs, timeout=3600)
        with brainsim.Simulation(args.network, backend="dask", client=client, seed=args.seed,
                                 store=args.out) as sim:
            ds = sim.run(args.t_ms)
            print(f"{ds.sizes['spike']} spikes; per-window overhead "
                  f"{sim.stats['overhead_s_per_window'] * 1e3:.3f} ms "
                  f"({sim.stats['window_steps']} steps per window)")
    cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
