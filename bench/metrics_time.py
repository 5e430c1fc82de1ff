"""Benchmark (not a test): wall time of the full metric suite (`metrics.evaluate`: DCI, MIG, SAP, FactorVAE,
BetaVAE, IRS) at the standard and the fast sizes, on procedural dSprites.

Two representations: the cached beta-VAE's encoder (trained on first use, about 10 minutes on 2 CPU cores), and the
ground-truth factors themselves (no encoder: the time of the metrics alone). Prints seconds per metric and the ratios.

    python bench/metrics_time.py [--jobs 2] [--skip-model]
"""
import argparse

import pandas as pd
import torch

from vaecausal_nb.data import load_dataset
from vaecausal_nb.metrics import evaluate


def main(jobs=2, skip_model=False):
    ds = load_dataset('dsprites', procedural=True)
    reps = {}
    if not skip_model:
        from vaecausal_nb.train import pretrained
        reps['beta-VAE encoder'] = pretrained('beta_vae', steps=3000, hparams={'beta': 4.0}).model
    # the ground-truth code as a precomputed table: the time of the metrics alone, no encoder
    reps['ground-truth factors'] = ds.factors(torch.arange(len(ds))).float().numpy()
    rows = {}
    for name, rep in reps.items():
        for mode in ('standard', 'fast'):
            model = isinstance(rep, torch.nn.Module)
            r = evaluate(rep if model else None, ds, sizes=mode, n_jobs=jobs, table='auto' if model else rep, progress=False)
            rows[name, mode] = {k.replace('seconds_', ''): v for k, v in r.items() if k.startswith('seconds_')}
            print(name, mode, f"{r['seconds_total']:.1f} s", flush=True)
    df = pd.DataFrame(rows).T.round(1)
    print(df.to_string())
    for name in reps:
        print(f"{name}: standard / fast = {rows[name, 'standard']['total'] / rows[name, 'fast']['total']:.1f}x")


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--skip-model', action='store_true')
    a = p.parse_args()
    main(a.jobs, a.skip_model)
