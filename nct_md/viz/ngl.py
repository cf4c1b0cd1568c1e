"""NGL's JavaScript, taken from the bundle nglview installs, as one self-contained script.

nglview ships NGL inside its Jupyter notebook extension, a webpack bundle
(``share/jupyter/nbextensions/nglview-js-widgets/index.js``) that also holds Mol*, jQuery and
the widget code. :func:`ngl_script` cuts out the NGL module and the modules it requires, joins
them with a minimal module loader of our own and defines ``window.NGL``; nothing is downloaded.

The script is made safe to inline in an HTML page: ``http://`` and ``https://`` become
``http:\\/\\/`` (the same text once JavaScript has read the string, regular expression or comment
it sits in, but no URL to anything that scans the page), and the ``<`` of ``</script`` and ``<!--``
becomes ``\\x3C``, so the HTML parser cannot end the script early.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

BUNDLE = Path("nglview-js-widgets") / "index.js"
#: A module of the bundle's table: ``123:(e,t,n)=>{``, ``123:function(e,t,n){``, ``123:e=>{``.
_MODULE = re.compile(r"[{,](\d+):(?:function\s*\(([\w$,]*)\)|\(([\w$,]*)\)=>|([\w$]+)=>)\{")
_TABLE_START = "__webpack_modules__={"
_TABLE_END = "__webpack_module_cache__"
#: NGL's entry module exports these names.
_NGL_EXPORTS = ("Stage:()=>", "autoLoad:()=>")
_URL = re.compile(r"(https?:)//", re.IGNORECASE)
_HTML_BREAKERS = re.compile(r"<(/script|!--)", re.IGNORECASE)

#: Loader for the extracted modules: the webpack runtime helpers they call (``r``, ``d``, ``o``,
#: ``n``, ``g``, ``nmd``), written for this package. ``__MODULES__`` and ``__ENTRY__`` are
#: replaced by the module table and NGL's module id.
_LOADER = """(function () {
  "use strict";
  var modules = __MODULES__;
  var cache = {};
  function require(id) {
    if (cache[id]) return cache[id].exports;
    var module = cache[id] = {id: id, loaded: false, exports: {}};
    modules[id].call(module.exports, module, module.exports, require);
    module.loaded = true;
    return module.exports;
  }
  require.o = function (obj, key) { return Object.prototype.hasOwnProperty.call(obj, key); };
  require.d = function (exports, getters) {
    for (var key in getters) {
      if (require.o(getters, key) && !require.o(exports, key)) {
        Object.defineProperty(exports, key, {enumerable: true, get: getters[key]});
      }
    }
  };
  require.r = function (exports) {
    if (typeof Symbol !== "undefined" && Symbol.toStringTag) {
      Object.defineProperty(exports, Symbol.toStringTag, {value: "Module"});
    }
    Object.defineProperty(exports, "__esModule", {value: true});
  };
  require.n = function (module) {
    var getter = module && module.__esModule ?
      function () { return module["default"]; } : function () { return module; };
    require.d(getter, {a: getter});
    return getter;
  };
  require.g = globalThis;
  require.nmd = function (module) {
    module.paths = [];
    if (!module.children) module.children = [];
    return module;
  };
  window.NGL = require(__ENTRY__);
})();
"""


class NGLNotFound(FileNotFoundError):
    """nglview's bundle is missing or holds no recognisable NGL module."""


def bundle_path() -> Path:
    """The nglview notebook-extension bundle that holds NGL (first match on Jupyter's paths)."""
    try:
        from jupyter_core.paths import jupyter_path  # installed with nglview
    except ImportError:
        raise NGLNotFound("the HTML page needs NGL from nglview: pip install 'nct-md[viz]'"
                          ) from None
    for folder in jupyter_path("nbextensions"):
        path = Path(folder) / BUNDLE
        if path.is_file():
            return path
    raise NGLNotFound(f"nglview's {BUNDLE} was not found on Jupyter's data paths; install the "
                      "viz extra (pip install 'nct-md[viz]')")


def _modules(bundle: str) -> dict[str, tuple[str, str]]:
    """The bundle's module table: id -> (function source, name of its ``require`` argument)."""
    try:
        start = bundle.index(_TABLE_START) + len(_TABLE_START) - 1
        end = bundle.index(_TABLE_END, start)
    except ValueError:
        raise NGLNotFound("nglview's bundle has no webpack module table") from None
    table = bundle[start:end]
    keys = list(_MODULE.finditer(table))
    modules = {}
    for key, following in zip(keys, [*keys[1:], None], strict=True):
        params = (key.group(2) or key.group(3) or key.group(4) or "").split(",")
        source = table[key.start() + len(key.group(1)) + 2:
                       following.start() if following else table.rindex("}")]
        modules[key.group(1)] = (source, params[2] if len(params) > 2 else "")
    return modules


def _closure(modules: dict[str, tuple[str, str]], entry: str) -> list[str]:
    """Ids of ``entry`` and every module it requires, directly or not."""
    found, todo = [], [entry]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.append(current)
        source, require = modules[current]
        if require:
            calls = re.findall(rf"(?<![\w$.]){re.escape(require)}\((\d+)\)", source)
            todo.extend(i for i in calls if i in modules)
    return found


def make_inline_safe(js: str) -> str:
    """Escape ``//`` after ``http:``/``https:`` and the ``<`` of ``</script``, ``<!--``.

    The escapes read back as the same characters in JavaScript strings, template literals,
    regular expressions and comments, where these sequences occur in minified code.
    """
    js = _URL.sub(lambda m: m.group(1) + "\\/\\/", js)
    return _HTML_BREAKERS.sub(lambda m: "\\x3C" + m.group(1), js)


@functools.lru_cache(maxsize=1)
def ngl_script() -> str:
    """JavaScript that defines ``window.NGL`` (NGL with its dependencies), safe to inline.

    Raises
    ------
    NGLNotFound
        If nglview is not installed or its bundle holds no recognisable NGL module.
    """
    path = bundle_path()
    modules = _modules(path.read_text(encoding="utf-8"))
    entries = [i for i, (source, _) in modules.items()
               if all(name in source for name in _NGL_EXPORTS)]
    if len(entries) != 1:
        raise NGLNotFound(f"found {len(entries)} NGL modules in {path}; this nglview version "
                          "is not supported")
    table = ",".join(f"{i}:{modules[i][0]}" for i in _closure(modules, entries[0]))
    script = _LOADER.replace("__ENTRY__", entries[0]).replace("__MODULES__", "{" + table + "}")
    return make_inline_safe(script)
