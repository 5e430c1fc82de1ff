"""Benchmark (not a test): a fleet's members measured stacked (`fleet_measure`) against one after another.

For each fleet size K, K members of one architecture (fresh weights, seeds 0..K-1: the cost does not depend on
training) are given
- `codes`: the representation of N images (the work of one chunk of a code table): each member alone, then
  `fleet_codes` for all K at once;
- `sweep`: the latent sweep of CES and pixel specificity (`causal_profile` with every latent active) on each member's
  own N causal images: each alone, then `fleet_profiles`.
It prints the seconds of each way and the ratio alone / stacked (> 1: stacking pays), and the largest relative
difference of the members' CES (float rounding only). Numbers are of this machine and its load.

    python bench/fleet_measure.py                                  # CPU: K = 1, 4; 64 images
    python bench/fleet_measure.py --device cuda --ks 1 8 32 --images 256 --dataset shapes3d
"""
import argparse
import time

import numpy as np
import pandas as pd
import torch

from vaecausal_nb.causal_metrics import causal_profile
from vaecausal_nb.core import torch_threads
from vaecausal_nb.data import load_dataset, random_batch, to_float
from vaecausal_nb.fleet_measure import StackedModels, fleet_codes, fleet_profiles
from vaecausal_nb.models import build_model


def sync(device):
    if device.startswith('cuda'): torch.cuda.synchronize()


def timed(device, f, *a, **kw):
    sync(device); t = time.perf_counter()
    r = f(*a, **kw)
    sync(device)
    return r, time.perf_counter() - t


def one(k:int, arch:str, ds, n:int, device:str) -> dict:
    members = []
    for s in range(k):
        torch.manual_seed(s)
        members.append(build_model(arch, 10, image_shape=ds.image_shape).to(device).eval())
    x = to_float(random_batch(ds, n, torch.Generator().manual_seed(0))[0]).to(device)
    xs = [to_float(random_batch(ds, n, torch.Generator().manual_seed(1 + s))[0]).to(device) for s in range(k)]
    act = np.ones(10, bool)
    stack = StackedModels(members)
    fleet_codes(stack, x[:2]); causal_profile(members[0], xs[0][:2], active=act)          # warm-up
    with torch.no_grad(): _, t_codes_alone = timed(device, lambda: [m.representation(x) for m in members])
    _, t_codes = timed(device, fleet_codes, stack, x)
    alone, t_sweep_alone = timed(device, lambda: [causal_profile(m, xx, active=act) for m, xx in zip(members, xs)])
    stacked, t_sweep = timed(device, fleet_profiles, stack, xs, actives=[act] * k)
    diff = max(float(np.nanmax(np.abs(a['ces'].per_latent - b['ces'].per_latent) / np.abs(a['ces'].per_latent)))
               for a, b in zip(alone, stacked))
    return {'K': k, 'codes alone s': t_codes_alone, 'codes stacked s': t_codes, 'codes ratio': t_codes_alone / t_codes,
            'sweep alone s': t_sweep_alone, 'sweep stacked s': t_sweep, 'sweep ratio': t_sweep_alone / t_sweep,
            'max rel. diff (CES)': diff}


def main(ks=(1, 4), arch='beta_vae', dataset='dsprites', images=64, device='cpu', threads=None):
    ds = load_dataset(dataset, procedural=True)
    with torch_threads(threads) as n:
        rows = [one(k, arch, ds, images, device) for k in ks]
    df = pd.DataFrame(rows).set_index('K')
    name = torch.cuda.get_device_name() if device.startswith('cuda') else f'cpu, {n} torch threads'
    print(f'{arch} on {dataset}, {images} images a member, {name}:')
    with pd.option_context('display.width', 200, 'display.max_columns', 20):
        print(df.round(3).to_string())
    return df


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--ks', nargs='+', type=int, default=[1, 4], help='fleet sizes')
    p.add_argument('--arch', default='beta_vae')
    p.add_argument('--dataset', default='dsprites')
    p.add_argument('--images', type=int, default=64, help='images a member (codes and sweep)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: as they are)')
    a = p.parse_args()
    main(a.ks, a.arch, a.dataset, a.images, a.device, a.threads)
