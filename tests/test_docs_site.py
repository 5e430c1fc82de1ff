"""The offline docs site: every notebook has a page in the sidebar, every page loads with its title, no image is broken,
and at 1,280 px no code block or table runs past its column (wide ones scroll inside it)."""
import functools, json, re, subprocess, sys, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT

SITE = ROOT / '_site'
pytestmark = pytest.mark.browser


def _notebook_titles():
    "Title of every notebook in nbs/ (first markdown heading), index excluded."
    out = {}
    for p in sorted((ROOT / 'nbs').rglob('*.ipynb')):
        if p.name == 'index.ipynb' or '.ipynb_checkpoints' in p.parts: continue
        nb = json.loads(p.read_text())
        md = next(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
        out[p] = re.match(r'#\s+(.+)', md.strip()).group(1).strip()
    return out


@pytest.fixture(scope='module')
def site():
    if not (SITE / 'index.html').exists():
        subprocess.run([sys.executable, 'tools/nbdocs.py', 'site'], cwd=ROOT, check=True)
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    handler = functools.partial(Quiet, directory=str(SITE))
    srv = ThreadingHTTPServer(('127.0.0.1', 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()


def _broken_images(page):
    return page.evaluate("""() => Array.from(document.images)
        .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))""")


def test_every_sidebar_page_loads_with_title_and_images(site, browser):
    page = browser.new_page()
    page.goto(site + 'index.html')
    assert 'vaecausal_nb' in page.title()
    assert page.locator('h1').first.inner_text().strip().startswith('vaecausal_nb')
    assert page.locator('article img').count() >= 1, 'the home page should show a figure'
    assert _broken_images(page) == []
    links = page.eval_on_selector_all('.sidebar-tree a.reference',
                                      'els => els.map(e => [e.getAttribute("href"), e.innerText.trim()])')
    titles = [t for _, t in links]
    for nb, title in _notebook_titles().items():
        assert title in titles, f'{nb.name} (title {title!r}) is missing from the sidebar {titles}'
    assert 'API reference' in titles
    math_pages = []
    for href, title in links:
        resp = page.goto(site + href)
        assert resp is not None and resp.ok, f'{href} did not load'
        h1 = page.locator('article h1').first.inner_text().strip().rstrip('#').strip()
        assert h1 == title, f'{href}: heading {h1!r} != sidebar title {title!r}'
        assert page.title().startswith(title)
        assert _broken_images(page) == [], f'{href} has broken images'
        if page.locator('span.math, div.math').count():   # formulas are typeset offline by the bundled MathJax
            page.wait_for_function("document.querySelectorAll('.MathJax, .MathJax_Display').length > 0", timeout=20000)
            math_pages.append(href)
    assert 'data.html' in math_pages
    page.close()


def test_api_reference_lists_the_public_functions(site, browser):
    sys.path.insert(0, str(ROOT))
    from vaecausal_nb._modidx import d
    page = browser.new_page()
    page.goto(site + 'api.html')
    ids = set(page.eval_on_selector_all('[id]', 'els => els.map(e => e.id)'))
    public = [s for m in d['syms'].values() for s in m if not s.rsplit('.', 1)[-1].startswith('_')]
    assert public, 'no exported symbols found'
    missing = [s for s in public if s not in ids and '.' not in s.split('.', 2)[-1]]
    assert missing == [], f'API reference lacks {missing}'
    page.close()


def _overflowing(page) -> list:
    """Code blocks, outputs and tables that run past the article's column: their box reaches past it (furo's table
    wrapper pads 3 px past it, so up to 10 px is the column's), or their content is wider than their box and neither
    they nor their wrapper scroll."""
    return page.evaluate("""() => {
        const col = document.querySelector('article').getBoundingClientRect();
        const scrolls = e => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX);
        return Array.from(document.querySelectorAll('article pre, article table'))
            .filter(e => e.getBoundingClientRect().right > col.right + 10 ||
                         (e.scrollWidth > e.clientWidth + 1 && !scrolls(e) && !scrolls(e.parentElement)))
            .map(e => e.tagName + ': ' + e.innerText.slice(0, 60));
    }""")


def test_no_code_block_is_wider_than_its_column(site, browser):
    page = browser.new_page(viewport={'width': 1280, 'height': 900})
    page.goto(site + 'index.html')
    hrefs = ['index.html'] + page.eval_on_selector_all('.sidebar-tree a.reference', 'els => els.map(e => e.getAttribute("href"))')
    wide = {}
    for href in hrefs:
        page.goto(site + href)
        if bad := _overflowing(page): wide[href] = bad[:3]
    assert wide == {}, f'blocks wider than their column at 1280 px: {wide}'
    page.set_content('<article style="width:300px"><pre style="overflow-x:visible;max-width:none">' + 'x' * 400 +
                     '</pre></article>')
    assert _overflowing(page), 'the check must see a block that runs past its column'
    page.close()
