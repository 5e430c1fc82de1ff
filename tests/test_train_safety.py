"""`vaecausal train` and `train`/`load_run` on damaged run folders and unusual names (issue #29): each case gets one
error that names the real cause, and a dataset alias trains as its canonical name."""
import ast
import json
import unittest.mock
from pathlib import Path

import pytest
import torch

from conftest import cli  # the `vaecausal` command run in this process
from vaecausal_nb import train as T
from vaecausal_nb.core import VaeCausalError
from vaecausal_nb.train import TrainConfig, load_run, train

TRAIN = ['train', '--arch', 'vae', '--procedural', '--batch-size', '8', '--device', 'cpu', '--checkpoint-every', '2']
CFG = dict(arch='vae', dataset_kwargs={'procedural': True}, batch_size=8, checkpoint_every=2, log_every=1, progress=False,
           device='cpu')
REFINISH = 'delete it and train the same config into {} again: it is rewritten from the last checkpoint'


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def finished(tmp_path, name='run', steps=2) -> Path:
    train(TrainConfig(steps=steps, out_dir=str(tmp_path / name), **CFG))
    return tmp_path / name


def test_truncated_weights_are_called_truncated(tmp_path):
    run = finished(tmp_path)
    w = run / 'model.safetensors'
    w.write_bytes(w.read_bytes()[:len(w.read_bytes()) // 2])
    with pytest.raises(VaeCausalError) as e: load_run(run)
    msg = str(e.value)
    assert msg.startswith(f'{w} is not a readable safetensors file (') and 'another architecture' not in msg
    assert msg.endswith(f'); the file is truncated or damaged; {REFINISH.format(run)}'), msg
    w.unlink()
    a = train(TrainConfig(steps=2, out_dir=str(run), **CFG))                 # as the message says
    b = load_run(run)
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    ck = run / 'ckpt-2' / 'model.safetensors'                                # a checkpoint's, when resumed
    ck.write_bytes(ck.read_bytes()[:100])
    with pytest.raises(VaeCausalError, match='the file is truncated or damaged; delete'):
        train(TrainConfig(steps=4, out_dir=str(run), **CFG))


def test_weights_of_another_model_are_called_that(tmp_path):
    run = finished(tmp_path)
    train(TrainConfig(**{**CFG, 'latent_dim': 4}, steps=2, out_dir=str(tmp_path / 'small')))
    (run / 'model.safetensors').write_bytes((tmp_path / 'small' / 'model.safetensors').read_bytes())
    with pytest.raises(VaeCausalError, match='was written for another architecture or latent size; delete it and'):
        load_run(run)


def test_a_missing_state_is_called_missing(tmp_path):
    run = finished(tmp_path)
    (run / 'ckpt-2' / 'state.pt').unlink()
    before = snapshot(run)
    r = cli(*TRAIN, '--steps', '4', '--out', str(run))
    assert r.returncode == 2 and r.stderr.strip() == (
        f'vaecausal: error: {run / "ckpt-2" / "state.pt"} is missing: the checkpoint is incomplete; delete {run} to '
        'retrain'), r.stderr
    assert snapshot(run) == before


def test_a_damaged_state_is_not_called_pickled(tmp_path):
    run = finished(tmp_path)
    st = run / 'ckpt-2' / 'state.pt'
    st.write_bytes(st.read_bytes()[:200])
    with pytest.raises(VaeCausalError) as e: train(TrainConfig(steps=4, out_dir=str(run), **CFG))
    assert str(e.value) == f'{st} is truncated or damaged (RuntimeError); delete {run} to retrain'


def test_a_lost_config_is_called_lost(tmp_path):
    run = finished(tmp_path)
    (run / 'config.json').unlink()
    before = snapshot(run)
    msg = (f'{run} holds a vaecausal_nb run (LATEST, run.json) but its config.json is missing; put config.json back '
           '(it defines the run), or delete the folder to retrain')
    r = cli(*TRAIN, '--steps', '4', '--out', str(run))
    assert r.returncode == 2 and r.stderr.strip() == f'vaecausal: error: {msg}', r.stderr
    with pytest.raises(VaeCausalError) as e: load_run(run)
    assert str(e.value) == msg
    assert snapshot(run) == before


@pytest.mark.parametrize('text', ['step,loss\n1,oops\n', 'step,loss\n1,2,3\n', 'loss\n1.5\n', b'\xff\xfe\x00garbage'])
def test_a_garbage_history_is_one_error(tmp_path, text):
    run = finished(tmp_path)
    h = run / 'history.csv'
    h.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(VaeCausalError) as e: load_run(run)
    msg = str(e.value)
    assert msg.startswith(f'{h} is damaged (') and msg.endswith(f'); {REFINISH.format(run)}'), msg
    h.unlink()
    train(TrainConfig(steps=2, out_dir=str(run), **CFG))                    # as the message says
    assert load_run(run).history['step'].tolist() == [1, 2]


def test_a_dataset_alias_trains_as_its_canonical_name(tmp_path):
    out = tmp_path / 'run'
    r = cli(*TRAIN, '--dataset', '3dshapes', '--steps', '2', '--out', str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / 'config.json').read_text())['dataset'] == 'shapes3d'
    assert TrainConfig(dataset='3dshapes').validate().key() == TrainConfig(dataset='shapes3d').validate().key()
    assert TrainConfig(dataset='dsprites').key() == TrainConfig(dataset='dsprites').validate().key()   # keys unchanged
    r = cli(*TRAIN, '--dataset', 'Shapes3D', '--steps', '4', '--out', str(out))   # the same run, continued
    assert r.returncode == 0, r.stderr


def test_out_of_memory_is_caught_under_any_torch(tmp_path):
    root = Path(__file__).resolve().parents[1]
    for f in [*(root / 'vaecausal_nb').glob('*.py'), *(root / 'bench').glob('*.py'), *(root / 'tools').glob('*.py')]:
        uses = [n.lineno for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.Attribute)
                and n.attr == 'OutOfMemoryError' and isinstance(n.value, ast.Name) and n.value.id == 'torch']
        assert uses == [], f'{f.name}: torch.OutOfMemoryError (torch >= 2.5 only) named at lines {uses}; use ' \
                           'torch.cuda.OutOfMemoryError or train._OOM'
    assert issubclass(torch.cuda.OutOfMemoryError, T._OOM)
    def oom(*a, **k): raise MemoryError('out of memory')
    with unittest.mock.patch.object(T, 'train_step', oom), pytest.raises(VaeCausalError) as e:
        train(TrainConfig(steps=2, out_dir=str(tmp_path / 'run'), **CFG))
    assert str(e.value) == ('a training step with batch_size=8 does not fit in cpu memory (MemoryError); lower '
                            'batch_size (the last checkpoint, if any, is kept)')
