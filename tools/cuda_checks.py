"""The fleet's checks that need a GPU (run by `tools/gpu_session.sh checks` on the device machine; prints, exits 1 on a
failure). On the CPU the same checks run in nbs/04a_fleet.ipynb; here they run on CUDA, where the stacked executor
is the default and nothing has been measured before:

1. every member equals `train` of its config, for every architecture and both executors (K = 3, 12 steps, batch 16),
   against the same tolerance as on the CPU: within 3x the gap between two solo runs that differ only in memory
   layout (plus 1e-6); also in bf16;
2. a stacked phase waits for the device only where it must: 40 steps with no checkpoints under
   torch.cuda.set_sync_debug_mode('warn') wait at most 3 times (the looks at steps 32 and 40, and one more allowed);
3. `core.to_device` copies an index tensor without waiting;
4. a stacked fleet compiled with CUDA graphs (compile='reduce-overhead') equals `train` of each member (compiled the
   same way) within the tolerance of 1., and its losses survive the graph's replays (the run ends; history is finite);
5. the study's own path on CUDA: a run (`study.run_job`, 200 steps) and a fleet of two (`study.run_fleet`, 6,000 steps
   each, so procedural dSprites is held on the device) are trained, every metric measured (the factor probe trained on
   the device and reading the models' images there), their rows written.
"""
import sys
import warnings

import torch

from vaecausal_nb.core import to_device
from vaecausal_nb.data import load_dataset
from vaecausal_nb.fleet import _NoBar, _stacked_phase, _start, train_fleet
from vaecausal_nb.train import TrainConfig, train

SW = {'vae': [{}, {}, {}], 'beta_vae': [{'beta': b} for b in (1.0, 4.0, 16.0)],
      'factor_vae': [{'gamma': g, 'disc_hidden': 32, 'disc_layers': 2} for g in (10.0, 20.0, 40.0)],
      'beta_tc_vae': [{'beta': b} for b in (1.0, 4.0, 8.0)], 'dip_vae_ii': [{'lambda_od': v} for v in (1.0, 5.0, 20.0)],
      'vq_vae': [{'commitment': c} for c in (0.25, 0.5, 1.0)], 'qlae': [{'weight_decay': w} for w in (0.0, 0.1, 0.2)]}


def small(arch, i, **kw):
    return TrainConfig(arch=arch, hparams=SW[arch][i], dataset_kwargs={'procedural': True}, steps=12, batch_size=16,
                       lr=(1e-4, 5e-4, 1e-3)[i], seed=i, progress=False, log_every=4, device='cuda', **kw)


def gap(runs, refs):
    return max((a - b).abs().max().item() for r, s in zip(runs, refs)
               for a, b in zip(r.model.state_dict().values(), s.model.state_dict().values()))


def equality(precision):
    bad = 0
    print(f'1. members vs train(cfg), {precision}: largest |weight difference| over 3 members')
    print(f'{"arch":12} {"loop":>9} {"stacked":>9} {"reference":>10}')
    for arch in SW:
        kw = dict(precision=precision)
        solo = [train(small(arch, i, **kw)) for i in range(3)]
        ref = gap([train(small(arch, i, channels_last=False, **kw)) for i in range(3)], solo)
        loop = gap(train_fleet([small(arch, i, **kw) for i in range(3)], mode='loop', progress=False), solo)
        st = gap(train_fleet([small(arch, i, **kw) for i in range(3)], mode='stacked', progress=False), solo)
        ok = st <= 3 * ref + 1e-6
        bad += not ok
        print(f'{arch:12} {loop:9.1e} {st:9.1e} {ref:10.1e} {"" if ok else "  <- outside the tolerance"}', flush=True)
    return bad


def graphs():
    arch = 'beta_vae'
    kw = dict(compile='reduce-overhead')
    solo = [train(small(arch, i, **kw)) for i in range(3)]
    ref = gap([train(small(arch, i, channels_last=False)) for i in range(3)], [train(small(arch, i)) for i in range(3)])
    runs = train_fleet([small(arch, i, **kw) for i in range(3)], mode='stacked', progress=False)
    st = gap(runs, solo)
    finite = all(torch.isfinite(torch.tensor(r.history['loss'].to_numpy())).all() for r in runs)
    ok = st <= 3 * ref + 1e-6 and finite and not any(r.error for r in runs)
    print(f'4. CUDA graphs (reduce-overhead), {arch}: stacked vs train {st:.1e}, reference {ref:.1e}, '
          f'losses finite: {finite}{"" if ok else "  <- failed"}', flush=True)
    return not ok


def measured():
    import tempfile
    from pathlib import Path
    from vaecausal_nb.study import jobs, preset, run_fleet, run_job
    root = Path(tempfile.mkdtemp())
    bad, out = 0, []
    try:
        row = run_job(jobs(preset('quick', archs=('vae',), steps=200))[0], root)
        out.append(('a run', row))
        for key, row, err in run_fleet(jobs(preset('quick', archs=('beta_vae',), seeds=(0, 1), steps=6000)), root):
            if err: bad += 1; print(f'   fleet member {key}: {err}')
            out.append(('a fleet member', row))
    except Exception as e:
        print(f'5. the study on CUDA failed: {type(e).__name__}: {e}'); return 1
    for what, row in out:
        if row is None: continue
        print(f'5. {what} trained and measured on CUDA: {row["steps"]} steps in {row["seconds_train"]:.1f} s, '
              f'measured in {row["seconds_eval"]:.1f} s; DCI D {row["dci_disentanglement"]:.3f}, '
              f'CES {row["ces"]:.4f}, factor specificity {row["specificity_factor"]:.3f}', flush=True)
    return bad


def syncs():
    cfgs = [TrainConfig(arch='beta_vae', hparams={'beta': float(b)}, dataset_kwargs={'procedural': True}, steps=100,
                        batch_size=64, seed=i, device='cuda', progress=False) for i, b in enumerate((1, 4, 8, 16))]
    ds = load_dataset('dsprites', procedural=True).materialise('cuda')
    members = [_start(c, ds, torch.device('cuda')) for c in cfgs]
    amp = torch.autocast('cuda', enabled=False)
    _stacked_phase(members, 5, amp, torch.float32, _NoBar())         # warm-up (allocations, cuDNN's choices)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('warn')
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            _stacked_phase(members, 40, amp, torch.float32, _NoBar())
    finally: torch.cuda.set_sync_debug_mode('default')
    waits = [str(x.message).splitlines()[0] for x in w if 'synchroniz' in str(x.message)]
    print(f'2. a 40-step stacked phase of 4 members waited for the device {len(waits)} times (allowed: 3)')
    for m in sorted(set(waits)): print('   ', m[:160])
    return len(waits) > 3


def copies():
    x = torch.randn(4096, 4096, device='cuda')
    torch.cuda.set_sync_debug_mode('error')
    try:
        x @ x
        to_device(torch.randint(0, 4096, (64,)), 'cuda')
        ok = True
    except RuntimeError as e: ok, err = False, e
    finally: torch.cuda.set_sync_debug_mode('default')
    print(f'3. to_device without waiting: {"yes" if ok else f"no ({err})"}')
    return not ok


if __name__ == '__main__':
    assert torch.cuda.is_available(), 'these checks need a CUDA GPU'
    print(torch.cuda.get_device_name(), torch.__version__)
    failed = copies() + syncs() + measured() + equality('fp32') + equality('bf16') + graphs()
    print('all passed' if not failed else f'{failed} check(s) failed')
    sys.exit(1 if failed else 0)
