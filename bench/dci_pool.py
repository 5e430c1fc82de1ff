"""Benchmark (not a test): DCI of a fleet's members one after another (`metrics.dci`, each with --jobs processes over
its factors) against all of them at once (`metrics.dci_many`, one pool of --jobs processes over every member's
factors), at the study presets' sizes on dSprites' factor classes.

The codes are synthetic (each member: the factors' classes mixed by its own random rotation, plus noise, in 10
dimensions), so the trees do the work a trained model's codes give them, without training one. Prints each factor's
serial seconds (the 40-class orientation dominates), both wall times and their ratio, and checks the numbers agree.

    python bench/dci_pool.py [--members 4] [--jobs 2] [--sizes fast]
"""
import argparse
import os
import time

import numpy as np
import torch

from vaecausal_nb.data import load_dataset
from vaecausal_nb.metrics import SIZES, _fit_factor, dci, dci_many


def member(ds, n, seed):
    "`n` points of one synthetic member: factor classes [n, 5] and codes [n, 10]."
    g = torch.Generator().manual_seed(seed)
    keep = [k for k, s in enumerate(ds.factor_sizes) if s > 1]  # a one-class factor (colour) left out
    y = ds.sample_factors(n, g)[:, keep].numpy()
    rng = np.random.default_rng(seed)
    mix = np.linalg.qr(rng.normal(size=(10, 10)))[0][:len(keep)]
    z = (y / np.maximum(1, y.max(0))) @ mix + 0.05 * rng.normal(size=(n, 10))
    return z, y


def main(members=4, jobs=2, sizes='fast'):
    ds = load_dataset('dsprites', procedural=True)
    a, b = SIZES[sizes]['dci']
    tasks = []
    for s in range(members):
        ztr, ytr = member(ds, a, s)
        zte, yte = member(ds, b, 1000 + s)
        tasks.append(dict(mus_train=ztr, ys_train=ytr, mus_test=zte, ys_test=yte, seed=s))
    t = tasks[0]
    names = [n for n, k in zip(ds.factor_names, ds.factor_sizes) if k > 1]
    each = {}
    for k, name in enumerate(names):
        t0 = time.perf_counter()
        _fit_factor(t['mus_train'], t['ys_train'][:, k], t['mus_test'], t['ys_test'][:, k], 0)
        each[f'{name} ({len(np.unique(t["ys_train"][:, k]))} classes)'] = time.perf_counter() - t0
    print(f'one member, {a}/{b} points ({sizes}), serial seconds per factor:',
          ', '.join(f'{k} {v:.1f}' for k, v in each.items()), f'(sum {sum(each.values()):.1f})', flush=True)
    dci(**{k: v[:200] if k != 'seed' else v for k, v in t.items()}, n_jobs=jobs)     # the worker pool started first
    t0 = time.perf_counter(); one = [dci(**t, n_jobs=jobs) for t in tasks]; t1 = time.perf_counter()
    many = dci_many(tasks, n_jobs=jobs); t2 = time.perf_counter()
    assert one == many, 'dci_many disagrees with dci'
    print(f'{members} members, {jobs} processes on {os.cpu_count()} cores: one after another {t1 - t0:.1f} s, '
          f'dci_many {t2 - t1:.1f} s, ratio {(t1 - t0) / (t2 - t1):.2f}x (numbers identical)')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--members', type=int, default=4)
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--sizes', default='fast', choices=list(SIZES))
    main(**vars(p.parse_args()))
