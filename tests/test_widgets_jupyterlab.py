"""End to end: JupyterLab on 127.0.0.1 opens the widgets notebook in headless Chromium (Debian's chromium via
Playwright), runs it, moves a latent slider and checks that the image the widget shows changes.

The notebook is nbs/09_widgets.ipynb without its `#| slow` cells (as nbdev_test runs it), so no trained model is
needed. A screenshot is kept in test-artifacts/widgets_jupyterlab.png."""
import json, os, socket, subprocess, sys, time, urllib.request

import pytest

from conftest import ROOT

pytestmark = pytest.mark.browser
ART = ROOT / 'test-artifacts'


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    d = tmp_path_factory.mktemp('lab')
    nb = json.loads((ROOT / 'nbs' / '09_widgets.ipynb').read_text())
    nb['cells'] = [c for c in nb['cells'] if not ''.join(c['source']).lstrip().startswith('#| slow')]
    for c in nb['cells']:
        if c['cell_type'] == 'code': c['outputs'], c['execution_count'] = [], None
    (d / 'widgets.ipynb').write_text(json.dumps(nb))
    token = 'vaecausal-test'
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'JUPYTER_CONFIG_DIR': str(d / 'cfg'), 'JUPYTER_RUNTIME_DIR': str(d / 'rt')}
    for _ in range(3):           # a port freed by _free_port may be taken by another process before the server binds it
        port = _free_port()
        log = open(d / 'lab.log', 'w')
        proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', f'--ServerApp.port={port}',
                                 '--ServerApp.ip=127.0.0.1', '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}', '--allow-root',
                                 f'--ServerApp.root_dir={d}', '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
                                cwd=d, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f'http://127.0.0.1:{port}'
        deadline = time.time() + 300             # a bound on getting there, not on speed: pytest runs two files at once
        while time.time() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2); break
            except Exception: time.sleep(0.5)
        if proc.poll() is None: break
        if 'already in use' not in (d / 'lab.log').read_text():
            pytest.fail(f'jupyter lab exited: {(d / "lab.log").read_text()[-2000:]}')
    if proc.poll() is not None: pytest.fail(f'jupyter lab found no free port: {(d / "lab.log").read_text()[-2000:]}')
    try: urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=10)
    except Exception as e:
        proc.kill(); pytest.fail(f'jupyter lab did not answer within 300 s ({e})')
    yield url, token, d
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill()


def test_slider_moves_the_image_in_jupyterlab(lab, browser):
    url, token, d = lab
    page = browser.new_page(viewport={'width': 1400, 'height': 1000})
    page.goto(f'{url}/lab/tree/widgets.ipynb?token={token}')
    page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=60_000)
    page.wait_for_selector('.jp-StatusBar-TextItem:has-text("Idle")', timeout=120_000)     # the kernel is up
    started = '() => [...document.querySelectorAll(".jp-InputPrompt")].some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))'
    for attempt in range(3):                                   # the menu can be clicked before it is ready: retry
        page.keyboard.press('Escape')
        page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
        page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
        try:
            page.wait_for_function(started, timeout=30_000); break
        except Exception:
            if attempt == 2: raise
    # the LatentSliders demo: a slider labelled z0 and an image, rendered by the widget manager
    slider = page.locator('.widget-hslider', has=page.locator('label', has_text='z0')).first
    slider.wait_for(timeout=300_000)
    # its image: in the output that holds the sliders (figures drawn by earlier cells are images too)
    area = page.locator('.jp-OutputArea-output').filter(has=page.locator('.widget-hslider')).first
    img = area.locator('img.widget-image, .widget-image img, img').first
    img.wait_for(timeout=60_000)
    # let every cell finish (the notebook's own tests move the sliders too) before moving one ourselves
    page.wait_for_function('''() => document.querySelectorAll('.jp-InputPrompt').length > 0 &&
        ![...document.querySelectorAll('.jp-InputPrompt')].some(e => e.textContent.includes('[*]'))''', timeout=300_000)
    page.wait_for_timeout(1000)
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]:has-text("Error")')
    before = img.get_attribute('src')
    readout = slider.locator('.widget-readout')
    readout.click(); page.keyboard.press('Control+A'); page.keyboard.type('2.5'); page.keyboard.press('Enter')
    for _ in range(100):
        if img.get_attribute('src') != before: break
        page.wait_for_timeout(200)
    ART.mkdir(exist_ok=True)
    slider.scroll_into_view_if_needed()
    page.screenshot(path=str(ART / 'widgets_jupyterlab.png'))
    assert img.get_attribute('src') != before, 'moving the z0 slider did not change the image'
    assert abs(float(readout.inner_text().strip().replace('−', '-')) - 2.5) < 0.05, readout.inner_text()   # snapped to the slider step
    assert errors.count() == 0, errors.first.inner_text()
