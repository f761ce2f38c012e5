"""Deployment without the training code: ONNX export and onnxruntime runners.

Images (one graph per domain):

- :mod:`.contract`: the exported graph's inputs, outputs and metadata (no torch);
- :mod:`.graph`: ``Detector(relocate=False)`` of one domain as one traceable module;
- :mod:`.exporter`: ``export_onnx`` (torch, onnx, onnxscript), also the entry point for
  volume models;
- :mod:`.runner`: ``OnnxDetector``, prediction through onnxruntime (numpy, no torch).

Volumes (one file holding each stage's network, chosen by its ``stage`` input):

- :mod:`.volume_contract`: inputs, outputs and metadata (no torch);
- :mod:`.volume_graph`: one network with its decoding, traceable;
- :mod:`.volume_compose`: the networks as the branches of one ``If`` (onnx only);
- :mod:`.volume_exporter`: ``export_volume_onnx``; :mod:`.volume_check`: its check;
- :mod:`.volume_runner`: ``OnnxVolumeDetector`` (numpy, SimpleITK, onnxruntime; no torch).

Shared: :mod:`.session` (opening a file with onnxruntime), :mod:`.tracing` (around
``torch.onnx.export``), :mod:`.loading` (either runner, by the file's format).

Nothing is imported here, so the runners load without torch.
"""
