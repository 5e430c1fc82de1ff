# Sphinx configuration for the offline docs site (`make docs`). The pages come from the processed notebooks that
# tools/nbdocs.py writes into _sphinx/; this file only sets the renderer up.
import configparser
from pathlib import Path

_cfg = configparser.ConfigParser(delimiters=['='])
_cfg.read(Path(__file__).resolve().parents[1] / 'settings.ini')
_cfg = _cfg['DEFAULT']

project = _cfg['lib_name']
author = _cfg['author']
copyright = _cfg['copyright']
release = version = _cfg['version']

extensions = ['myst_nb', 'sphinx.ext.autodoc', 'sphinx.ext.napoleon', 'sphinx.ext.mathjax']
root_doc = 'index'
exclude_patterns = ['_build', '**.ipynb_checkpoints']
nb_execution_mode = 'off'           # outputs are the ones stored in the notebooks
nb_render_markdown_format = 'myst'  # show_doc output is markdown
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'html_image']
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'myst.xref_missing', 'misc.highlighting_failure', 'mystnb.unknown_mime_type']
autodoc_typehints = 'description'
autodoc_member_order = 'bysource'
html_theme = 'furo'
html_title = project
# MathJax from the jupyter-server-mathjax wheel (MathJax 2), copied into _static/, so formulas render offline.
import jupyter_server_mathjax
html_static_path = [str(Path(jupyter_server_mathjax.__file__).parent / 'static'), str(Path(__file__).parent / '_static')]
html_css_files = ['custom.css']   # no overflow, light tables, figures at column width
mathjax_path = 'MathJax.js?config=TeX-AMS-MML_HTMLorMML-full'
# myst-nb marks pages `mathjax_ignore` and formulas `math`: tell MathJax 2 to typeset exactly those.
mathjax2_config = {'tex2jax': {'inlineMath': [['\\(', '\\)']], 'displayMath': [['\\[', '\\]']],
                               'processEscapes': True, 'processClass': 'math|output_area',
                               'ignoreClass': 'tex2jax_ignore|mathjax_ignore|document'},
                    # the wheel carries the STIX-Web fonts only
                    'HTML-CSS': {'availableFonts': ['STIX-Web'], 'preferredFont': 'STIX-Web', 'webFont': 'STIX-Web', 'imageFont': None}}
