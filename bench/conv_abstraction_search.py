"""Benchmark (not a test): closed-form channel scores (`pruning.abstract`, method 'const': the constant risk Q_min and
its optimal constants, one pass of statistics) against a brute-force search that picks channels by *measured* IIA,
at the same budget, on a trained conv decoder (beta-VAE, procedural dSprites, the model cache's 3,000-step runs).

Site: the channels `decoder.deconvs.2` reads (32); budget: keep 8 (25 %). The IIA is the whole-decoder one of
nbs/08a_circuits (`circuits.decoder_fidelity`): for every active latent, value of the sigma grid and held-out image,
the compiled decoder's output under do(z_i = v) agrees with the full decoder's within RMS 0.05.

Brute force (greedy backward elimination): at each step try removing every remaining channel (held at its optimal
constant c*, through a forward pre-hook -- no copies), measure the IIA on the search images, and drop the channel
whose removal keeps the IIA highest (ties: the lowest reconstruction RMSE). It costs one decoder pass over all
intervention pairs per candidate and step (32 + 31 + ... + 9 = 492 passes). Both results are then compiled the same
way (constant replacement) and measured on the same held-out images. Printed per seed: wall times, their ratio, the
IIA of each and the gap (closed form - brute force); then the closed-form fold (greedy precision downdates, the
removed channels folded into the kept ones by ridge regression) from the same statistics, and its gap.

    python bench/conv_abstraction_search.py [--seeds 0,1,2] [--keep 8] [--search-images 16]
"""
import argparse, time

import numpy as np
import torch

from vaecausal_nb.causal_metrics import active_latents, intervention_values
from vaecausal_nb.circuits import _intervened, decoder_fidelity
from vaecausal_nb.data import load_dataset, random_batch, to_float
from vaecausal_nb.hooks import hooks
from vaecausal_nb.pruning import abstract, compile_abstraction, constant_risk, reader_stats
from vaecausal_nb.train import pretrained

READER = 'decoder.deconvs.2'


@torch.no_grad()
def pairs(model, x, act):
    "The codes of the images followed by every intervened code, and the full decoder's outputs for them."
    z, slots, values = intervention_values(model, x)
    zs = torch.cat([z] + [_intervened(z, slots[i], values[i]) for i in np.flatnonzero(act)])
    return zs, len(z), torch.sigmoid(model.decode(zs))


@torch.no_grad()
def held_iia(model, zs, n, full, removed, c, tol=0.05):
    "IIA and RMSE of the model with the channels `removed` held at their constants c (a hook on what the reader reads)."
    mask = torch.zeros(len(c), dtype=torch.bool); mask[list(removed)] = True
    def hold(a, m): return torch.where(mask.view(1, -1, 1, 1), c.view(1, -1, 1, 1).to(a), a)
    with hooks(model, reads=[(READER, hold)]): held = torch.sigmoid(model.decode(zs))
    d = (held - full).flatten(1).pow(2).mean(1).sqrt()
    return float((d[n:] < tol).float().mean()), float(d[:n].pow(2).mean().sqrt())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--seeds', default='0,1,2')
    ap.add_argument('--keep', type=int, default=8)
    ap.add_argument('--search-images', type=int, default=16)
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    ds = load_dataset('dsprites', procedural=True)
    imgs = lambda n, s: to_float(random_batch(ds, n, torch.Generator().manual_seed(s))[0])
    x_cal, x_eval, x_search = imgs(512, 100), imgs(64, 200), imgs(args.search_images, 300)
    print(f'reader {READER}, keep {args.keep}; IIA on 64 held-out images (search: {args.search_images} others)')
    print(f'{"seed":>4} {"closed s":>9} {"brute s":>9} {"ratio":>7} {"IIA closed":>11} {"IIA brute":>10} {"gap":>7} '
          f'{"IIA fold":>9} {"fold gap":>8}')
    for seed in [int(s) for s in args.seeds.split(',')]:
        m = pretrained('beta_vae', steps=3000, seed=seed, progress=False).model.eval()
        with torch.no_grad(): zcal = m.representation(x_cal)
        act = active_latents(m, x_eval)['active']
        dec = dict(forward=lambda mm, c: mm.decode(c), likelihood='bernoulli')
        t = time.perf_counter()
        st = reader_stats(m, READER, list(zcal.split(256)), **dec)
        closed = abstract(m, READER, None, args.keep, 'const', stats=st)
        t_closed = time.perf_counter() - t
        fold = abstract(m, READER, None, args.keep, 'fold', stats=st)          # the same statistics, folded
        t = time.perf_counter()
        st_b = reader_stats(m, READER, list(zcal.split(256)), **dec)         # the brute force needs the constants too
        c = constant_risk(st_b)[0].float()
        removed, alive = [], list(range(len(c)))
        zs, n, full = pairs(m, x_search, act)
        while len(alive) > args.keep:
            best = max(alive, key=lambda j: (lambda r: (r[0], -r[1]))(held_iia(m, zs, n, full, removed + [j], c)))
            removed.append(best); alive.remove(best)
        brute = compile_abstraction(m, st_b, alive, 'const')
        t_brute = time.perf_counter() - t
        i_c = decoder_fidelity(m, closed, x_eval, active=act)['iia']
        i_b = decoder_fidelity(m, brute, x_eval, active=act)['iia']
        i_f = decoder_fidelity(m, fold, x_eval, active=act)['iia']
        print(f'{seed:>4} {t_closed:>9.2f} {t_brute:>9.1f} {t_brute / t_closed:>7.0f} {i_c:>11.3f} {i_b:>10.3f} '
              f'{i_c - i_b:>+7.3f} {i_f:>9.3f} {i_f - i_b:>+8.3f}', flush=True)


if __name__ == '__main__':
    main()
