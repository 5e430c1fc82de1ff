"""Every real-format loader, on tiny files written here in the exact published formats, plus their bad inputs
and the download path (served from 127.0.0.1)."""
import functools, hashlib, http.server, os, stat, threading

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from vaecausal_nb.core import VaeCausalError
from vaecausal_nb.data import ProceduralDSprites, load_dataset
from vaecausal_nb.files import download, fetch_file


def grid(sizes):
    n = int(np.prod(sizes))
    return np.stack(np.unravel_index(np.arange(n), sizes), 1)


def tagged_images(classes, shape, fill):
    "Images whose pixels encode their own row index, so a wrong factor->index mapping is visible."
    n = len(classes)
    out = np.zeros((n,) + shape, np.uint8)
    for i in range(n): out[i].flat[:4] = [i % 251, (i // 251) % 251, fill, 7]
    return out


# ---------------------------------------------------------------------------------------------- dSprites
DS_SIZES = (1, 3, 2, 2, 2, 2)


def write_dsprites_npz(path, sizes=DS_SIZES, drop_rows=0, shuffle=False):
    classes = grid(sizes)
    if shuffle: classes = classes[::-1].copy()
    values = classes.astype(np.float64) / np.maximum(np.array(sizes) - 1, 1)
    imgs = (tagged_images(classes, (64, 64), 1) > 0).astype(np.uint8)   # 0/1 like the real file
    imgs[:, 10, :] = (np.arange(len(classes)) % 2)[:, None]
    meta = np.array({'date': 'April 2017', 'latents_sizes': np.array(sizes)}, dtype=object)  # a pickled object, as in the real file
    n = len(classes) - drop_rows
    np.savez(path, imgs=imgs[:n], latents_classes=classes[:n], latents_values=values[:n], metadata=meta)


def test_dsprites_npz_roundtrip(tmp_path):
    write_dsprites_npz(tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz')
    ds = load_dataset('dsprites', root=tmp_path)
    assert type(ds).__name__ == 'ArrayDataset' and ds.factor_sizes == DS_SIZES[1:]
    assert len(ds) == 48 and ds.image_shape == (1, 64, 64)
    idx = torch.arange(len(ds))
    assert torch.equal(ds.index_of(ds.factors(idx)), idx)
    ims = ds.images(idx)
    assert ims.dtype == torch.uint8 and set(ims.unique().tolist()) <= {0, 255}
    assert torch.equal(ims[:, 0, 10, 0], torch.tensor([255 * (i % 2) for i in range(48)], dtype=torch.uint8))
    # factor values come from the file, and the last factor (posY) is fastest
    assert ds.factors(torch.tensor([1])).tolist() == [[0, 0, 0, 0, 1]]
    np.testing.assert_allclose(ds.factor_values[1], [0, 1])


def test_dsprites_never_unpickles_metadata(tmp_path, monkeypatch):
    write_dsprites_npz(tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz')
    import pickle
    monkeypatch.setattr(pickle, 'loads', lambda *a, **k: pytest.fail('metadata was unpickled'))
    monkeypatch.setattr(pickle, 'load', lambda *a, **k: pytest.fail('metadata was unpickled'))
    load_dataset('dsprites', root=tmp_path).images([0, 1])


def test_dsprites_hdf5(tmp_path):
    classes = grid(DS_SIZES)
    with h5py.File(tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5', 'w') as h:
        h['imgs'] = (tagged_images(classes, (64, 64), 1) > 0).astype(np.uint8)
        h['latents/classes'] = classes
        h['latents/values'] = classes.astype(np.float64)
    ds = load_dataset('dsprites', root=tmp_path, procedural=False)
    assert ds.factor_sizes == DS_SIZES[1:] and ds.images([3, 1, 2]).shape == (3, 1, 64, 64)


@pytest.mark.parametrize('kind', ['truncated_rows', 'shuffled', 'not_zip', 'wrong_key'])
def test_dsprites_bad_files(tmp_path, kind):
    p = tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz'
    if kind == 'truncated_rows': write_dsprites_npz(p, drop_rows=5)
    elif kind == 'shuffled': write_dsprites_npz(p, shuffle=True)
    elif kind == 'not_zip': p.write_bytes(b'PK\x03\x04 this is not really a zip file')
    else: np.savez(p, images=np.zeros((2, 64, 64), np.uint8))
    with pytest.raises(VaeCausalError, match='not a usable file'):
        load_dataset('dsprites', root=tmp_path)


def test_an_html_page_saved_as_npz_is_not_advised_to_unpickle(tmp_path):
    "A download that saved an error page: numpy would read it as a pickle and advise allow_pickle=True (unsafe)."
    p = tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz'
    p.write_bytes(b'<!DOCTYPE html><html>Not Found</html>')
    with pytest.raises(VaeCausalError) as e: load_dataset('dsprites', root=tmp_path)
    assert str(e.value) == (f"{p} is not a usable file: it is not an .npz archive (it starts with b'<!DO', not a zip "
                            'header); download it again') and 'pickle' not in str(e.value)


def test_dsprites_truncated_archive(tmp_path):
    p = tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz'
    write_dsprites_npz(p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(VaeCausalError, match='not a usable file'):
        load_dataset('dsprites', root=tmp_path)


def test_missing_file_falls_back_to_procedural_and_says_so(tmp_path, caplog):
    ds = load_dataset('dsprites', root=tmp_path)
    assert isinstance(ds, ProceduralDSprites)
    with pytest.raises(VaeCausalError) as e:
        load_dataset('dsprites', root=tmp_path, procedural=False)
    msg = str(e.value)
    assert 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz' in msg and str(tmp_path) in msg and 'github.com/deepmind' in msg


# ---------------------------------------------------------------------------------------------- 3DShapes
S3_SIZES = (2, 2, 2, 2, 2, 2)
S3_VALUES = [np.linspace(0, 0.9, 10)[:2]] * 3 + [np.linspace(0.75, 1.25, 8)[:2], np.arange(2.), np.linspace(-30, 30, 15)[:2]]


def write_shapes3d(path, labels=None):
    classes = grid(S3_SIZES)
    if labels is None: labels = np.stack([S3_VALUES[k][classes[:, k]] for k in range(6)], 1)
    with h5py.File(path, 'w') as h:
        h['images'] = tagged_images(classes, (64, 64, 3), 9)
        h['labels'] = labels


def test_shapes3d_h5(tmp_path):
    write_shapes3d(tmp_path / '3dshapes.h5')
    ds = load_dataset('shapes3d', root=tmp_path)
    assert ds.factor_sizes == S3_SIZES and ds.image_shape == (3, 64, 64)
    idx = torch.tensor([63, 5, 17, 5])                    # unsorted with a repeat: h5py needs sorted unique reads
    ims = ds.images(idx)
    assert ims[:, 0, 0, 0].tolist() == [63, 5, 17, 5]  # pixel (0,0) of channel 0 holds the row index
    assert ims.shape == (4, 3, 64, 64)
    np.testing.assert_allclose(ds.factor_values[5], S3_VALUES[5])
    assert ds.factors(torch.tensor([1])).tolist() == [[0, 0, 0, 0, 0, 1]]


def test_shapes3d_bad_labels(tmp_path):
    classes = grid(S3_SIZES)
    labels = np.stack([S3_VALUES[k][classes[:, k]] for k in range(6)], 1)[::-1]
    write_shapes3d(tmp_path / '3dshapes.h5', labels=labels)
    with pytest.raises(VaeCausalError, match='row-major'):
        load_dataset('shapes3d', root=tmp_path)
    (tmp_path / '3dshapes.h5').write_bytes(b'\x89HDF\r\n\x1a\n' + b'\x00' * 100)
    with pytest.raises(VaeCausalError, match='cannot be read as 3DShapes'):
        load_dataset('shapes3d', root=tmp_path)


# ---------------------------------------------------------------------------------------------- MPI3D
def test_mpi3d_npz(tmp_path):
    sizes = (2, 1, 2, 1, 1, 3, 2)
    classes = grid(sizes)
    np.savez(tmp_path / 'mpi3d_toy.npz', images=tagged_images(classes, (64, 64, 3), 3))
    ds = load_dataset('mpi3d', root=tmp_path, grid=sizes)
    assert ds.factor_sizes == sizes and len(ds) == 24
    f = torch.tensor([[1, 0, 1, 0, 0, 2, 1]])
    assert ds.images_of(f)[0, 0, 0, 0].item() == int(ds.index_of(f)) == 23
    with pytest.raises(VaeCausalError, match=r'expected uint8 \(1036800, 64, 64, 3\)'):
        load_dataset('mpi3d', root=tmp_path)                     # the published grid needs 1,036,800 images
    np.savez(tmp_path / 'mpi3d_real.npz', images=np.zeros((24, 64, 64, 3), np.uint8))
    assert load_dataset('mpi3d', root=tmp_path, variant='real', grid=sizes).path.name == 'mpi3d_real.npz'
    with pytest.raises(VaeCausalError, match='variant'):
        load_dataset('mpi3d', root=tmp_path, variant='cartoon')


# ---------------------------------------------------------------------------------------------- SmallNORB
def norb_bytes(a):
    magic = 0x1E3D4C55 if a.dtype == np.uint8 else 0x1E3D4C54
    dims = list(a.shape) + [1] * max(0, 3 - a.ndim)
    return np.array([magic, a.ndim] + dims, '<i4').tobytes() + a.astype(a.dtype.newbyteorder('<')).tobytes()


def write_norb(root, split, instances, rng):
    prefix = {'training': 'smallnorb-5x46789x9x18x6x2x96x96-training', 'testing': 'smallnorb-5x01235x9x18x6x2x96x96-testing'}[split]
    rows = [(c, i, e, a, l) for c in (0, 3) for i in instances for e in (0, 8) for a in (0, 34) for l in (0, 5)]
    rows = [rows[j] for j in rng.permutation(len(rows))]      # the real files are not in grid order
    cat = np.array([r[0] for r in rows], np.int32)
    info = np.array([r[1:] for r in rows], np.int32)
    dat = np.zeros((len(rows), 2, 96, 96), np.uint8)
    for j, r in enumerate(rows):
        dat[j, 0] = 10 * r[0] + 3 * r[1] + r[4]           # left camera encodes (category, instance, lighting)
        dat[j, 1] = 255                                  # right camera must be ignored
    (root / f'{prefix}-dat.mat').write_bytes(norb_bytes(dat))
    (root / f'{prefix}-cat.mat').write_bytes(norb_bytes(cat))
    with (root / f'{prefix}-info.mat.gz').open('wb') as fh:   # a gzipped file, as downloaded
        import gzip
        fh.write(gzip.compress(norb_bytes(info)))


def test_smallnorb_both_splits(tmp_path):
    rng = np.random.default_rng(0)
    write_norb(tmp_path, 'training', (4, 6), rng)
    write_norb(tmp_path, 'testing', (0, 1), rng)
    ds = load_dataset('smallnorb', root=tmp_path)
    assert ds.factor_names == ['category', 'instance', 'elevation', 'azimuth', 'lighting'] and ds.nuisance == ('instance',)
    assert ds.factor_sizes == (2, 4, 2, 2, 2) and ds.image_shape == (1, 64, 64)
    assert ds.factor_values[1].tolist() == [0, 1, 4, 6]
    assert ds.factor_values[3].tolist() == [0, 340] and ds.factor_values[2].tolist() == [30, 70]
    f = ds.factors(torch.arange(len(ds)))
    ims = ds.images(torch.arange(len(ds)))
    expected = 10 * torch.tensor([0, 3])[f[:, 0]] + 3 * torch.tensor([0, 1, 4, 6])[f[:, 1]] + torch.tensor([0, 5])[f[:, 4]]
    assert torch.equal(ims[:, 0, 32, 32].long(), expected)    # sorted into the grid, left camera, resized


def test_smallnorb_bad(tmp_path):
    rng = np.random.default_rng(0)
    write_norb(tmp_path, 'training', (4, 6), rng)
    with pytest.raises(VaeCausalError, match='testing-dat.mat'):
        load_dataset('smallnorb', root=tmp_path)                 # names the missing files
    ds = load_dataset('smallnorb', root=tmp_path, split='training')
    assert ds.factor_sizes == (2, 2, 2, 2, 2)
    p = tmp_path / 'smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat'
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(VaeCausalError, match='truncated'):
        load_dataset('smallnorb', root=tmp_path, split='training')


# ---------------------------------------------------------------------------------------------- CelebA
def test_celeba(tmp_path):
    d = tmp_path / 'celeba'; (d / 'img_align_celeba').mkdir(parents=True)
    names = ['Smiling', 'Male', 'Eyeglasses']
    rows = [('000001.jpg', [1, -1, -1]), ('000002.jpg', [-1, 1, 1]), ('000003.jpg', [1, 1, -1])]
    for i, (fn, _) in enumerate(rows):
        Image.fromarray(np.full((218, 178, 3), 60 * (i + 1), np.uint8)).save(d / 'img_align_celeba' / fn, quality=95)
    (d / 'list_attr_celeba.txt').write_text(f'{len(rows)}\n' + ' '.join(names) + '\n' +
                                            '\n'.join(fn + '  ' + ' '.join(f'{v:2d}' for v in a) for fn, a in rows) + '\n')
    ds = load_dataset('celeba', root=tmp_path)
    assert len(ds) == 3 and ds.factor_names == names and ds.factor_sizes == (2, 2, 2)
    assert ds.factors([1]).tolist() == [[0, 1, 1]]
    assert int(ds.index_of([[1, 1, 0]])) == 2
    ims = ds.images([0, 2])
    assert ims.shape == (2, 3, 64, 64) and abs(int(ims[0].float().mean()) - 60) <= 2 and abs(int(ims[1].float().mean()) - 180) <= 2
    with pytest.raises(VaeCausalError, match='not a full grid'):
        ds.index_of([[0, 0, 0]])
    (d / 'list_attr_celeba.txt').write_text('3\nSmiling Male\n000001.jpg 1 x\n')
    with pytest.raises(VaeCausalError, match='list_attr_celeba.txt format'):
        load_dataset('celeba', root=tmp_path)


# ---------------------------------------------------------------------------------------------- download
@pytest.fixture
def served(tmp_path):
    www = tmp_path / 'www'; www.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(www)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield www, f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()


def test_download_verifies_and_writes_atomically(served, tmp_path):
    www, url = served
    payload = b'3dshapes bytes ' * 1000
    (www / 'f.h5').write_bytes(payload)
    good = 'sha256:' + hashlib.sha256(payload).hexdigest()
    out = tmp_path / 'data'
    [p] = download('shapes3d', root=out, urls=[(url + 'f.h5', '3dshapes.h5', good)])
    assert p.read_bytes() == payload and sorted(x.name for x in out.iterdir()) == ['3dshapes.h5']
    # a wrong checksum: error, and nothing is left behind (no partial file, no temporary)
    with pytest.raises(VaeCausalError, match='checksum mismatch'):
        fetch_file(url + 'f.h5', out / 'other.h5', 'sha256:' + '0' * 64, progress=False)
    assert sorted(x.name for x in out.iterdir()) == ['3dshapes.h5']
    # gzipped files are unpacked after verification; md5 is accepted where only md5 is published
    import gzip
    (www / 'm.gz').write_bytes(gzip.compress(b'norb'))
    fetch_file(url + 'm.gz', out / 'm.mat', 'md5:' + hashlib.md5((www / 'm.gz').read_bytes()).hexdigest(), progress=False)
    assert (out / 'm.mat').read_bytes() == b'norb'
    with pytest.raises(VaeCausalError, match='cannot download'):
        fetch_file(url + 'missing.bin', out / 'x.bin', None, progress=False)
    assert not (out / 'x.bin').exists()
    with pytest.raises(VaeCausalError, match='manual download|cannot be downloaded'):
        download('celeba', root=out)


# ---------------------------------------------------------------------------------------------- damaged real files (#29)
DS_NAME = 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz'


def test_empty_files_hold_no_images(tmp_path):
    "A file in the right format with 0 rows: one error naming the file and that it holds no images."
    np.savez(tmp_path / DS_NAME, imgs=np.zeros((0, 64, 64), np.uint8), latents_classes=np.zeros((0, 6), np.int64),
             latents_values=np.zeros((0, 6)))
    with pytest.raises(VaeCausalError) as e: load_dataset('dsprites', root=tmp_path)
    assert str(e.value) == (f"{tmp_path / DS_NAME} is not a usable file: it holds no images ('latents_classes' has "
                            "0 rows); download it again")
    with h5py.File(tmp_path / '3dshapes.h5', 'w') as h:
        h['images'] = np.zeros((0, 64, 64, 3), np.uint8)
        h['labels'] = np.zeros((0, 6))
    with pytest.raises(VaeCausalError, match=r"3dshapes.h5 is not a usable file: it holds no images \('labels' has 0"):
        load_dataset('shapes3d', root=tmp_path)
    np.savez(tmp_path / 'mpi3d_toy.npz', images=np.zeros((0, 64, 64, 3), np.uint8))
    with pytest.raises(VaeCausalError, match=r"mpi3d_toy.npz is not a usable file: it holds no images"):
        load_dataset('mpi3d', root=tmp_path)
    write_norb(tmp_path, 'training', (), np.random.default_rng(0))      # no instances: 0 pairs
    with pytest.raises(VaeCausalError, match=r'training-cat.mat is not a usable file: it holds no images'):
        load_dataset('smallnorb', root=tmp_path, split='training')


@pytest.mark.parametrize('key, bad, msg', [
    ('latents_values', lambda c, v: v[:, 0], "'latents_values' has shape (48,), expected (48, 6)"),
    ('latents_values', lambda c, v: v[:, :5], "'latents_values' has shape (48, 5), expected (48, 6)"),
    ('latents_values', lambda c, v: v[:40], "'latents_values' has shape (40, 6), expected (48, 6)"),
    ('latents_classes', lambda c, v: c[:, 0], "'latents_classes' has shape (48,), expected (N, 6)"),
    ('latents_values', lambda c, v: np.zeros_like(v),
     "its 'latents_values' do not give each of the 3 classes of factor 'shape' a value of its own (1 distinct value "
     "over the file): the factor values are unusable, the file is damaged; download it again"),
])
def test_dsprites_bad_tables(tmp_path, key, bad, msg):
    "Wrong-shaped or unusable label tables: one error naming the key, the expected and the found shape."
    write_dsprites_npz(tmp_path / DS_NAME)
    with np.load(tmp_path / DS_NAME, allow_pickle=True) as z: arrays = {k: z[k] for k in z.files}
    arrays[key] = bad(arrays['latents_classes'], arrays['latents_values'])
    np.savez(tmp_path / DS_NAME, **arrays)
    with pytest.raises(VaeCausalError) as e: load_dataset('dsprites', root=tmp_path)
    assert msg in str(e.value) and str(tmp_path / DS_NAME) in str(e.value)


def test_dsprites_hdf5_values_and_3dshapes_labels_shapes(tmp_path):
    classes = grid(DS_SIZES)
    with h5py.File(tmp_path / 'dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5', 'w') as h:
        h['imgs'] = np.zeros((len(classes), 64, 64), np.uint8)
        h['latents/classes'] = classes
        h['latents/values'] = np.zeros(len(classes))                     # 1-D
    with pytest.raises(VaeCausalError, match=r"'latents/values' has shape \(48,\), expected \(48, 6\)"):
        load_dataset('dsprites', root=tmp_path, procedural=False)
    write_shapes3d(tmp_path / '3dshapes.h5', labels=np.zeros(64))
    with pytest.raises(VaeCausalError, match=r"'labels' has shape \(64,\), expected \(N, 6\)"):
        load_dataset('shapes3d', root=tmp_path)


@pytest.mark.parametrize('mask, mode', [(0o022, 0o644), (0o027, 0o640)])
def test_download_follows_the_umask(served, tmp_path, mask, mode):
    "Downloaded files get the mode open() would give (0o666 less the umask), not mkstemp's 0o600."
    www, url = served
    (www / 'f.h5').write_bytes(b'bytes')
    old = os.umask(mask)
    try:
        [p] = download('shapes3d', root=tmp_path / 'data', urls=[(url + 'f.h5', '3dshapes.h5', None)])
        import gzip
        (www / 'm.gz').write_bytes(gzip.compress(b'norb'))
        q = fetch_file(url + 'm.gz', tmp_path / 'data' / 'm.mat', None, progress=False)
    finally: os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == mode and stat.S_IMODE(q.stat().st_mode) == mode
