"""Let PyPI's CUDA torchvision wheel import next to a CPU torch build (installed as a ``.pth`` hook in .venv).

PyPI's torchvision wheel is a CUDA build. Next to CPU torch its ``_C`` extension fails to load, and torchvision's
fake-op registration then dies with ``operator torchvision::nms does not exist``. transformers' Qwen VL processors
and qwen-vl-utils import torchvision, so the whole VLM stack would fail.

:func:`install` (called by the ``.pth`` file at interpreter start-up) only adds a meta-path finder; torch is not
imported until something imports torchvision. At that moment the finder tries to load ``torchvision/_C``; only if
that fails does it define the two missing operator schemas (``torchvision::nms`` and ``torchvision::qnms``) with
``torch.library``, after which torchvision's pure-Python parts (transforms v2, resize) work. Where torchvision's
extension loads normally nothing is changed.
"""

import importlib.abc
import importlib.util
import sys

_LIBS = []  # keep torch.library.Library objects alive


class _TorchvisionFixFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)  # one shot; then the normal import proceeds
        try:
            _prepare()
        except Exception:  # never break an import because of this hook
            pass
        return None


def _prepare():
    import glob
    import os

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import torch

    for folder in spec.submodule_search_locations:
        for lib in glob.glob(os.path.join(folder, "_C*.so")):
            try:
                torch.ops.load_library(lib)
                return  # the extension works: leave everything as it is
            except Exception:
                pass
    if hasattr(torch.ops.torchvision, "nms"):
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBS.append(lib)


def install():
    if "torchvision" not in sys.modules and not any(isinstance(f, _TorchvisionFixFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionFixFinder())
