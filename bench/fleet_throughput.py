"""Benchmark (not a test): training images/s of conv64 beta-VAEs one model at a time against fleets of K members
(`vaecausal_nb.fleet`), in one process and one run, on the CPU or on CUDA.

one at a time: K sessions built exactly as `train` builds them, each stepped `--steps` times in turn (the study's
               behaviour without fleets, minus process start-up).
fleet:         the same K members stepped together by the fleet's executor: `stacked` (parameters stacked, the step
               vmapped, one backward), `threads` (CPU: members on threads at once, the cores shared out) and `loop`
               (members in turn in one process, each on its own RNG; K <= 8 only, since its rate is that of one at a
               time). Only the steps are timed: the stacked executor's set-up (stacking K members) and write-back
               (once per phase, whatever its length) are timed apart and printed under the row, and its looks at
               the losses (a wait every `fleet.SYNC_EVERY` steps, then a Python loop over members) are left out.

For each K it prints training images/s (K x batch x steps / wall time after a warm-up), the ratio to one model at a
time, peak memory (CUDA: max allocated; CPU: the process's peak RSS so far) and the share of the device's peak FLOP/s
(FLOPs of one training step counted from the model with torch.utils.flop_counter; the peak is looked up for known
GPUs or given with --peak-tflops). The peak is that of the arithmetic that runs: bf16 under --bf16; in fp32, cuDNN
runs the convolutions in TF32 unless told not to (PyTorch's default, and what training does), so the share is of
the dense TF32 peak; --tf32 off turns TF32 off (cudnn.allow_tf32 = cuda.matmul.allow_tf32 = False) and the share is
of the plain FP32 peak. The header line says which. The executors take turns in --rounds rounds, so drift in the
machine's load hits them alike; rates and ratios are medians over rounds. K: 1, 4, 8 on the CPU; 1, 8, 32, 64 and
the largest that fits on CUDA; then one fleet on the 3-channel Shapes3D.

Data: for each row it also prints the images/s of the members' batches alone (`fleet.fleet_batches`, K members, as the
fleet draws them), rendered on demand and gathered from the dataset held on the device (`materialise`), and the
ratio of the data rate the training used to the best training rate of the row (the issue's goal: >= 10).
`--resident auto` holds a dataset on the device when a 10,000-step study run of the row's K members would
(`data.should_materialise`); yes / no force it.

    python bench/fleet_throughput.py [--device cpu|cuda] [--steps 6] [--rounds 3] [--batch 64] [--ks 1,4,8] [--bf16]
                                     [--compile [MODE]] [--peak-tflops X] [--modes loop,threads,stacked]
                                     [--resident auto|yes|no] [--no-rgb] [--tf32 default|off] [--data-seconds 1]
"""
import argparse, resource, statistics, time

import torch

from vaecausal_nb.core import get_device, retain_freed_memory
from vaecausal_nb.data import BatchIterator, load_dataset, should_materialise
from vaecausal_nb.fleet import (
    _NoBar, _precision, _run_phase, _Stack, _start, fleet_batches, fleet_capacity, member_bytes)
from vaecausal_nb.models import build_model
from vaecausal_nb.train import COMPILE_MODES, TrainConfig, compile_with, start_session, train_step

# dense peaks, TFLOP/s, from the vendors' data sheets: bf16 and TF32 on tensor cores, plain FP32 without them
# (SXM boards; the first name found in the GPU's name counts, so 'H100 PCIe' before 'H100')
PEAK_TFLOPS = {'H100 PCIe': {'bf16': 756.0, 'tf32': 378.0, 'fp32': 51.0},
               'H100': {'bf16': 989.0, 'tf32': 494.0, 'fp32': 67.0},
               'H200': {'bf16': 989.0, 'tf32': 494.0, 'fp32': 67.0},
               'A100': {'bf16': 312.0, 'tf32': 156.0, 'fp32': 19.5}, 'L4': {'bf16': 121.0, 'tf32': 60.0, 'fp32': 30.3}}


def step_flops(cfg, shape, device):
    "FLOPs of one training step (forward + backward) of one model at the config's batch size."
    from torch.utils.flop_counter import FlopCounterMode
    model = build_model(cfg.arch, cfg.latent_dim, shape, **cfg.hparams).to(device).train()
    x = torch.rand(cfg.batch_size, *shape, device=device)
    with FlopCounterMode(display=False) as fc:
        model.loss(x, model(x))['loss'].backward()
    return fc.get_total_flops()


def configs(k, dataset, args):
    return [TrainConfig(arch='beta_vae', hparams={'beta': float(1 + i % 8)}, dataset=dataset,
                        dataset_kwargs={'procedural': True}, steps=10**9, batch_size=args.batch, lr=1e-4, seed=i,
                        device=args.device, precision='bf16' if args.bf16 else 'fp32', compile=args.compile,
                        progress=False)
            for i in range(k)]


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def peak_reset(dev):
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev)


def peak_mib(dev):
    if dev.type == 'cuda': return torch.cuda.max_memory_allocated(dev) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timer(dev, fn):
    "A function of n that runs `fn(n)` and returns its wall time (the device synchronised around it)."
    def run(n):
        sync(dev); t = time.perf_counter(); fn(n); sync(dev)
        return time.perf_counter() - t
    return run


def one_at_a_time(cfgs, ds, dev, warm):
    "Sessions built as `train` builds them, warmed up; the timer steps each in turn for n steps."
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfgs[0].precision == 'bf16')
    sessions = [start_session(c, ds, dev) for c in cfgs]
    fwds = [compile_with(s.model, s.cfg.compile) for s in sessions]     # as `train` does
    def run(n):
        for s, f in zip(sessions, fwds):
            for _ in range(n): train_step(s, f, amp)
    run(warm)
    return timer(dev, run)


def fleet(cfgs, ds, dev, warm, mode):
    """The members as the fleet builds them, warmed up, and the timer of n of their steps. For `stacked`: the steps
    alone (`_Stack.step`), without the phase's set-up and write-back (timed once here, returned) and its looks at the
    losses; the others: one phase of n steps (they have no set-up)."""
    members = [_start(c, ds, dev) for c in cfgs]
    if mode != 'stacked':
        run = lambda n: _run_phase(mode, members, n, _NoBar())
        run(warm)
        return timer(dev, run), None
    amp, dtype = _precision(members)
    sync(dev); t0 = time.perf_counter()
    st = _Stack(members, amp, dtype)
    sync(dev); setup = time.perf_counter() - t0
    def run(n):
        for _ in range(n): st.step()
    run(warm)
    sync(dev); t0 = time.perf_counter()
    for k in range(len(members)): st.write_back(k)
    sync(dev)
    return timer(dev, run), (setup, time.perf_counter() - t0)


def data_rate(ds, k, batch, dev, seconds=1.0):
    "Images/s of `fleet_batches` for k members drawing from `ds` (as it is held now: rendered or resident)."
    its = [BatchIterator(ds, batch, dev, seed=i) for i in range(k)]
    fleet_batches(its); sync(dev)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(5): fleet_batches(its)
        sync(dev); n += 5
    return k * batch * n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--device', default=None)
    ap.add_argument('--steps', type=int, default=None, help='timed steps per measurement (CPU 10, CUDA 50)')
    ap.add_argument('--warm', type=int, default=3)
    ap.add_argument('--rounds', type=int, default=3, help='timed rounds per executor, taken in turn (median reported)')
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--ks', default=None, help='fleet sizes (CPU: 1,4,8; CUDA: 1,8,32,64 and the largest that fits)')
    ap.add_argument('--modes', default=None, help='executors to time (CPU: loop,threads,stacked; CUDA: loop,stacked)')
    ap.add_argument('--bf16', action='store_true')
    ap.add_argument('--compile', nargs='?', const=True, default=False, metavar='MODE',
                    help='torch.compile the models (one at a time) and the mapped step, in the default mode or MODE '
                         f'({", ".join(COMPILE_MODES)})')
    ap.add_argument('--peak-tflops', type=float, default=None)
    ap.add_argument('--max-k', type=int, default=512, help='cap on "the largest that fits"')
    ap.add_argument('--no-rgb', action='store_true', help='leave out the last row (a fleet on the 3-channel Shapes3D)')
    ap.add_argument('--resident', default='auto', choices=('auto', 'yes', 'no'),
                    help='hold each dataset on the device (auto: when a 10,000-step run of the fleet would)')
    ap.add_argument('--tf32', default='default', choices=('default', 'off'),
                    help="fp32: TF32 as PyTorch has it (cuDNN's convolutions in TF32) or off")
    ap.add_argument('--data-seconds', type=float, default=1.0, help='seconds each data rate is measured for')
    args = ap.parse_args()
    if args.compile not in (False, True, *COMPILE_MODES):
        ap.error(f'--compile {args.compile}: choose a mode from {", ".join(COMPILE_MODES)} (or none for the default)')
    dev = get_device(args.device)
    args.device = str(dev)
    if dev.type == 'cpu': retain_freed_memory()          # as train and train_fleet do
    cuda = dev.type == 'cuda'
    steps = args.steps or (50 if cuda else 6)
    name = torch.cuda.get_device_name(dev) if cuda else f'CPU, {torch.get_num_threads()} threads'
    prec = 'bf16' if args.bf16 else 'fp32'
    if args.tf32 == 'off': torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    kind = 'bf16' if args.bf16 else 'tf32' if cuda and torch.backends.cudnn.allow_tf32 else 'fp32'
    arith = {'bf16': 'bf16 autocast', 'tf32': "fp32, convolutions in TF32 (cuDNN's default; --tf32 off turns it off)",
             'fp32': 'fp32, TF32 off' if cuda else 'fp32'}[kind]
    peak = args.peak_tflops or next((v[kind] for k, v in PEAK_TFLOPS.items() if cuda and k in name), None)
    arith += f'; % peak: of the dense {kind.upper()} peak, {peak} TFLOP/s' if peak else '; peak unknown'
    ds1 = load_dataset('dsprites', procedural=True)
    probe = configs(1, 'dsprites', args)[0]
    cap = min(args.max_k, fleet_capacity(probe, ds1.image_shape, dev))
    ks = [int(k) for k in args.ks.split(',')] if args.ks else ([1, 8, 32, 64, cap] if cuda else [1, 4, 8])
    ks = sorted({k for k in ks if k <= cap})
    modes = (args.modes or ('loop,stacked' if cuda else 'loop,threads,stacked')).split(',')
    print(f'device: {name}; torch {torch.__version__}; conv64 beta-VAE, batch {args.batch}, {prec}'
          f'{"" if not args.compile else ", compiled" if args.compile is True else f", compiled ({args.compile})"}, '
          f'{steps} timed steps '
          f'after {args.warm} warm-up; {member_bytes(probe, ds1.image_shape) / 2**20:.0f} MiB a member (estimate), '
          f'{cap} fit; {arith}')
    runs = [('dsprites', k) for k in ks] + ([] if args.no_rgb else [('shapes3d', min(8 if not cuda else 64, cap))])
    print(f'{"dataset":9} {"K":>4} {"executor":13} {"images/s":>10} {"ratio":>6} {"peak MiB":>9} {"% peak":>7}')
    for dname, k in runs:
        ds = ds1 if dname == 'dsprites' else load_dataset(dname, procedural=True)
        cfgs = configs(k, dname, args)
        flops = step_flops(cfgs[0], ds.image_shape, dev)
        held, ds.resident = ds.resident, None
        rendered = data_rate(ds, k, args.batch, dev, args.data_seconds)     # rendered on demand, whatever is held
        ds.resident = held
        hold = args.resident == 'yes' or (args.resident == 'auto' and (held is not None or should_materialise(
            ds, dev, k * args.batch * 10_000)))
        if hold and ds.resident is None:
            t0 = time.perf_counter(); ds.materialise(dev); sync(dev)
            print(f'{dname} held on {dev.type}: {ds.resident.numel() / 2**30:.1f} GiB in {time.perf_counter() - t0:.0f} s')
        resident = data_rate(ds, k, args.batch, dev, args.data_seconds) if ds.resident is not None else float('nan')
        if ds.resident is not None and not hold: ds.resident = None
        n = min(k, 8)                         # one at a time: the rate of 8 in turn stands for any K above (it is flat)
        peak_reset(dev)
        runners = {'one at a time': one_at_a_time(cfgs[:n], ds, dev, args.warm)}
        mem, phase = {'one at a time': peak_mib(dev)}, {}
        for mode in modes:
            if mode == 'loop' and k > 8: continue     # the loop is one at a time in one process: above 8, only time
            peak_reset(dev)
            try: runners[mode], phase[mode] = fleet(cfgs, ds, dev, args.warm, mode)
            except (MemoryError, RuntimeError) as e:        # torch's OutOfMemoryError is a RuntimeError (any version)
                if 'out of memory' not in str(e) and not isinstance(e, MemoryError): raise
                print(f'{dname:9} {k:>4} {mode:13} out of memory'); continue
            mem[mode] = peak_mib(dev)
        rates = {m: [] for m in runners}
        for _ in range(args.rounds):          # the executors take turns, so drift in the machine's load hits all alike
            for m, r in runners.items(): rates[m].append((n if m == 'one at a time' else k) * args.batch * steps / r(steps))
        base = rates['one at a time']
        for m, rs in rates.items():
            ratio = statistics.median(a / b for a, b in zip(rs, base))
            rate = statistics.median(rs)
            share = rate / args.batch * flops / 1e12 / peak * 100 if peak else float('nan')
            print(f'{dname:9} {k:>4} {m:13} {rate:>10.0f} {ratio:>6.2f} {mem[m]:>9.0f} {share:>7.2f}', flush=True)
            if phase.get(m): print(f'{"":15}{m} phase, not in the rate: set-up {phase[m][0]:.2f} s, write-back '
                                   f'{phase[m][1]:.2f} s (once per phase)', flush=True)
        best = max(statistics.median(rs) for rs in rates.values())
        used = resident if hold else rendered
        print(f'{dname:9} {k:>4} {"data":13} rendered {rendered:,.0f} images/s, resident {resident:,.0f}; the data '
              f'the training used ({"resident" if hold else "rendered"}) is {used / best:.0f}x the best training rate',
              flush=True)
        del runners
        if cuda: torch.cuda.empty_cache()

if __name__ == '__main__':
    main()
