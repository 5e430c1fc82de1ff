"""Benchmark (not a test): what measuring a run costs beside training it, per part, per architecture and per preset.

For each study preset asked for, one run of each architecture (the preset's first configuration of that architecture
on its first dataset) is trained as the study trains it (the preset's steps, batch size, learning rate and
hyper-parameters; one run on this device, not a fleet), then every part of the study's measurement of that run is
timed on its own:
- `loss` (the held-out loss terms), `codes` and each disentanglement metric (`metrics.evaluate`'s seconds),
- `causal` (`causal_metrics.causal_summary`: CES, specificity, modularity, the axis baseline), `counterfactual`
  (`causal_metrics.counterfactual_fidelity`) and each control the preset asks for,
- `probe`: the factor probe, trained once per dataset and shared by the preset's runs (printed apart, not in a run's
  total; it is trained here into a temporary folder, so it is timed even where one is cached).
It prints one row per (preset, architecture): the seconds of each part, `measure` (their sum), `train`, and the ratio
measure / train, then the mean ratio per preset. Numbers are of this machine only; they change with its load.

    python bench/measure_cost.py                                   # quick and standard presets, every architecture
    python bench/measure_cost.py --presets gpu --device cuda       # on a GPU machine
    python bench/measure_cost.py --presets quick --archs vae beta_vae --threads 1 --csv cost.csv
"""
import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from vaecausal_nb.causal_metrics import causal_summary, counterfactual_fidelity
from vaecausal_nb.controls import control_measures
from vaecausal_nb.core import torch_threads
from vaecausal_nb.data import load_dataset
from vaecausal_nb.measure import COUNTERFACTUAL_PAIRS, COUNTERFACTUAL_SEED, causal_images, loss_summary
from vaecausal_nb.metrics import METRICS, evaluate
from vaecausal_nb.probes import factor_probe
from vaecausal_nb.study import PRESETS, jobs, preset
from vaecausal_nb.train import TrainConfig, train


def first_jobs(name:str, archs=None, dci_estimator=None) -> list[dict]:
    "The preset's first job of each architecture (on its first dataset, first seed), in the preset's order."
    spec = preset(name, **({'dci_estimator': dci_estimator} if dci_estimator else {}))
    out, seen = [], set()
    for j in jobs(spec):
        arch = j['train']['arch']
        if j['train']['dataset'] != spec.datasets[0] or arch in seen or (archs and arch not in archs): continue
        seen.add(arch); out.append(j)
    return out


def timed(f, *a, **kw):
    t = time.perf_counter()
    r = f(*a, **kw)
    return r, time.perf_counter() - t


def cost(job:dict, dataset, probe, device:str, folder:Path) -> dict:
    "Train one job and time each part of its measurement; seconds by part."
    cfg = TrainConfig.from_dict({**job['train'], 'out_dir': str(folder / job['name']), 'device': device,
                                 'checkpoint_every': job['train']['steps']})
    run, t_train = timed(train, cfg, dataset)
    ev, seed = job['eval'], cfg.seed
    row = {'arch': cfg.arch, 'steps': cfg.steps, 'train': t_train}
    _, row['loss'] = timed(loss_summary, run.model, dataset, seed)
    scores = evaluate(run.model, dataset, sizes=ev['metric_sizes'], seed=seed, metrics=ev.get('metrics', METRICS),
                      progress=False, dci_estimators=(ev.get('dci_estimator', 'exact'),))
    row.update({k.removeprefix('seconds_'): v for k, v in scores.items()
                if k.startswith('seconds_') and k != 'seconds_total'})
    x = causal_images(dataset, ev['causal_images'], seed)
    _, row['causal'] = timed(causal_summary, run.model, x, probe=probe, modularity_images=ev['modularity_images'])
    pairs = ev.get('counterfactual_pairs', COUNTERFACTUAL_PAIRS)
    if pairs: _, row['counterfactual'] = timed(counterfactual_fidelity, run.model, dataset, n_pairs=pairs,
                                               seed=COUNTERFACTUAL_SEED + seed)
    if ev.get('controls'):
        c = control_measures(run.model, dataset, x, ev['controls'], steps=cfg.steps, probe=probe,
                             modularity_images=ev['modularity_images'], seed=seed, batch_size=cfg.batch_size,
                             lr=cfg.lr, metric_sizes=ev['metric_sizes'], dci_estimator=ev.get('dci_estimator', 'exact'))
        row.update({k.removeprefix('seconds_'): v for k, v in c.items() if k.startswith('seconds_')})
    parts = [k for k in row if k not in ('arch', 'steps', 'train')]
    row['measure'] = sum(row[k] for k in parts)
    row['measure/train'] = row['measure'] / row['train']
    return row


def main(presets=('quick', 'standard'), archs=None, device='cpu', threads=None, csv=None, dci_estimator=None):
    rows = []
    with torch_threads(threads) as n_threads, tempfile.TemporaryDirectory() as tmp:
        for name in presets:
            todo = first_jobs(name, archs, dci_estimator)
            ds = load_dataset(todo[0]['train']['dataset'], **todo[0]['train'].get('dataset_kwargs', {}), device=device)
            probe, t_probe = timed(factor_probe, ds, steps=todo[0]['eval']['probe_steps'], root=Path(tmp) / name,
                                   progress=False)
            print(f'{name}: factor probe of {ds.name}, {todo[0]["eval"]["probe_steps"]} steps: {t_probe:.1f} s '
                  f'(once per dataset)', flush=True)
            for j in todo:
                r = {'preset': name, **cost(j, ds, probe, device, Path(tmp) / name), 'probe (shared)': t_probe}
                rows.append(r)
                print(f"  {r['arch']:14s} train {r['train']:7.1f} s  measure {r['measure']:7.1f} s  "
                      f"ratio {r['measure/train']:.2f}", flush=True)
    df = pd.DataFrame(rows).set_index(['preset', 'arch'])
    with pd.option_context('display.width', 200, 'display.max_columns', 40):
        print(f'\nseconds on {device} ({n_threads} torch threads):')
        print(df.round(2).to_string())
        print('\nmeasure / train, mean over architectures:')
        print(df.groupby(level='preset', sort=False)['measure/train'].mean().round(2).to_string())
    if csv: df.to_csv(csv)
    return df


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--presets', nargs='+', default=['quick', 'standard'], choices=list(PRESETS))
    p.add_argument('--archs', nargs='+', default=None, help='architectures (default: every one the preset trains)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: as they are)')
    p.add_argument('--csv', default=None, help='also write the table here')
    p.add_argument('--dci-estimator', default=None, choices=('exact', 'fast'), help="DCI's trees (default: the preset's)")
    a = p.parse_args()
    main(a.presets, a.archs, a.device, a.threads, a.csv, a.dci_estimator)
