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
html_static_path = []
# MathJax is loaded from a CDN by default; offline readers still get the TeX source, which is readable.
