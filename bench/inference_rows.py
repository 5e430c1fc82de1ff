"""Benchmark (not a test): no-gradient passes in one big block against blocks of `core.inference_rows` rows.

For each architecture (freshly initialised; the kernels do not care what the weights are) it encodes `--images`
random images and decodes `--rows` random codes, once in a single pass (what the measuring loops did before) and
once in blocks of `inference_rows(device)` rows (what they do now), each `--repeat` times (the best time kept). It
prints the seconds of both, their ratio, and whether the two results are equal bit for bit on this machine: that is
what lets the measurement use the blocks with its numbers unchanged. Numbers are of this machine only.

    python bench/inference_rows.py                       # every architecture, torch's threads as they are
    python bench/inference_rows.py --threads 1 --archs vae vq_vae
"""
import argparse
import time

import torch

from vaecausal_nb.core import inference_rows, torch_threads
from vaecausal_nb.models import ARCHS, build_model


def best(f, repeat:int) -> tuple:
    "The best of `repeat` timed calls of `f`, and its last result."
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); out = f(); times.append(time.perf_counter() - t)
    return min(times), out


def blocks(f, x:torch.Tensor, rows:int) -> torch.Tensor:
    "`f` over `x` in blocks of `rows` rows, concatenated."
    return torch.cat([f(c) for c in x.split(rows)])


def row(arch:str, images:int, rows:int, repeat:int, device:str) -> dict:
    "One architecture's timings and bitwise comparison."
    g = torch.Generator().manual_seed(0)
    m = build_model(arch).to(device).eval()
    x = torch.rand(images, *m.image_shape, generator=g).to(device)
    n = inference_rows(m, 8192)
    with torch.no_grad():
        z = torch.randn(rows, m.representation(x[:1]).shape[1], generator=g).to(device)   # any codes decode
        te1, e1 = best(lambda: m.representation(x), repeat)
        te2, e2 = best(lambda: blocks(m.representation, x, n), repeat)
        td1, d1 = best(lambda: torch.sigmoid(m.decode(z)), repeat)
        td2, d2 = best(lambda: blocks(lambda c: torch.sigmoid(m.decode(c)), z, n), repeat)
    return {'arch': arch, 'block rows': n, 'encode 1 pass s': te1, 'encode blocks s': te2,
            'encode ratio': te1 / te2, 'encode equal': torch.equal(e1, e2), 'decode 1 pass s': td1,
            'decode blocks s': td2, 'decode ratio': td1 / td2, 'decode equal': torch.equal(d1, d2)}


def main():
    import pandas as pd
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--archs', nargs='*', default=list(ARCHS))
    p.add_argument('--images', type=int, default=1024, help='images encoded')
    p.add_argument('--rows', type=int, default=896, help='codes decoded (a 7-value sweep of 128 images)')
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--threads', type=int, default=None, help="torch's CPU threads (default: as they are)")
    p.add_argument('--device', default='cpu')
    a = p.parse_args()
    with torch_threads(a.threads) as t:
        df = pd.DataFrame([row(arch, a.images, a.rows, a.repeat, a.device) for arch in a.archs])
    print(f'{a.device}, {t} torch threads: one pass against blocks (ratio > 1: the blocks are faster)')
    print(df.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
    print(f'mean ratio: encode {df["encode ratio"].mean():.2f}, decode {df["decode ratio"].mean():.2f}; '
          f'bit-identical: {bool(df["encode equal"].all() and df["decode equal"].all())}')


if __name__ == '__main__':
    main()
