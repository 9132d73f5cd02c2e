"""Reference-making script (not part of tinypose; needs PaddlePaddle + a PaddleDetection checkout).

Runs PaddleDetection's own ``tools/export_model.py`` with Paddle's legacy (non-PIR) program IR, which
writes ``model.pdmodel`` (protobuf ProgramDesc) + ``model.pdiparams`` as PaddleDetection 2.x did.
Paddle 3.3's ``paddle.argmax`` only builds PIR ops, so under ``FLAGS_enable_pir_api=0`` it is routed
to the legacy ``arg_max`` op (the op Paddle 2.x emitted for the deploy-mode argmax output).

    cd PaddleDetection && FLAGS_enable_pir_api=0 python export_legacy.py \
        -c configs/keypoint/tiny_pose/tinypose_128x96.yml \
        -o use_gpu=false weights=../shared/fixtures/paddle/tinypose_128x96_random.pdparams \
        --output_dir OUT
"""

import runpy
import sys

import paddle
from paddle.base.layer_helper import LayerHelper
from paddle.framework import in_dynamic_mode

_pir_argmax = paddle.argmax


def legacy_argmax(x, axis=None, keepdim=False, dtype="int64", name=None):
    if in_dynamic_mode():
        return _pir_argmax(x, axis=axis, keepdim=keepdim, dtype=dtype, name=name)
    helper = LayerHelper("arg_max", **locals())
    out = helper.create_variable_for_type_inference(paddle.int64)
    helper.append_op(
        type="arg_max",
        inputs={"X": x},
        outputs={"Out": [out]},
        attrs={"axis": -1 if axis is None else axis, "keepdims": keepdim, "flatten": axis is None, "dtype": 3},
    )
    out.stop_gradient = True
    return out


paddle.argmax = legacy_argmax
sys.argv = ["tools/export_model.py", *sys.argv[1:]]
runpy.run_path("tools/export_model.py", run_name="__main__")
