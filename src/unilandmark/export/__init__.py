"""Deployment without the training code: ONNX export and an onnxruntime runner.

- :mod:`.contract`: the exported graph's inputs, outputs and metadata (no torch);
- :mod:`.graph`: ``Detector(relocate=False)`` of one domain as one traceable module;
- :mod:`.exporter`: ``export_onnx`` (torch, onnx, onnxscript);
- :mod:`.runner`: ``OnnxDetector``, prediction through onnxruntime (numpy, no torch).

Nothing is imported here, so the runner loads without torch.
"""
