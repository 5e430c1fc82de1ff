"""Benchmark and calibration (not a test): the fast DCI estimator against the exact trees on the CPU pilot's runs.

Trains every `--every`-th run of the `standard` preset (the CPU pilot: 300 steps, its own seeds and settings) into
`--cache` (resumable: a run whose codes are stored is not trained again), draws the codes DCI reads exactly as
`metrics.evaluate` draws them for that run (its sampler seed, the shared points, `quick` sizes), fits DCI with both
estimators on the same codes, and writes one row per run: its exact and fast scores and seconds. `05_metrics` reads
the CSV and shows the agreement (`metrics.dci_agreement`) and the speed-up.

    python bench/dci_agreement.py --out nbs/findings/data/dci_agreement.csv      # 12 runs, ~30 min on 2 cores
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vaecausal_nb.core import atomic_write, cache_root, is_quantised
from vaecausal_nb.data import load_dataset
from vaecausal_nb.metrics import METRICS, FactorSampler, _shared_points, dci, resolve_sizes
from vaecausal_nb.study import jobs, preset
from vaecausal_nb.train import TrainConfig, train


def codes_of(job:dict, folder:Path, data:dict) -> dict:
    "The DCI points of one pilot run (trained here once, then read from `folder`)."
    f = folder / f"{job['name']}.npz"
    if not f.exists():
        d = job['train']['dataset']
        if d not in data: data[d] = load_dataset(d, **job['train']['dataset_kwargs'])
        cfg = TrainConfig.from_dict({**job['train'], 'out_dir': str(folder / job['name']),
                                     'checkpoint_every': job['train']['steps']})
        run = train(cfg, data[d])
        sz = resolve_sizes(job['eval']['metric_sizes'])
        ztr, ytr, zte, yte = _shared_points(FactorSampler(data[d], run.model, cfg.seed), sz, METRICS)
        a, b = sz['dci']
        slots = run.model.slots() if is_quantised(run.model) else None
        np.savez(f, ztr=ztr[:a], ytr=ytr[:a], zte=zte[:b], yte=yte[:b], slots=json.dumps(slots), seed=cfg.seed)
    z = np.load(f)
    slots = json.loads(str(z['slots']))
    seed = int(z['seed']) if 'seed' in z else job['train']['seed']
    return dict(mus_train=z['ztr'], ys_train=z['ytr'], mus_test=z['zte'], ys_test=z['yte'], seed=seed,
                slots=[tuple(s) for s in slots] if slots else None)


def main(out:str, every:int=6, cache:str|None=None):
    torch.set_num_threads(1)
    folder = Path(cache) if cache else cache_root('bench') / 'dci_agreement'
    folder.mkdir(parents=True, exist_ok=True)
    rows, data = [], {}
    for job in jobs(preset('standard'))[::every]:
        task = codes_of(job, folder, data)
        row = {'name': job['name'], 'arch': job['train']['arch'], 'dataset': job['train']['dataset']}
        for est in ('exact', 'fast'):
            t = time.perf_counter()
            r = dci(**task, estimator=est)
            row.update({f'{est}_{k}': v for k, v in r.items()}, **{f'seconds_{est}': time.perf_counter() - t})
        rows.append(row)
        print(row['name'], {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)
        with atomic_write(Path(out), 'w') as fh: pd.DataFrame(rows).to_csv(fh, index=False)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='the CSV to write')
    p.add_argument('--every', type=int, default=6, help="every K-th run of the standard preset (default 6: 12 runs)")
    p.add_argument('--cache', default=None, help='where the runs and their codes are kept (default: the cache)')
    a = p.parse_args()
    main(a.out, a.every, a.cache)
