"""Benchmark (not a test): training throughput of our trainer's step against a conventional VAE training loop,
side by side in one process, same model (conv64 beta-VAE), same batch size, same number of steps.

conventional: torch DataLoader over a numpy uint8 array (shuffle, default collate), float conversion and
              .to(device) per batch, contiguous NCHW layout -- the pattern of common VAE repositories.
ours:         the device-resident BatchIterator (no DataLoader), channels_last where it helps, optional bf16
              autocast and torch.compile on CUDA.

    python bench/train_throughput.py [--steps 60] [--device cpu] [--channels-last auto|on|off] [--compile]
"""
import argparse, time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from vaecausal_nb.core import get_device, seed_everything
from vaecausal_nb.data import BatchIterator, ProceduralDSprites
from vaecausal_nb.models import build_model


def timed(step, n, warmup=5, sync=lambda: None):
    for _ in range(warmup): step()
    sync(); t0 = time.perf_counter()
    for _ in range(n): step()
    sync()
    return time.perf_counter() - t0


def main(steps=60, batch=64, device=None, channels_last='auto', compile=False, bf16=False, pool=20000, repeats=2):
    dev = get_device(device)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    seed_everything(0, deterministic=False)
    ds = ProceduralDSprites()
    idx = torch.randint(0, len(ds), (pool,))
    arr = np.concatenate([ds.images(idx[i:i + 4096]).numpy() for i in range(0, pool, 4096)])   # [pool,1,64,64] uint8

    # conventional loop
    m1 = build_model('beta_vae').to(dev); o1 = torch.optim.Adam(m1.parameters(), 1e-4)
    loader = DataLoader(TensorDataset(torch.from_numpy(arr)), batch_size=batch, shuffle=True, drop_last=True)
    state = {'it': iter(loader)}
    def conv_step():
        try: (xb,) = next(state['it'])
        except StopIteration: state['it'] = iter(loader); (xb,) = next(state['it'])
        x = xb.float().div(255).to(dev)
        loss = m1.loss(x, m1(x))['loss']
        o1.zero_grad(); loss.backward(); o1.step()

    # ours
    cl = (dev.type == 'cuda') if channels_last == 'auto' else channels_last == 'on'
    m2 = build_model('beta_vae').to(dev)
    if cl: m2 = m2.to(memory_format=torch.channels_last)
    o2 = torch.optim.Adam(m2.parameters(), 1e-4)
    fwd = torch.compile(m2) if compile else m2
    it = BatchIterator(ds, batch, device=dev, seed=0)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16)
    def our_step():
        x = next(it)
        if cl: x = x.contiguous(memory_format=torch.channels_last)
        with amp: loss = m2.loss(x, fwd(x))['loss']
        o2.zero_grad(set_to_none=True); loss.backward(); o2.step()

    print(f'device {dev}, batch {batch}, {steps} timed steps x {repeats} alternating repeats, '
          f'channels_last={cl}, compile={compile}, bf16={bf16}, torch threads {torch.get_num_threads()}')
    t_conv, t_ours = [], []
    for _ in range(repeats):                    # alternate so drift in machine load hits both equally
        t_conv.append(timed(conv_step, steps, sync=sync)); t_ours.append(timed(our_step, steps, sync=sync))
    r_conv, r_ours = steps * batch / min(t_conv), steps * batch / min(t_ours)
    print(f'conventional DataLoader loop: {r_conv:10,.0f} images/s')
    print(f'vaecausal trainer step:       {r_ours:10,.0f} images/s')
    print(f'ratio: {r_ours / r_conv:.2f}x')
    return r_conv, r_ours


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=60)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--device', default=None)
    ap.add_argument('--channels-last', default='auto', choices=('auto', 'on', 'off'))
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--bf16', action='store_true')
    a = ap.parse_args()
    main(a.steps, a.batch, a.device, a.channels_last, a.compile, a.bf16)
