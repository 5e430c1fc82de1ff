"""Nothing a user wrote is ever deleted or overwritten: each case found by trying the package as a user would."""
import contextlib
import errno
import json
import os
import sys
import unittest.mock
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import cli  # the `vaecausal` command run in this process
from vaecausal_nb.core import VaeCausalError
from vaecausal_nb.data import load_dataset
from vaecausal_nb.study import StudySpec, run_study
from vaecausal_nb.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
VAECAUSAL = [str(Path(sys.executable).parent / 'vaecausal')]
TRAIN = ['train', '--arch', 'vae', '--procedural', '--batch-size', '8', '--device', 'cpu', '--checkpoint-every', '4']


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def test_train_refuses_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / 'mine'
    (out / 'ckpt-old-notes').mkdir(parents=True)
    (out / 'ckpt-old-notes' / 'results.txt').write_text('three weeks of notes')
    (out / 'history.csv').write_text('step,my own numbers\n')
    before = snapshot(out)
    r = cli(*TRAIN, '--steps', '4', '--out', str(out))
    assert r.returncode == 2, r.stderr
    assert 'holds no run (no config.json)' in r.stderr and r.stderr.strip().count('\n') == 0
    assert snapshot(out) == before


def test_only_the_trainers_own_checkpoints_are_removed(tmp_path):
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '4', '--out', str(out)).returncode == 0
    (out / 'ckpt-notes').mkdir()
    (out / 'ckpt-notes' / 'keep.txt').write_text('mine')
    assert cli(*TRAIN, '--steps', '8', '--out', str(out)).returncode == 0      # continued: ckpt-4 replaced by ckpt-8
    assert sorted(p.name for p in out.glob('ckpt-*')) == ['ckpt-8', 'ckpt-notes']
    assert (out / 'ckpt-notes' / 'keep.txt').read_text() == 'mine'


def test_fewer_steps_than_trained_is_refused(tmp_path):
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '8', '--out', str(out)).returncode == 0
    before = snapshot(out)
    r = cli(*TRAIN, '--steps', '4', '--out', str(out))
    assert r.returncode == 2 and 'already holds 8 trained steps, more than the 4 asked for' in r.stderr
    assert snapshot(out) == before                                            # config.json still says 8 steps


def test_a_bad_hparam_writes_nothing_and_the_fix_then_runs(tmp_path):
    out = tmp_path / 'run'
    r = cli('train', '--arch', 'beta_vae', '--hparam', 'beta=abc', '--procedural', '--steps', '4', '--batch-size', '8',
            '--out', str(out))
    assert r.returncode == 2 and 'beta must be a finite number' in r.stderr
    assert not out.exists()
    r = cli('train', '--arch', 'beta_vae', '--hparam', 'beta=2', '--procedural', '--steps', '4', '--batch-size', '8',
            '--device', 'cpu', '--out', str(out))
    assert r.returncode == 0, r.stderr


def _dsprites(path, imgs_scale=1):
    sizes = (1, 3, 2, 2, 2, 2)
    n = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(n), sizes), 1)
    imgs = (np.arange(n * 64 * 64).reshape(n, 64, 64) % 2).astype(np.uint8) * imgs_scale
    np.savez(path, imgs=imgs, latents_classes=classes, latents_values=classes.astype(float))


@pytest.mark.parametrize('scale', [255, 2])
def test_dsprites_pixels_out_of_range_are_refused(tmp_path, scale):
    _dsprites(tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz', scale)
    with pytest.raises(VaeCausalError, match=rf'pixel values up to {scale}, expected 0..1'):
        load_dataset('dsprites', root=tmp_path, procedural=False)
    _dsprites(tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz', 1)
    assert load_dataset('dsprites', root=tmp_path, procedural=False).images([0]).max() == 255


def test_float_3dshapes_images_are_refused(tmp_path):
    sizes = (2, 1, 1, 1, 1, 2)
    n = int(np.prod(sizes))
    labels = np.stack(np.unravel_index(np.arange(n), sizes), 1).astype(float)
    with h5py.File(tmp_path / '3dshapes.h5', 'w') as h:
        h['images'] = np.random.default_rng(0).random((n, 64, 64, 3)).astype(np.float32)
        h['labels'] = labels
    with pytest.raises(VaeCausalError, match='holds float32 images, expected uint8'):
        load_dataset('shapes3d', root=tmp_path, procedural=False)


@pytest.mark.parametrize('bad, msg', [({'metric_sizes': {'dci': 5}}, "sizes['dci'] must be 2 positive integers"),
                                      ({'seeds': [-1]}, 'seeds must be integers >= 0, got -1')])
def test_study_spec_errors_surface_before_anything_runs(tmp_path, bad, msg):
    spec = json.loads(json.dumps({'name': 'x', 'archs': ['vae'], 'steps': 2, **bad}))
    (tmp_path / 'spec.json').write_text(json.dumps(spec))
    r = cli('study', '--spec', str(tmp_path / 'spec.json'), '--out', str(tmp_path / 'root'), '--no-progress')
    assert r.returncode == 2 and msg in r.stderr
    assert not (tmp_path / 'root').exists()                                   # nothing trained, nothing written


def test_full_disk_during_a_checkpoint_keeps_the_last_good_one(tmp_path):
    cfg = dict(arch='vae', dataset_kwargs={'procedural': True}, batch_size=8, checkpoint_every=2, progress=False,
               device='cpu', out_dir=str(tmp_path / 'run'))
    train(TrainConfig(steps=2, **cfg))
    good = snapshot(tmp_path / 'run' / 'ckpt-2')
    def full(fd): raise OSError(errno.ENOSPC, 'No space left on device')
    with unittest.mock.patch('os.fsync', full), pytest.raises(VaeCausalError, match=r'No space left on device'):
        train(TrainConfig(steps=4, **cfg))
    assert snapshot(tmp_path / 'run' / 'ckpt-2') == good
    assert (tmp_path / 'run' / 'LATEST').read_text() == 'ckpt-2'
    assert not list((tmp_path / 'run').glob('.*.tmp')) and not list((tmp_path / 'run').rglob('.ckpt-*'))
    run = train(TrainConfig(steps=4, **cfg))                                  # space again: it resumes and finishes
    assert int(run.history['step'].iloc[-1]) == 4


def test_an_empty_study_root_gets_no_empty_bar(tmp_path, capfd):
    spec = StudySpec(name='none', archs=('vae',), steps=2, batch_size=8, probe_steps=2, causal_images=4, modularity_images=2,
                     metric_sizes={'dci': (100, 80), 'mig': 100, 'sap': (100, 80), 'factor_vae': (4, 4, 40),
                                   'beta_vae': (10, 4), 'irs': 100})
    run_study(spec, tmp_path, workers=1, progress=False)
    capfd.readouterr()
    run_study(spec, tmp_path, workers=1, progress=True)                       # everything finished: nothing to show
    assert '0it' not in capfd.readouterr().err
    assert not list((tmp_path / 'runs').glob('.*.lock'))                     # lock files go with their runs
    assert os.stat(tmp_path / 'runs' / next(p.name for p in (tmp_path / 'runs').iterdir()) / 'metrics.json').st_mode & 0o044


# issue #29: the train CLI and train/load_run as a user would use them
CFG = dict(arch='vae', dataset_kwargs={'procedural': True}, batch_size=8, checkpoint_every=2, log_every=1, progress=False,
           device='cpu')


def a_run_with_a_users_folder(tmp_path, name):
    "A 4-step run whose folder the user then gave a folder `name` of their own; the run folder and that folder's bytes."
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '4', '--out', str(out)).returncode == 0
    (out / name).mkdir()
    (out / name / 'results.txt').write_text('three weeks of notes')
    return out, snapshot(out / name)


def test_a_users_folder_named_like_a_checkpoint_is_left_alone(tmp_path):
    out, before = a_run_with_a_users_folder(tmp_path, 'ckpt-000010')
    assert cli(*TRAIN, '--steps', '12', '--out', str(out)).returncode == 0    # writes ckpt-8, ckpt-12; removes its own
    assert snapshot(out / 'ckpt-000010') == before
    assert sorted(p.name for p in out.glob('ckpt-*')) == ['ckpt-000010', 'ckpt-12']
    assert json.loads((out / 'run.json').read_text())['checkpoints'] == ['ckpt-12']


@pytest.mark.parametrize('name', ['ckpt-8', 'ckpt-6'])
def test_a_users_folder_with_a_checkpoints_name_is_refused_before_training(tmp_path, name):
    "ckpt-8 the trainer would write at the end, ckpt-6 at a pause (a time limit may stop a run at any step)."
    out, _ = a_run_with_a_users_folder(tmp_path, name)
    before = snapshot(out)
    r = cli(*TRAIN, '--steps', '8', '--out', str(out))
    assert r.returncode == 2 and r.stderr.strip() == (                      # at the start: no progress bar, no step
        f'vaecausal: error: {out / name} was not written by this run (run.json does not list it), and training to step '
        f'8 may write a checkpoint of that name; it is left alone: move it out of {out} and run again'), r.stderr
    assert snapshot(out) == before                                          # nothing trained, nothing rewritten


def test_a_write_killed_midway_leaves_no_temporary_after_the_resume(tmp_path):
    "SIGKILL inside atomic_write leaves `.run.json.<8 chars>.tmp`; the resume removes ours and keeps the user's."
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '4', '--out', str(out)).returncode == 0
    for n in ('.run.json.k1ll3d_x.tmp', '.model.safetensors.abcdefgh.tmp', '.notes.md.abcdefgh.tmp', '.run.json.tmp'):
        (out / n).write_text('half')
    assert cli(*TRAIN, '--steps', '8', '--out', str(out)).returncode == 0
    assert sorted(p.name for p in out.glob('.*.tmp')) == ['.notes.md.abcdefgh.tmp', '.run.json.tmp']


def test_a_users_files_inside_an_old_checkpoint_are_kept(tmp_path, caplog):
    "The trainer removes its own old checkpoints file by file: a study or notes a user put inside one stay, said."
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '4', '--out', str(out)).returncode == 0
    (out / 'ckpt-4' / 'inner').mkdir(); (out / 'ckpt-4' / 'inner' / 'study.json').write_text('{"mine": 1}')
    (out / 'ckpt-4' / 'NOTES.txt').write_text('three weeks of notes')
    before = snapshot(out / 'ckpt-4' / 'inner'), (out / 'ckpt-4' / 'NOTES.txt').read_text()
    assert cli(*TRAIN, '--steps', '8', '--out', str(out)).returncode == 0           # writes ckpt-8, retires ckpt-4
    assert (snapshot(out / 'ckpt-4' / 'inner'), (out / 'ckpt-4' / 'NOTES.txt').read_text()) == before
    assert sorted(p.name for p in (out / 'ckpt-4').iterdir()) == ['NOTES.txt', 'inner']    # ours gone, theirs kept
    assert json.loads((out / 'run.json').read_text())['checkpoints'] == ['ckpt-8']
    assert 'ckpt-4 holds files vaecausal_nb did not write (NOTES.txt, inner); they are kept' in caplog.text


@pytest.mark.parametrize('text, says', [
    ('[1]', 'it holds a JSON list'), ('null', 'it holds a JSON NoneType'), ('"str"', 'it holds a JSON str'),
    ('{}', 'it lacks arch, dataset, latent_dim, steps, seed'),
    ('{"arch": "vae", "dataset": "dsprites", "latent_dim": 10, "steps": "x", "seed": 0}', "it has steps 'x'"),
    ('{"arch": "nope", "dataset": "dsprites", "latent_dim": 10, "steps": 4, "seed": 0}', "it has arch 'nope'")])
def test_a_config_json_edited_by_hand_is_one_clear_error(tmp_path, text, says):
    from vaecausal_nb.train import load_run
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '4', '--out', str(out)).returncode == 0
    (out / 'config.json').write_text(text)
    before = snapshot(out)
    with pytest.raises(VaeCausalError) as e: load_run(out)
    assert str(e.value) == (f'{out / "config.json"} is not a vaecausal_nb training config ({says}); restore it, or '
                            f'delete {out} to retrain')
    r = cli('measure', str(out), '--sizes', 'quick')
    assert r.returncode == 2 and says in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert snapshot(out) == before


@pytest.mark.parametrize('name, text, says', [
    ('config.json', '{"x": 1}', 'config.json is not a vaecausal_nb training config (it has no arch and steps): '),
    ('LATEST', 'my notes', 'is not empty and holds no run (no config.json): its files were not written by vaecausal_nb')])
def test_a_users_file_with_a_trainers_name_is_not_taken_for_a_run(tmp_path, name, text, says):
    "A user's own config.json or LATEST: the error says the folder is not a run, and does not advise deleting it."
    out = tmp_path / 'mine'; out.mkdir(); (out / name).write_text(text)
    r = cli(*TRAIN, '--steps', '4', '--out', str(out))
    assert r.returncode == 2 and says in r.stderr and 'delete' not in r.stderr, r.stderr
    assert sorted(p.name for p in out.iterdir() if p.name != '.vaecausal.lock') == [name]
    assert (out / name).read_text() == text


def test_a_second_writer_of_a_run_folder_is_refused(tmp_path):
    from vaecausal_nb.train import LOCK_FILE, folder_lock
    out = tmp_path / 'run'
    out.mkdir()
    with folder_lock(out, 'run folder'):                     # held as a first `vaecausal train` would hold it
        r = cli(*TRAIN, '--steps', '4', '--seed', '1', '--out', str(out))
        assert r.returncode == 2 and r.stderr.strip() == (
            f'vaecausal: error: another process (pid {os.getpid()}) is writing the run folder {out}; wait for it to '
            'finish (or stop it), then run again'), r.stderr
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]                # nothing of the second run written
    assert not (out / LOCK_FILE).exists()
    (out / LOCK_FILE).write_text('999999999\n')                              # left by a killed process: taken over
    assert cli(*TRAIN, '--steps', '4', '--seed', '1', '--out', str(out)).returncode == 0
    assert json.loads((out / 'config.json').read_text())['seed'] == 1 and not (out / LOCK_FILE).exists()


def test_a_continued_run_stopped_part_way_is_not_read_as_finished(tmp_path):
    import itertools
    from safetensors.torch import load_file, save_file
    from vaecausal_nb import train as T
    run = tmp_path / 'run'
    cfg = dict(CFG, out_dir=str(run))
    train(TrainConfig(steps=4, **cfg))
    with unittest.mock.patch.object(T, '_now', side_effect=itertools.count()), pytest.raises(T.OutOfTime):
        train(TrainConfig(steps=8, **cfg), until=2)                          # stopped at step 6 of 8, like a kill
    msg = (f'{run} stopped at step 6 of 8: it was continued after it finished at step 4, and its model.safetensors is '
           f'still from then; train the same config into {run} again to resume from step 6 and finish (e.g. vaecausal '
           f'train ... --steps 8 --out {run})')
    with pytest.raises(VaeCausalError) as e: T.load_run(run)
    assert str(e.value) == msg
    save_file(load_file(str(run / 'model.safetensors')), str(run / 'model.safetensors'))   # an older run: no step
    with pytest.raises(VaeCausalError, match=r'stopped at step 6 of 8: it was continued after it finished, and'):
        T.load_run(run)
    train(TrainConfig(steps=8, **cfg))                                       # as the message says
    assert T.load_run(run).history['step'].tolist() == list(range(1, 9))


def test_a_checkpoint_that_lost_its_history_is_refused(tmp_path):
    run = tmp_path / 'run'
    train(TrainConfig(steps=2, out_dir=str(run), **CFG))
    (run / 'ckpt-2' / 'history.csv').unlink()
    before = snapshot(run)
    with pytest.raises(VaeCausalError) as e: train(TrainConfig(steps=4, out_dir=str(run), **CFG))
    assert str(e.value) == (f'{run / "ckpt-2"} cannot be resumed: its history.csv is missing, but the checkpoint logged '
                            f'2 rows; put the file back, or delete {run} to retrain')
    assert snapshot(run) == before                                           # config.json still says 2 steps
    (run / 'ckpt-2' / 'history.csv').write_text('step,loss\n2,1.5\n')        # a row lost
    with pytest.raises(VaeCausalError, match='its history.csv has 1 rows, but the checkpoint logged 2 rows'):
        train(TrainConfig(steps=4, out_dir=str(run), **CFG))


@pytest.mark.skipif(not Path('/proc/self/fd').is_dir(), reason='finds the file being written through /proc')
def test_a_full_disk_while_checkpointing_leaves_no_temporary_folder(tmp_path):
    run = tmp_path / 'run'
    train(TrainConfig(steps=2, out_dir=str(run), **CFG))
    good = snapshot(run / 'ckpt-2')
    real = os.fsync
    def full(fd):                                            # the weights are written, then the state finds no space
        if '.ckpt-4.tmp/.state.pt' in os.readlink(f'/proc/self/fd/{fd}'): raise OSError(errno.ENOSPC, 'No space left on device')
        return real(fd)
    with unittest.mock.patch('os.fsync', full), pytest.raises(VaeCausalError, match=r'state.pt failed \(No space left'):
        train(TrainConfig(steps=4, out_dir=str(run), **CFG))
    assert not list(run.glob('.ckpt-*')) and not list(run.glob('.*.tmp'))
    assert snapshot(run / 'ckpt-2') == good and (run / 'LATEST').read_text() == 'ckpt-2'
    assert int(train(TrainConfig(steps=4, out_dir=str(run), **CFG)).history['step'].iloc[-1]) == 4


@contextlib.contextmanager
def threads(n):
    "torch's thread count set to n, restored after (core.torch_threads where it exists)."
    from vaecausal_nb import core
    if hasattr(core, 'torch_threads'):
        with core.torch_threads(n): yield
        return
    was = torch.get_num_threads()
    torch.set_num_threads(n)
    try: yield
    finally: torch.set_num_threads(was)


def test_the_thread_count_is_recorded_and_a_change_is_said(tmp_path):
    import logging
    from safetensors import safe_open
    run = tmp_path / 'run'
    said = []
    h = logging.Handler(logging.WARNING)
    h.emit = lambda r: said.append(r.getMessage())
    logging.getLogger('vaecausal_nb').addHandler(h)
    try:
        with threads(1): train(TrainConfig(steps=2, out_dir=str(run), **CFG))
        assert torch.load(run / 'ckpt-2' / 'state.pt', weights_only=True)['threads'] == 1
        assert json.loads((run / 'run.json').read_text())['threads'] == [{'from_step': 0, 'threads': 1}]
        with safe_open(str(run / 'model.safetensors'), 'pt') as f: assert f.metadata() == {'step': '2', 'threads': '1'}
        with threads(1): train(TrainConfig(steps=4, out_dir=str(run), **CFG))
        assert said == []                                                    # the same count: nothing to say
        with threads(2): train(TrainConfig(steps=6, out_dir=str(run), **CFG))
        with threads(1): train(TrainConfig(steps=6, out_dir=str(run), **CFG))   # finished: nothing trained, nothing said
    finally: logging.getLogger('vaecausal_nb').removeHandler(h)
    assert said == [f'{run} was trained with 1 torch threads up to step 4 and goes on with 2: on the CPU it is then not '
                    'bit-identical to an uninterrupted run (sums are split by thread); torch.set_num_threads(1) '
                    'resumes it exactly']
    assert torch.load(run / 'ckpt-6' / 'state.pt', weights_only=True)['threads'] == 2
    assert json.loads((run / 'run.json').read_text())['threads'] == [{'from_step': 0, 'threads': 1},
                                                                     {'from_step': 4, 'threads': 2}]   # each count kept
    assert 'threads' not in json.loads((run / 'config.json').read_text())    # not in the config, so not in the run key


def test_a_resume_on_another_source_of_images_is_refused(tmp_path, monkeypatch):
    "Trained where no dSprites file was (procedural renders), resumed after one appeared, and the reverse."
    data = tmp_path / 'data'; data.mkdir()
    monkeypatch.setenv('VAECAUSAL_DATA', str(data))
    train_cli = ['train', '--arch', 'vae', '--batch-size', '8', '--device', 'cpu', '--checkpoint-every', '2']
    out = tmp_path / 'rendered'
    assert cli(*train_cli, '--steps', '2', '--out', out).returncode == 0
    assert json.loads((out / 'config.json').read_text())['dataset_kwargs'] == {'procedural': True}   # recorded
    _dsprites(data / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz')      # the real file appears
    before = snapshot(out)
    r = cli(*train_cli, '--steps', '4', '--out', out)
    assert r.returncode == 2 and r.stderr.strip() == (
        f'vaecausal: error: {out} was trained on the procedural renders of dsprites, but dsprites now loads from its '
        "real file: going on would train one model on both; pass --procedural (dataset_kwargs={'procedural': True}) "
        'to go on with the renders, or train on the real file into a new folder'), r.stderr
    assert snapshot(out) == before
    assert cli(*train_cli, '--steps', '4', '--procedural', '--out', out).returncode == 0    # as the message says
    real = tmp_path / 'real'
    assert cli(*train_cli, '--steps', '2', '--out', real).returncode == 0
    assert json.loads((real / 'config.json').read_text())['dataset_kwargs'] == {'procedural': False}
    (data / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz').unlink()     # the file goes away
    before = snapshot(real)
    r = cli(*train_cli, '--steps', '4', '--out', real)
    assert r.returncode == 2 and r.stderr.strip() == (
        f"vaecausal: error: {real} was trained on dsprites's real file, but none is found now (the procedural renders "
        'would be used): going on would train one model on both; put the file back in the data folder '
        '(data.data_root), or train on the renders into a new folder'), r.stderr
    assert snapshot(real) == before


def test_a_latest_that_names_a_missing_checkpoint(tmp_path):
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '4', '--out', str(out)).returncode == 0
    (out / 'LATEST').write_text('ckpt-999')
    before = snapshot(out)
    r = cli(*TRAIN, '--steps', '8', '--out', str(out))
    assert r.returncode == 2 and r.stderr.strip() == (
        f'vaecausal: error: {out / "LATEST"} names ckpt-999, the checkpoint to go on from, which is missing; put '
        f'ckpt-999 back into {out}, or delete {out} to retrain'), r.stderr    # not "holds 999 trained steps"
    assert snapshot(out) == before


def test_a_study_refuses_a_train_run_folder_as_its_root(tmp_path):
    out = tmp_path / 'run'
    assert cli(*TRAIN, '--steps', '4', '--out', str(out)).returncode == 0
    before = snapshot(out)
    spec = {'name': 'x', 'archs': ['vae'], 'steps': 2, 'batch_size': 8}
    (tmp_path / 'spec.json').write_text(json.dumps(spec))
    r = cli('study', '--spec', tmp_path / 'spec.json', '--out', out, '--no-progress')
    assert r.returncode == 2 and r.stderr.strip() == (
        f'vaecausal: error: {out} holds a training run (config.json, LATEST, run.json), not a study: a study keeps its '
        "runs in runs/ and would mix its files with the run's; give --out a new folder (or a study root)"), r.stderr
    assert snapshot(out) == before
