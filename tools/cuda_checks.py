"""The fleet's checks that need a GPU, and the device session's preflight (run by `tools/gpu_session.sh` on the device
machine; prints, exits 1 on a failure). On the CPU the same checks run in nbs/04a_fleet.ipynb; here they run on CUDA,
where the stacked executor is the default and nothing has been measured before. Each check runs whatever the others
did (an error in one is reported as its failure), in this order:

0. preflight (`--preflight`; imports nothing of the package before it has said what it found): GPU, torch, CUDA and
   cuDNN versions, free memory, whether torch.compile can build here (Triton compiles a C launcher for its kernels:
   a C compiler and Python's headers must be present, else every compiled step is skipped with a line saying so), a
   tiny compiled function run when it can, the TF32 defaults, and every module the later steps import;
3. `copies`: `core.to_device` copies an index tensor without waiting (CUDA only);
2. `syncs`: a stacked step never waits for the device. The waits of a 40-step phase of 4 members are counted apart
   for the set-up (`_Stack`), the steps, the looks at the losses (at steps 32 and 40) and the write-back: the steps
   must have none and each look one at most; set-up and write-back (once per phase) are reported. On CUDA a wait is
   what torch.cuda.set_sync_debug_mode('warn') reports; on the CPU (a dry run) it is what would wait on CUDA
   (`HostReads`: a value read by the host, a copy to the host, a tensor made from Python numbers on the device);
1. `fp32`: every member equals `train` of its config (K = 3, 12 steps, batch 16, all 7 architectures) by the
   notebook's criterion: one step from the same weights differs from `train`'s first update by at most 1e-3 of it,
   and the 12 steps' logged losses by at most a relative 1e-2 (or 3x what the same runs in the other memory layout
   differ by, when that is larger). With TF32 off: cuDNN runs fp32 convolutions in TF32 by default, which would make
   this a check of TF32 rounding (matmuls are fp32 by default; both flags are set and said);
5. `study`: the study's own path: a run (`study.run_job`, 200 steps) and a fleet of two (`study.run_fleet`, 6,000
   steps each, so procedural dSprites is held on the device) are trained, every metric measured, their rows written
   (--quick: the fleet 300 steps, and both measured at `tiny_spec`'s sizes, on Shapes3D: the path, not the numbers);
1b. `bf16`: check 1 under bf16 autocast (there the layout reference sets the bound);
4. `graphs`: a stacked fleet compiled with CUDA graphs (compile='reduce-overhead') against `train` of each member
   compiled the same way (check 1's trajectory bound, TF32 off), its losses finite after the graph's replays.

    python tools/cuda_checks.py [--device cuda|cpu] [--quick] [--tiny] [--only NAME,...] [--preflight]

--quick: the trimmed set `gpu_session.sh all` runs (bf16 on three architectures, check 5 small).
--tiny (implied by --device cpu, the script's dry run): 2 members, 4 steps, batch 8, two architectures, a tiny study.
"""
import argparse
import contextlib
import dataclasses
import importlib
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

PACKAGE = Path(__file__).resolve().parents[1] / 'vaecausal_nb'
# what the steps of tools/gpu_session.sh import: every module but widgets (ipywidgets, which no step uses)
MODULES = tuple(f'vaecausal_nb.{p.stem}' for p in sorted(PACKAGE.glob('*.py'))
                if p.stem not in ('__init__', '_modidx', 'widgets')) + ('lightgbm',)   # (the fast DCI's, imported late)
ONE_STEP, TRAJECTORY = 1e-3, 1e-2           # nbs/04a_fleet.ipynb's bounds (see "Every member equals its solo run")
SW = {'vae': [{}, {}, {}], 'beta_vae': [{'beta': b} for b in (1.0, 4.0, 16.0)],
      'factor_vae': [{'gamma': g, 'disc_hidden': 32, 'disc_layers': 2} for g in (10.0, 20.0, 40.0)],
      'beta_tc_vae': [{'beta': b} for b in (1.0, 4.0, 8.0)], 'dip_vae_ii': [{'lambda_od': v} for v in (1.0, 5.0, 20.0)],
      'vq_vae': [{'commitment': c} for c in (0.25, 0.5, 1.0)], 'qlae': [{'weight_decay': w} for w in (0.0, 0.1, 0.2)]}


def compile_ready(device:str='cuda') -> tuple:
    """(whether torch.compile can build kernels for `device` here, a line saying why): `train.compile_missing`, the
    check every compiled run makes before it starts."""
    if os.environ.get('GPU_SESSION_NO_COMPILE'):
        return False, 'skipped: the preflight found torch.compile unusable here (see its line "compile:")'
    from vaecausal_nb.train import compile_missing
    missing = compile_missing(torch.device(device))
    if missing: return False, f'skipped: torch.compile cannot build here, it lacks {" and ".join(missing)}; ' \
                              'every compiled step is skipped'
    return True, 'ready: a compiler and Python.h'


def fp32_exact():
    "A context in which cuDNN's convolutions and cuBLAS's matmuls compute in fp32 (TF32 off), restored after."
    @contextlib.contextmanager
    def ctx():
        old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try: yield
        finally: torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
    return ctx()


# ---------------------------------------------------------------------------------------------- counting waits
VALUE_OPS = {'_local_scalar_dense', 'nonzero', 'masked_select', 'is_nonzero', 'equal', '_unique2', 'unique_dim',
             'unique_consecutive'}      # a value read by the host (float(t), bool(t), .item()), or a size set by values
# functions whose value reads are of host tensors on every device: on the CPU they cannot be told from device reads
HOST_SIDE = {('data.py', '_as_idx'),    # checks a batch's indices, drawn on the host (`to_device` sends them on)
             ('fleet.py', '_look')}     # reads the host copy of the losses that its one `.tolist()` made


def _frames():
    f = sys._getframe(2)
    while f is not None:
        yield os.path.basename(f.f_code.co_filename), f.f_code.co_name, f.f_lineno
        f = f.f_back


def _where() -> str:
    "The innermost frame of the package (or, failing that, of this file) that made the call."
    fr = list(_frames())
    pkg = [f for f in fr if f[0] in {m.rsplit('.', 1)[-1] + '.py' for m in MODULES}]
    f = (pkg or fr)[0]
    return f'{f[0]}:{f[2]} {f[1]}'


def _host_side() -> bool: return any((f, n) in HOST_SIDE for f, n, _ in _frames())


class _Values(TorchDispatchMode):
    def __init__(self, out): super().__init__(); self.out = out
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in VALUE_OPS and not _host_side(): self.out.append(f'aten.{name}: a value read by the host, {_where()}')
        return func(*args, **(kwargs or {}))


def _to_host(args, kwargs) -> bool:
    """Whether `Tensor.to(*args, **kwargs)` names the host as its target by name ('cpu'; `.to(dtype)` names none). A
    `torch.device` target is not counted: in the package it is a tensor's own device (`q.device`), which is the host
    only in a dry run on the CPU."""
    dev = kwargs.get('device', next((a for a in args if isinstance(a, (str, torch.device))), None))
    return isinstance(dev, str) and torch.device(dev).type == 'cpu'


class _Copies(TorchFunctionMode):
    def __init__(self, out): super().__init__(); self.out = out
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor) and kwargs.get('device') is not None:
            self.out.append(f'torch.{func.__name__}(..., device=): a blocking copy to the device, {_where()}')
        elif func in (torch.Tensor.cpu, torch.Tensor.tolist, torch.Tensor.numpy):
            self.out.append(f'Tensor.{func.__name__}(): a copy to the host, {_where()}')
        elif func is torch.Tensor.to and not kwargs.get('non_blocking') and _to_host(args[1:], kwargs):
            self.out.append(f'Tensor.to(cpu): a blocking copy to the host, {_where()}')
        return func(*args, **kwargs)


@contextlib.contextmanager
def HostReads():
    """Collect (in the list it yields) what in its block would wait for a CUDA device, counted on the CPU: values read
    by the host (`VALUE_OPS`, except in `HOST_SIDE`), copies to the host (`.cpu()`, `.tolist()`, `.numpy()`), and
    tensors made from Python numbers on a device (`torch.tensor(..., device=)`: a blocking copy there)."""
    out = []
    with _Copies(out), _Values(out): yield out


@contextlib.contextmanager
def device_waits(dev:torch.device):
    "Collect (in the list it yields) the device waits of its block: torch's sync debug mode on CUDA, else `HostReads`."
    if dev.type != 'cuda':
        with HostReads() as out: yield out
        return
    out = []
    torch.cuda.synchronize(dev)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try: yield out
        finally:
            torch.cuda.set_sync_debug_mode('default')
            out.extend(f'{str(x.message).splitlines()[0]} ({os.path.basename(x.filename)}:{x.lineno})' for x in w
                       if 'synchroniz' in str(x.message))


def fake_resident(ds):
    "Batches of `ds` gathered as from a dataset held on the device, without rendering it (every index one image)."
    ds.resident = ds.images(torch.tensor([0])).expand(len(ds), *ds.image_shape)
    return ds


def count_phase_waits(members, dev, steps=40) -> dict:
    """The device waits of one stacked phase of `members`, counted apart: 'setup' (`_Stack`), 'steps', 'looks' (and
    'n_looks', how many looks there were) and 'write_back'."""
    from vaecausal_nb import fleet
    amp, dtype = fleet._precision(members)
    with device_waits(dev) as setup: st = fleet._Stack(members, amp, dtype)
    res = {'setup': setup, 'steps': [], 'looks': [], 'n_looks': 0}
    real_step, real_look = st.step, fleet._look
    def step():
        with device_waits(dev) as w: out = real_step()
        res['steps'].extend(w); return out
    def look(s, buf, bar):
        with device_waits(dev) as w: real_look(s, buf, bar)
        res['looks'].extend(w); res['n_looks'] += 1
    st.step, fleet._look = step, look
    try: fleet._stacked_steps(st, steps, fleet._NoBar())
    finally: fleet._look = real_look
    with device_waits(dev) as back:
        for k in range(len(members)): st.write_back(k)
    res['write_back'] = back
    return res


# ---------------------------------------------------------------------------------------------- the checks
def small(arch, i, dev, tiny, **kw):
    from vaecausal_nb.train import TrainConfig
    steps, batch = (4, 8) if tiny else (12, 16)
    return TrainConfig(arch=arch, hparams=SW[arch][i], dataset_kwargs={'procedural': True}, steps=steps,
                       batch_size=batch, lr=(1e-4, 5e-4, 1e-3)[i], seed=i, progress=False, log_every=2 if tiny else 4,
                       device=str(dev), **kw)


def gap(runs, refs):
    return max((a - b).abs().max().item() for r, s in zip(runs, refs)
               for a, b in zip(r.model.state_dict().values(), s.model.state_dict().values()))


def flat(model):
    return torch.cat([t.detach().float().flatten().cpu() for n, t in model.state_dict().items()
                      if not n.startswith('discriminator.')])


def losses_gap(runs, refs):
    "Largest relative difference of the logged losses (1.0 where a run has none: it stopped)."
    out = []
    for r, s in zip(runs, refs):
        if r.error or len(r.history) != len(s.history): out.append(1.0); continue
        out.append(float(((r.history.loss - s.history.loss).abs() / s.history.loss.abs()).max()))
    return max(out)


def equality(dev, precision, archs, tiny):
    """Check 1: stacked members against `train` (one step, trajectory), the other memory layout as the reference;
    the loop executor's largest |Δw| and the stacked one's are shown as information."""
    from vaecausal_nb.data import load_dataset
    from vaecausal_nb.fleet import train_fleet
    from vaecausal_nb.train import start_session, train
    n, bad = 2 if tiny else 3, 0
    tf32 = '' if precision == 'bf16' else (', TF32 off (cudnn.allow_tf32 = cuda.matmul.allow_tf32 = False)'
                                           if dev.type == 'cuda' else '')
    print(f'1. members vs train(cfg), {precision}{tf32}: worst of {n} members; bounds: one step {ONE_STEP:g}, '
          f'trajectory {TRAJECTORY:g} (or 3x the other layout)')
    print(f'{"arch":12} {"loop |Δw|":>9} {"one step":>9} {"(layout)":>9} {"trajectory":>10} {"(layout)":>9} '
          f'{"|Δw|":>8}', flush=True)
    ctx = fp32_exact() if precision == 'fp32' else contextlib.nullcontext()
    with ctx:
        for arch in archs:
            cfgs = [small(arch, i, dev, tiny, precision=precision) for i in range(n)]
            firsts = [dataclasses.replace(c, steps=1) for c in cfgs]
            other = lambda cs: [dataclasses.replace(c, channels_last=False) for c in cs]
            base = [(flat(start_session(c, load_dataset(c.dataset, **c.dataset_kwargs), dev).model),
                     flat(train(c).model)) for c in firsts]
            def share(runs, base=base):
                return max(((flat(r.model) - w1).norm() / (w1 - w0).norm()).item() for r, (w0, w1) in zip(runs, base))
            solo = [train(c) for c in cfgs]
            stacked = train_fleet(cfgs, mode='stacked', progress=False)
            one, one_ref = share(train_fleet(firsts, mode='stacked', progress=False)), share(
                [train(c) for c in other(firsts)])
            traj, traj_ref = losses_gap(stacked, solo), losses_gap([train(c) for c in other(cfgs)], solo)
            loop = gap(train_fleet(cfgs, mode='loop', progress=False), solo)
            ok = one <= max(ONE_STEP, 3 * one_ref) and traj <= max(TRAJECTORY, 3 * traj_ref)
            bad += not ok
            print(f'{arch:12} {loop:9.1e} {one:9.1e} {one_ref:9.1e} {traj:10.1e} {traj_ref:9.1e} '
                  f'{gap(stacked, solo):8.1e}{"" if ok else "  <- outside the bounds"}', flush=True)
    return bad


def syncs(dev, tiny):
    "Check 2 (see the module's docstring)."
    from vaecausal_nb.data import load_dataset
    from vaecausal_nb.fleet import _NoBar, _precision, _stacked_phase, _start
    from vaecausal_nb.train import TrainConfig
    bad, runs = 0, (('beta_vae', [{'beta': b} for b in (1.0, 4.0, 8.0, 16.0)]),
                    ('factor_vae', [{'gamma': g, 'disc_hidden': 32, 'disc_layers': 2} for g in (10.0, 20.0)]))
    ds = load_dataset('dsprites', procedural=True)
    if dev.type == 'cuda': ds.materialise(dev)                     # as a study fleet holds it: batches are gathers
    else: fake_resident(ds)
    for arch, hps in runs[1:] if tiny else runs:          # tiny: FactorVAE alone (two optimisers, a permutation)
        k = 2 if tiny else len(hps)
        cfgs = [TrainConfig(arch=arch, hparams=hps[i], dataset_kwargs={'procedural': True}, steps=100,
                            batch_size=8 if tiny else 64, seed=i, device=str(dev), progress=False) for i in range(k)]
        members = [_start(c, ds, dev) for c in cfgs]
        amp, dtype = _precision(members)
        _stacked_phase(members, 5, amp, dtype, _NoBar())   # warm-up: allocations, cuDNN's choices, the Adam states
        w = count_phase_waits(members, dev, 40)
        ok = not w['steps'] and len(w['looks']) <= w['n_looks']
        bad += not ok
        how = 'torch.cuda.set_sync_debug_mode' if dev.type == 'cuda' else 'HostReads, what would wait on CUDA'
        print(f'2. device waits of a 40-step stacked phase of {k} {arch} ({how}): steps {len(w["steps"])} '
              f'(allowed 0), looks {len(w["looks"])} in {w["n_looks"]} looks (allowed 1 each); once per phase: set-up '
              f'{len(w["setup"])}, write-back {len(w["write_back"])}{"" if ok else "  <- failed"}', flush=True)
        for part in ('steps', 'looks', 'setup', 'write_back'):
            for m in sorted(set(w[part])): print(f'   {part}: {m[:150]}')
    return bad


def copies(dev):
    "Check 3: `core.to_device` of an index tensor does not wait (CUDA only)."
    from vaecausal_nb.core import to_device
    if dev.type != 'cuda': print('3. skipped: to_device waits only on CUDA'); return 0
    x = torch.randn(4096, 4096, device=dev)
    torch.cuda.set_sync_debug_mode('error')
    try:
        x @ x
        to_device(torch.randint(0, 4096, (64,)), dev)
        ok, err = True, None
    except RuntimeError as e: ok, err = False, e
    finally: torch.cuda.set_sync_debug_mode('default')
    print(f'3. to_device without waiting: {"yes" if ok else f"no ({err})"}', flush=True)
    return not ok


def graphs(dev, tiny):
    "Check 4 (see the module's docstring)."
    from vaecausal_nb.fleet import train_fleet
    from vaecausal_nb.train import train
    if dev.type != 'cuda': print('4. skipped: CUDA graphs need CUDA'); return 0
    ready, why = compile_ready()
    if not ready: print(f'4. {why}'); return 0
    arch, kw = 'beta_vae', dict(compile='reduce-overhead')
    with fp32_exact():
        solo = [train(small(arch, i, dev, tiny, **kw)) for i in range(3)]
        runs = train_fleet([small(arch, i, dev, tiny, **kw) for i in range(3)], mode='stacked', progress=False)
    traj = losses_gap(runs, solo)
    finite = all(bool(torch.isfinite(torch.tensor(r.history['loss'].to_numpy())).all()) for r in runs)
    ok = traj <= TRAJECTORY and finite and not any(r.error for r in runs)
    print(f'4. CUDA graphs (reduce-overhead), {arch}, TF32 off: stacked vs train trajectory {traj:.1e} (bound '
          f'{TRAJECTORY:g}), largest |Δw| {gap(runs, solo):.1e}, losses finite: {finite}{"" if ok else "  <- failed"}',
          flush=True)
    return not ok


def tiny_spec(**kw):
    """A study spec small enough for a dry run on the CPU: every metric at its smallest valid size, on procedural
    Shapes3D (its largest factor has 15 classes, dSprites' 40: DCI's boosted trees, one per class, cost a quarter)."""
    from vaecausal_nb.study import StudySpec
    sizes = {'dci': (40, 40), 'mig': 40, 'sap': (40, 40), 'factor_vae': (4, 4, 40), 'beta_vae': (10, 4), 'irs': 40}
    return StudySpec(**{**dict(name='dry-run', archs=('vae',), datasets=('shapes3d',), steps=10, batch_size=8,
                               metric_sizes=sizes,
                               causal_images=8, modularity_images=2, probe_steps=10), **kw}).validate()


def measured(dev, quick, tiny):
    "Check 5: a run and a fleet through the study's own path, trained, measured and written on the device."
    from vaecausal_nb.study import jobs, preset, run_fleet, run_job
    root = Path(tempfile.mkdtemp())
    spec = (lambda **kw: tiny_spec(**kw)) if tiny or quick else (lambda **kw: preset('quick', **kw))
    bad, out = 0, []
    row = run_job(jobs(spec(archs=('vae',), steps=10 if tiny else 200))[0], root)
    out.append(('a run', row))
    if tiny: print("5. (tiny: a fleet's path is left to the study step)")
    for key, row, err in [] if tiny else run_fleet(jobs(spec(archs=('beta_vae',), seeds=(0, 1),
                                                             steps=300 if quick else 6000)), root):
        if err: bad += 1; print(f'   fleet member {key}: {err}')
        out.append(('a fleet member', row))
    for what, row in out:
        if row is None: continue
        print(f'5. {what} trained and measured on {dev.type}: {row["steps"]} steps in {row["seconds_train"]:.1f} s, '
              f'measured in {row["seconds_eval"]:.1f} s; DCI D {row["dci_disentanglement"]:.3f}, '
              f'CES {row["ces"]:.4f}, factor specificity {row["specificity_factor"]:.3f}', flush=True)
    return bad


COMPILE_TRIAL_S = 40        # a cold machine's first Triton build; longer and the compiled steps are not worth their time
TRIAL = ('import sys, torch; d = torch.device(sys.argv[1]); '
         'torch.compile(lambda x: torch.sin(x) + 1)(torch.ones(8, device=d)); torch.cuda.synchronize(d)')


def _compile_trial(dev:torch.device, why:str) -> str:
    """A tiny torch.compile in a child process, at most COMPILE_TRIAL_S seconds: the compiler, Triton and the driver
    together, once. Returns the preflight's `compile:` line (it starts with `skipped` when the trial failed)."""
    t0 = time.perf_counter()
    try: r = subprocess.run([sys.executable, '-c', TRIAL, str(dev)], capture_output=True, text=True,
                            timeout=COMPILE_TRIAL_S)
    except subprocess.TimeoutExpired:
        return f'skipped: a tiny torch.compile took more than {COMPILE_TRIAL_S} s; every compiled step is skipped'
    if r.returncode:
        last = (r.stderr.strip().splitlines() or ['no message'])[-1][:200]
        return f'skipped: a tiny torch.compile failed ({last}); every compiled step is skipped'
    return f'{why}; a compiled function ran in {time.perf_counter() - t0:.0f} s (a fresh process)'


def preflight(dev:torch.device) -> int:
    "Check 0: what the device offers and whether every later step can start; returns the number of problems."
    bad = 0
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    print(f'python {sys.version.split()[0]} ({sys.executable}); torch {torch.__version__}, CUDA {torch.version.cuda}, '
          f'cuDNN {cudnn}; {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads')
    if dev.type == 'cuda':
        if not torch.cuda.is_available(): print('GPU: none (torch.cuda.is_available() is False)'); return 1
        p = torch.cuda.get_device_properties(dev)
        free, total = torch.cuda.mem_get_info(dev)
        print(f'GPU: {p.name}, {p.multi_processor_count} SMs, compute capability {p.major}.{p.minor}; memory '
              f'{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB')
    else: print(f'device: {dev.type} (a dry run)')
    print(f'TF32 defaults: cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}, cuda.matmul.allow_tf32 '
          f'{torch.backends.cuda.matmul.allow_tf32} (fp32 convolutions run in TF32 unless a step turns it off)')
    for m in MODULES:                                     # first: a missing import stops the session, a compile not
        try: importlib.import_module(m)
        except Exception as e:
            bad += 1; print(f'import {m}: FAILED, {type(e).__name__}: {e}')
    print(f'imports: {len(MODULES) - bad} of {len(MODULES)} modules the steps need import', flush=True)
    ready, why = compile_ready(dev.type)
    if ready and dev.type == 'cuda': why = _compile_trial(dev, why)
    print(f'compile: {why}', flush=True)
    return bad


CHECKS = ('copies', 'syncs', 'fp32', 'study', 'bf16', 'graphs')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--device', default=None, help='cuda (default when available) or cpu (a dry run)')
    ap.add_argument('--quick', action='store_true', help="the trimmed set of gpu_session.sh's all")
    ap.add_argument('--tiny', action='store_true', help='tiny sizes (implied by --device cpu)')
    ap.add_argument('--only', default=None, help=f'comma-separated checks among {", ".join(CHECKS)}')
    ap.add_argument('--preflight', action='store_true', help='report what the device offers, and stop')
    args = ap.parse_args(argv)
    dev = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if args.preflight: return int(preflight(dev) > 0)
    if dev.type == 'cuda' and not torch.cuda.is_available(): print('these checks need a CUDA GPU'); return 1
    tiny = args.tiny or dev.type != 'cuda'
    only = args.only.split(',') if args.only else CHECKS
    unknown = sorted(set(only) - set(CHECKS))
    if unknown: ap.error(f'unknown check(s) {", ".join(unknown)}; choose among {", ".join(CHECKS)}')
    all_archs = ('vae', 'vq_vae') if tiny else tuple(SW)
    run = {'copies': lambda: copies(dev), 'syncs': lambda: syncs(dev, tiny),
           'fp32': lambda: equality(dev, 'fp32', all_archs, tiny),
           'study': lambda: measured(dev, args.quick, tiny),
           'bf16': lambda: (equality(dev, 'bf16', ('beta_vae', 'factor_vae', 'vq_vae') if args.quick else tuple(SW),
                                     tiny) if dev.type == 'cuda' else print('1b. skipped: bf16 autocast is checked '
                                                                            'on CUDA') or 0),
           'graphs': lambda: graphs(dev, tiny)}
    print(f'{torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (a dry run)"}, torch {torch.__version__}',
          flush=True)
    failed = 0
    for name in CHECKS:
        if name not in only: continue
        t0 = time.perf_counter()
        try: failed += bool(run[name]())
        except Exception as e:
            failed += 1
            print(f'check {name} failed with an error: {type(e).__name__}: {e}')
            traceback.print_exc(limit=-4, file=sys.stdout)
        print(f'   ({name}: {time.perf_counter() - t0:.0f} s)', flush=True)
    print('all passed' if not failed else f'{failed} check(s) failed', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
