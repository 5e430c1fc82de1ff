"""Benchmark (not a test): training throughput of our trainer's step against a conventional VAE training loop,
same model (conv64 beta-VAE), same batch size, same number of steps, strictly alternating on the same machine.

conventional: torch DataLoader over a numpy uint8 array (shuffle, default collate), float conversion and
              .to(device) per batch, contiguous NCHW layout, the allocator as the process starts -- the pattern of
              common VAE repositories.
ours:         the trainer's step: the device-resident BatchIterator (no DataLoader), the trainer's memory layout
              (channels-last on CPU and CUDA: `train.default_channels_last`), on the CPU `core.retain_freed_memory`
              (freed activation buffers are reused instead of being returned to the OS and faulted in again every
              step), the trainer's optimiser (`train.build_optimizer`: fused Adam on CPU and CUDA), optional bf16
              autocast and torch.compile.

Each loop runs in its own worker process, because the allocator setting belongs to a whole process: in one process
it would either leak into the conventional loop or be missing from ours. The parent makes the two take turns in
short rounds (only one computes at any time), so drift in the machine's load hits both alike; the ratio reported is
the median of the per-round ratios. Page faults per step are counted in each worker (getrusage).

    python bench/train_throughput.py [--steps 20] [--rounds 12] [--device cpu] [--channels-last auto|on|off]
                                     [--retain-memory auto|on|off] [--compile] [--bf16]
"""
import argparse, multiprocessing as mp, resource, statistics, time


def _worker(conn, kind, opts):
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from vaecausal_nb.core import get_device, retain_freed_memory, seed_everything
    from vaecausal_nb.data import BatchIterator, ProceduralDSprites
    from vaecausal_nb.models import build_model
    from vaecausal_nb.train import build_optimizer, default_channels_last

    dev, batch = get_device(opts['device']), opts['batch']
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    seed_everything(0, deterministic=False)
    ds = ProceduralDSprites()
    model = build_model('beta_vae').to(dev)
    info = {}
    if kind == 'conventional':
        idx = torch.randint(0, len(ds), (opts['pool'],))
        arr = np.concatenate([ds.images(idx[i:i + 4096]).numpy() for i in range(0, len(idx), 4096)])  # uint8 [pool,1,64,64]
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        loader = DataLoader(TensorDataset(torch.from_numpy(arr)), batch_size=batch, shuffle=True, drop_last=True)
        state = {'it': iter(loader)}
        def step():
            try: (xb,) = next(state['it'])
            except StopIteration: state['it'] = iter(loader); (xb,) = next(state['it'])
            x = xb.float().div(255).to(dev)
            loss = model.loss(x, model(x))['loss']
            opt.zero_grad(); loss.backward(); opt.step()
    else:                                   # the same step as train.train
        rm = opts['retain_memory']
        info['retain_memory'] = retain_freed_memory() if (rm == 'on' or (rm == 'auto' and dev.type == 'cpu')) else False
        cl = default_channels_last(dev) if opts['channels_last'] == 'auto' else opts['channels_last'] == 'on'
        info['channels_last'] = cl
        if cl: model = model.to(memory_format=torch.channels_last)
        opt = build_optimizer(model, 1e-4)
        fwd = torch.compile(model) if opts['compile'] else model
        it = BatchIterator(ds, batch, device=dev, seed=0)
        amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=opts['bf16'])
        def step():
            x = next(it)
            if cl: x = x.contiguous(memory_format=torch.channels_last)
            with amp: loss = model.loss(x, fwd(x))['loss']
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    for _ in range(5): step()             # warm-up (and compilation)
    sync()
    info['threads'] = torch.get_num_threads()
    conn.send(info)
    while conn.recv() == 'run':
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        for _ in range(opts['steps']): step()
        sync()
        dt = time.perf_counter() - t0
        conn.send((opts['steps'] * batch / dt, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / opts['steps']))


def main(steps=20, rounds=12, batch=64, device=None, channels_last='auto', retain_memory='auto', compile=False,
         bf16=False, pool=20000):
    opts = dict(steps=steps, batch=batch, device=device, channels_last=channels_last, retain_memory=retain_memory,
                compile=compile, bf16=bf16, pool=pool)
    ctx = mp.get_context('spawn')
    workers = {}
    for kind in ('conventional', 'ours'):
        a, b = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(b, kind, opts), daemon=True)
        p.start()
        workers[kind] = (a, p)
    info = {k: a.recv() for k, (a, _) in workers.items()}
    print(f'device {device or "auto"}, batch {batch}, {rounds} alternating rounds x {steps} steps per loop, '
          f'ours: {info["ours"]}, compile={compile}, bf16={bf16}', flush=True)
    res = {k: [] for k in workers}
    for _ in range(rounds):
        for k, (a, _) in workers.items():
            a.send('run'); res[k].append(a.recv())
    for a, p in workers.values(): a.send('stop'); p.join()
    rate = {k: [r for r, _ in v] for k, v in res.items()}
    faults = {k: statistics.median(f for _, f in v) for k, v in res.items()}
    ratios = [o / c for c, o in zip(rate['conventional'], rate['ours'])]
    med = statistics.median
    for k, name in (('conventional', 'conventional DataLoader loop:'), ('ours', 'vaecausal trainer step:     ')):
        print(f'{name} {med(rate[k]):7,.0f} images/s (median of rounds; range {min(rate[k]):,.0f}-{max(rate[k]):,.0f}), '
              f'{faults[k]:,.0f} page faults per step')
    print(f'ratio: {med(ratios):.2f}x (median of per-round ratios; range {min(ratios):.2f}-{max(ratios):.2f})')
    return med(rate['conventional']), med(rate['ours']), med(ratios)


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--rounds', type=int, default=12)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--device', default=None)
    ap.add_argument('--channels-last', default='auto', choices=('auto', 'on', 'off'))
    ap.add_argument('--retain-memory', default='auto', choices=('auto', 'on', 'off'))
    ap.add_argument('--compile', action='store_true')
    ap.add_argument('--bf16', action='store_true')
    a = ap.parse_args()
    main(a.steps, a.rounds, a.batch, a.device, a.channels_last, a.retain_memory, a.compile, a.bf16)
