"""Benchmark (not a test): CES's latent sweep -- every latent x 7 values x N images -- run batched with
`interventions.latent_sweep` against one decoder pass per intervention and image, on the cached beta-VAE
(trained on first use, about 10 minutes on 2 CPU cores). Prints both times, their ratio and the largest difference.

    python bench/interventions_batched.py [--images 1000] [--device cpu]
"""
import argparse, time

import torch

from vaecausal_nb.core import get_device
from vaecausal_nb.data import load_dataset, to_float
from vaecausal_nb.interventions import SIGMA_GRID, aggregate_posterior, latent_sweep, value_grid
from vaecausal_nb.train import pretrained


@torch.no_grad()
def main(images=1000, device=None):
    dev = get_device(device)
    model = pretrained('beta_vae', steps=3000, hparams={'beta': 4.0}).model.to(dev).eval()
    ds = load_dataset('dsprites', procedural=True)
    x = to_float(ds.images(torch.randint(len(ds), (images,), generator=torch.Generator().manual_seed(0)))).to(dev)
    agg = aggregate_posterior(model, x)
    z, grid = agg['codes'], value_grid(agg['mean'], agg['std'], SIGMA_GRID)
    L, V = grid.shape
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)

    sync(); t = time.perf_counter()
    batched = torch.stack([latent_sweep(model, z, grid, latents=[i])[0] for i in range(L)])   # [L, V, N, C, H, W]
    sync(); t_batched = time.perf_counter() - t

    sync(); t = time.perf_counter()
    looped = torch.empty_like(batched)
    for i in range(L):
        for j in range(V):
            for n in range(images):
                zi = z[n:n + 1].clone(); zi[0, i] = grid[i, j]
                looped[i, j, n] = torch.sigmoid(model.decode(zi))[0]
    sync(); t_loop = time.perf_counter() - t

    print(f'{L} latents x {V} values x {images} images = {L * V * images:,} interventions on {dev}')
    print(f'one pass per intervention: {t_loop:8.2f} s')
    print(f'batched (latent_sweep):    {t_batched:8.2f} s')
    print(f'ratio: {t_loop / t_batched:.1f}x   (max |difference| {float((batched - looped).abs().max()):.2e})')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', type=int, default=1000)
    p.add_argument('--device', default=None)
    a = p.parse_args()
    main(a.images, a.device)
