"""Wall time of the shapes-world fs3 sweep with 1 process vs N jax.distributed processes on this machine.

    python benchmarks/multiprocess_sweep.py --processes=1,2 --devices=1 --images=16 --max_resolution=8

Launches the processes (127.0.0.1 coordinator, CPU gloo collectives), each with `--devices` forced CPU
devices, runs `channel_relevance` on the shipped shapes world and prints, per set-up, the sweep's wall time
inside the processes (from after model loading to the gathered array; compiles included) and the whole
launch's wall time. The processes share this machine's cores: on one host they measure the machinery
(dealing, gathering, resuming), not a speed-up; on a slice each process has its own host.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
pid, nproc, port, images, max_res, block = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                                            int(sys.argv[5]), int(sys.argv[6]))
import jax
if nproc > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc, process_id=pid)
import styleclip_jax as sc
from styleclip_jax.editing import global_direction as gd
G, clip = sc.load_generator("shapes"), sc.load_clip("shapes")
mean, std = gd.style_stats(G, num_samples=1000, seed=5)
ws = gd.sample_ws(G, images, seed=0)
t = time.time()
fs3 = gd.channel_relevance(G, clip, mean, std, ws=ws, max_resolution=max_res, block_size=block, progress=False)
if pid == 0:
    print(f"SWEEP {time.time() - t:.2f} {fs3.shape[0]}", flush=True)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--devices", type=int, default=1, help="forced CPU devices per process")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--max_resolution", type=int, default=8)
    ap.add_argument("--block_size", type=int, default=16)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = pathlib.Path(tmp) / "child.py"
        script.write_text(CHILD)
        env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={a.devices}",
                   PYTHONPATH=str(REPO))
        for n in map(int, a.processes.split(",")):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = str(s.getsockname()[1])
            t = time.time()
            procs = [subprocess.Popen([sys.executable, str(script), str(i), str(n), port, str(a.images),
                                       str(a.max_resolution), str(a.block_size)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for i in range(n)]
            outs = [p.communicate() for p in procs]
            wall = time.time() - t
            if any(p.returncode for p in procs):
                sys.exit("a process failed:\n" + "\n".join(e[-2000:] for _, e in outs))
            line = next(l for l in outs[0][0].splitlines() if l.startswith("SWEEP"))
            _, sweep, rows = line.split()
            print(f"{n} process(es) x {a.devices} device(s): sweep {float(sweep):.1f} s ({rows} channels x "
                  f"{a.images} images, blocks of {a.block_size}), launch {wall:.1f} s", flush=True)


if __name__ == "__main__":
    main()
