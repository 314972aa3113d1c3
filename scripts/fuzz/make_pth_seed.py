#!/usr/bin/env python3
"""Writes the checkpoint fuzzing seeds: a tiny state dict in the layout torch.save uses (a zip
holding <name>/data.pkl, <name>/data/<key>, <name>/version), and its data.pkl alone.

The pickle is written by Python's own pickle module, protocol 2, with stand-ins named exactly as
torch's (torch._utils._rebuild_tensor_v2, torch.FloatStorage, collections.OrderedDict), so its
opcodes are the ones a real torch.save writes; torch itself is not needed.
Usage: scripts/fuzz/make_pth_seed.py Fuzz/corpus
"""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")


class FloatStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise RuntimeError("a stand-in; never called")


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage
_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class TensorStandIn:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


def main(out):
    a, b = Storage("0", 6), Storage("1", 2)
    state = collections.OrderedDict()
    state["layer.weight"] = TensorStandIn(a, 0, (2, 3), (3, 1))
    state["layer.bias"] = TensorStandIn(b, 0, (2,), (1,))
    state["layer.view"] = TensorStandIn(a, 3, (3,), (1,))
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(state)
    pkl = buf.getvalue()
    os.makedirs(os.path.join(out, "checkpoint"), exist_ok=True)
    os.makedirs(os.path.join(out, "pickle"), exist_ok=True)
    with zipfile.ZipFile(os.path.join(out, "checkpoint", "tiny.pth"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("tiny/data.pkl", pkl)
        z.writestr("tiny/data/0", struct.pack("<6f", 1, 2, 3, 4, 5, 6))
        z.writestr("tiny/data/1", struct.pack("<2f", 0.5, -0.5))
        z.writestr("tiny/version", "3\n")
        z.writestr("tiny/byteorder", "little")
    with open(os.path.join(out, "pickle", "data.pkl"), "wb") as f:
        f.write(pkl)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Fuzz/corpus")
