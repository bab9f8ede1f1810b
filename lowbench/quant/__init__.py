"""Quantization of the learned models, one module per concern: ``observers`` (what records the
ranges), ``calibrate`` (calibration crops, the observer cache, the shipped calibrations), ``fx``
(engine choice, static qconfig, prepare/convert), ``qat`` (quantization-aware training),
``weight_only`` (int8 weights of the float transposed convs), ``ties`` (max-pool qparams),
``report`` (the info dict, layer counts) and ``recipes`` (fp32/fp16/dynamic/static/qat builders
and the table of them by quant name). Design notes: docs/quantization.md.
"""
