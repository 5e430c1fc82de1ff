"""Benchmark (not a test): seconds of InfoMEC at the `standard` sizes (`metrics.resolve_sizes('standard')['infomec']`
points, 10,000) for 10 latents and 6 factors: the k-NN mutual information (60 estimates, `metrics.infomec_nmi`),
InfoE's logistic regressions, the whole `infomec`, and DCI on the same kind of codes at its standard sizes
(10,000 / 5,000 points) for the ratio.

The codes are synthetic: 3DShapes' six factor grids (procedural sampling, no images), standardised, mixed by a random
rotation into 10 dimensions, plus noise — continuous and without ties, like a VAE's posterior means. Also times the
per-slot (discrete) path on the same codes quantised to 8 values per latent.

    python bench/infomec_time.py [--no-dci] [--jobs 1]
"""
import argparse
import time

import numpy as np
import torch

from vaecausal_nb.data import load_dataset
from vaecausal_nb.metrics import _label_encode, dci, infoe_per_source, infomec, infomec_nmi, resolve_sizes


def codes(ds, n, seed, L=10):
    "Factor classes [n, 6] and synthetic continuous codes [n, L]."
    y = ds.sample_factors(n, torch.Generator().manual_seed(seed)).numpy()
    rng = np.random.default_rng(seed)
    mix = np.linalg.qr(rng.normal(size=(L, L)))[0][:y.shape[1]]
    z = ((y - y.mean(0)) / y.std(0)) @ mix + 0.1 * rng.normal(size=(n, L))
    return y, z


def timed(f, *a, **kw):
    t = time.perf_counter(); r = f(*a, **kw)
    return r, time.perf_counter() - t


def main(with_dci=True, jobs=1):
    ds = load_dataset('shapes3d', procedural=True)
    sz = resolve_sizes('standard')
    n = sz['infomec']
    y, z = codes(ds, n, 0)
    print(f'{ds.name}: {y.shape[1]} factors {tuple(ds.factor_sizes)}, {z.shape[1]} latents, {n:,} points', flush=True)
    s = _label_encode(y)
    _, t_mi = timed(infomec_nmi, s, z, False)
    print(f'k-NN mutual information ({y.shape[1]} x {z.shape[1]} pairs): {t_mi:.1f} s', flush=True)
    _, t_e = timed(infoe_per_source, s, z, False)
    print(f'InfoE regressions ({y.shape[1]} sources, code and null): {t_e:.1f} s', flush=True)
    r, t_all = timed(infomec, y, z)
    print(f"infomec total: {t_all:.1f} s (InfoM {r['infom']:.3f}, InfoE {r['infoe']:.3f}, InfoC {r['infoc']:.3f})",
          flush=True)
    edges = np.quantile(z, np.linspace(0, 1, 9)[1:-1], axis=0)                      # 8 values a latent
    q = np.stack([np.digitize(z[:, j], edges[:, j]) for j in range(z.shape[1])], 1)
    _, t_q = timed(infomec, y, q, discrete_latents=True)
    print(f'infomec of the quantised codes (exact MI, one-hot InfoE): {t_q:.1f} s', flush=True)
    if with_dci:
        a, b = sz['dci']
        ytr, ztr = codes(ds, a, 1)
        yte, zte = codes(ds, b, 2)
        _, t_dci = timed(dci, ztr, ytr, zte, yte, n_jobs=jobs)
        print(f'DCI at the standard sizes ({a:,}/{b:,} points, n_jobs={jobs}): {t_dci:.1f} s; '
              f'k-NN MI / DCI = {t_mi / t_dci:.3f}, infomec / DCI = {t_all / t_dci:.3f}', flush=True)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--no-dci', action='store_true', help='skip the DCI timing (minutes on 2 cores)')
    p.add_argument('--jobs', type=int, default=1, help="DCI's n_jobs")
    a = p.parse_args()
    main(not a.no_dci, a.jobs)
