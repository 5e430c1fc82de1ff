"""Benchmark (not a test): closed-form scoring + compile (`pruning.abstract`, method 'const') against a brute-force
search that picks units by *measured* interchange error, at equal units kept, on the digits MLP of nbs/08_pruning
(64 -> 128 -> 10, scikit-learn's bundled digits). Prints the wall times, their ratios and the IIA (p = 0.5) of each; the closed form is run with constant replacement
(the brute force's own replacement) and with folding into the kept units.

Brute force (backward elimination): at each step try removing every remaining unit (its value replaced by the
optimal constant, through a forward pre-hook -- no copies), measure IIA on held-out pairs, and drop the unit whose
removal keeps IIA highest (ties: lowest output distortion). It costs one forward pass per candidate and step.

    python bench/pruning_search.py [--keep 16] [--seeds 3]
"""
import argparse, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

from vaecausal_nb.pruning import abstract, constant_risk, iia, reader_stats

torch.set_grad_enabled(True)


def digits(seed):
    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1200], perm[1200:]
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(300):
        opt.zero_grad(); F.cross_entropy(m(X[tr]), y[tr]).backward(); opt.step()
    return m.eval(), X[tr], X[te]


@torch.no_grad()
def brute_force(m, c, base, source, keep, p=0.5, seed=0):
    "Backward elimination by measured IIA of the const-replaced network against the full one."
    U = c.numel()
    src = {}
    h = m[2].register_forward_pre_hook(lambda mod, inp: src.__setitem__('a', inp[0].clone()))
    m(source); h.remove()
    full_src = src['a']
    M = torch.rand(len(base), U, generator=torch.Generator().manual_seed(seed)) < p
    alive = list(range(U))
    def score(removed):
        keep_mask = torch.ones(U, dtype=torch.bool); keep_mask[removed] = False
        def full_hook(mod, inp):     # full net: interchange the kept units
            a = inp[0].clone(); a[:, keep_mask] = torch.where(M[:, keep_mask], full_src[:, keep_mask], a[:, keep_mask]); return (a,)
        def abs_hook(mod, inp):      # abstraction: same interchange, removed units held at c*
            a = full_hook(mod, inp)[0]; a[:, ~keep_mask] = c[~keep_mask].float(); return (a,)
        h = m[2].register_forward_pre_hook(full_hook); yf = m(base); h.remove()
        h = m[2].register_forward_pre_hook(abs_hook); ya = m(base); h.remove()
        return float((yf.argmax(1) == ya.argmax(1)).float().mean()), -float((yf - ya).norm(dim=1).mean())
    removed = []
    while len(alive) > keep:
        best = max(alive, key=lambda j: score(removed + [j]))
        removed.append(best); alive.remove(best)
    return alive


def main(keep=16, seeds=3):
    rows = []
    for seed in range(seeds):
        m, Xtr, Xte = digits(seed)
        source = Xte[torch.randperm(len(Xte), generator=torch.Generator().manual_seed(seed))]
        t = time.perf_counter()
        comp = abstract(m, '2', Xtr.split(400), keep=keep, method='const')
        t_closed = time.perf_counter() - t
        iia_closed = float(iia(m, comp, Xte, source, probabilities=(0.5,))['iia'][0.5])
        t = time.perf_counter()
        comp_fold = abstract(m, '2', Xtr.split(400), keep=keep, method='fold')
        t_fold = time.perf_counter() - t
        iia_fold = float(iia(m, comp_fold, Xte, source, probabilities=(0.5,))['iia'][0.5])
        t = time.perf_counter()
        st = reader_stats(m, '2', Xtr.split(400))
        kept = brute_force(m, constant_risk(st)[0], Xte, source, keep, seed=seed)
        from vaecausal_nb.pruning import compile_abstraction
        comp_bf = compile_abstraction(m, st, kept, 'const')
        t_bf = time.perf_counter() - t
        iia_bf = float(iia(m, comp_bf, Xte, source, probabilities=(0.5,))['iia'][0.5])
        rows.append((t_closed, t_bf, iia_closed, iia_bf, t_fold, iia_fold))
        print(f'seed {seed}: closed form const {t_closed:6.3f} s IIA {iia_closed:.3f} | fold {t_fold:6.3f} s IIA {iia_fold:.3f} | '
              f'brute force {t_bf:7.1f} s IIA {iia_bf:.3f}', flush=True)
    r = np.array(rows)
    print(f'keep {keep} of 128: brute force / closed form time = {r[:, 1].mean() / r[:, 0].mean():.0f}x; '
          f'IIA closed {r[:, 2].mean():.3f} vs brute force {r[:, 3].mean():.3f} (difference {r[:, 3].mean() - r[:, 2].mean():+.3f}; '
          'brute force is scored on the same pairs it was chosen on, so it is optimistic)')
    print(f'fold (closed form, folding into kept units): {r[:, 1].mean() / r[:, 4].mean():.0f}x faster than brute force, '
          f'IIA {r[:, 5].mean():.3f} ({r[:, 5].mean() - r[:, 3].mean():+.3f} vs brute force)')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--keep', type=int, default=16)
    p.add_argument('--seeds', type=int, default=3)
    a = p.parse_args()
    main(a.keep, a.seeds)
