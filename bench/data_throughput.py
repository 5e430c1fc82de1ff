"""Benchmark (not a test): random batches of 64 per second from each procedural generator, against indexing a
preloaded numpy array holding the same images (the usual in-memory approach). Prints images/s and the ratio.

    python bench/data_throughput.py [--seconds 3]
"""
import argparse, time

import numpy as np
import torch

from vaecausal_nb.data import ProceduralDSprites, ProceduralMPI3D, ProceduralShapes3D, to_float


def rate(fn, seconds):
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += fn()
    return n / (time.perf_counter() - t0)


def main(seconds=3.0, batch=64, pool=20000):
    torch.set_num_threads(torch.get_num_threads())
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    print(f'batches of {batch}, {torch.get_num_threads()} torch threads, {seconds:.0f} s per measurement')
    print(f'{"dataset":10s} {"generator img/s":>16s} {"numpy array img/s":>18s} {"ratio":>7s}')
    rows = []
    for ds in (ProceduralDSprites(), ProceduralShapes3D(), ProceduralMPI3D()):
        # the baseline holds `pool` pre-rendered images in a numpy array and indexes random batches from it
        idx_pool = torch.randint(0, len(ds), (pool,), generator=g)
        arr = np.concatenate([ds.images(idx_pool[i:i + 4096]).numpy() for i in range(0, pool, 4096)])

        def gen():
            idx = torch.randint(0, len(ds), (batch,), generator=g)
            to_float(ds.images(idx))
            return batch

        def base():
            i = rng.integers(0, pool, batch)
            torch.from_numpy(arr[i]).float().div_(255)
            return batch
        r_gen, r_arr = rate(gen, seconds), rate(base, seconds)
        rows.append((ds.name, r_gen, r_arr))
        print(f'{ds.name:10s} {r_gen:16,.0f} {r_arr:18,.0f} {r_gen / r_arr:7.2f}x')
    return rows


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--seconds', type=float, default=3.0)
    main(ap.parse_args().seconds)
