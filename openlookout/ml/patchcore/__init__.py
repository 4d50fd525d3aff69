"""The PatchCore method: training a memory-bank anomaly model (torch) and exporting it as one ONNX graph.

`config` is torch-free (the manifest records it); everything else needs torch.
"""
